#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// dst (C) += column sums of x (N, C); one invocation per column.
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Dst { float dst[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(push_constant) uniform P { uint N; uint C; } p;
void main() {
	uint c = gid();
	if (c >= p.C) return;
	float s = 0.0;
	for (uint r = 0u; r < p.N; r++) s += x[r * p.C + c];
	dst[c] += s;
}
