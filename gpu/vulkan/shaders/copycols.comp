#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// Copies a block of W columns of every row: dst[r, dOff+c] = src[r, sOff+c]
// (SplitCols and ConcatCols).
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Dst { float dst[]; };
layout(std430, binding = 1) readonly buffer Src { float src[]; };
layout(push_constant) uniform P { uint N; uint W; uint dC; uint dOff; uint sC; uint sOff; } p;
void main() {
	uint i = gid();
	if (i >= p.N * p.W) return;
	uint r = i / p.W, c = i % p.W;
	dst[r * p.dC + p.dOff + c] = src[r * p.sC + p.sOff + c];
}
