#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// dst[i, :] = table[ids[i], :]; dst (N, C).
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Dst { float dst[]; };
layout(std430, binding = 1) readonly buffer T { float table[]; };
layout(std430, binding = 2) readonly buffer Ids { int ids[]; };
layout(push_constant) uniform P { uint N; uint C; } p;
void main() {
	uint i = gid();
	if (i >= p.N * p.C) return;
	uint r = i / p.C, c = i % p.C;
	dst[i] = table[uint(ids[r]) * p.C + c];
}
