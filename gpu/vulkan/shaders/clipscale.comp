#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// x += (s - 1) * x with s from clipnorm (the CPU's clipping arithmetic);
// nothing changes when s is 1.
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Scale { float scale[]; };
layout(push_constant) uniform P { uint n; } p;
void main() {
	uint i = gid();
	float s = scale[0];
	if (i >= p.n || s == 1.0) return;
	x[i] += (s - 1.0) * x[i];
}
