#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// dx += dy * (1 - (y/c)^2), y the forward's output.
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer DX { float dx[]; };
layout(std430, binding = 1) readonly buffer DY { float dy[]; };
layout(std430, binding = 2) readonly buffer Y { float y[]; };
layout(push_constant) uniform P { uint n; float c; } p;
void main() {
	uint i = gid();
	if (i >= p.n) return;
	float t = y[i] / p.c;
	dx[i] += dy[i] * (1.0 - t * t);
}
