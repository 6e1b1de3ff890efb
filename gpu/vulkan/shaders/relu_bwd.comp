#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// dx += dy where y > 0, y the forward's output.
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer DX { float dx[]; };
layout(std430, binding = 1) readonly buffer DY { float dy[]; };
layout(std430, binding = 2) readonly buffer Y { float y[]; };
layout(push_constant) uniform P { uint n; } p;
void main() {
	uint i = gid();
	if (i >= p.n) return;
	if (y[i] > 0.0) dx[i] += dy[i];
}
