#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// dst = x + bias per row: x, dst (N, C), bias (C).
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Dst { float dst[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) readonly buffer Bias { float bias[]; };
layout(push_constant) uniform P { uint n; uint C; } p;
void main() {
	uint i = gid();
	if (i >= p.n) return;
	dst[i] = x[i] + bias[i % p.C];
}
