#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// dx += dy * GELU'(x), tanh approximation.
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer DX { float dx[]; };
layout(std430, binding = 1) readonly buffer DY { float dy[]; };
layout(std430, binding = 2) readonly buffer X { float x[]; };
layout(push_constant) uniform P { uint n; } p;
void main() {
	uint i = gid();
	if (i >= p.n) return;
	float v = x[i];
	float u = 0.7978845608028654 * (v + 0.044715 * v * v * v);
	float t = tanh(clamp(u, -15.0, 15.0));
	float du = 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * v * v);
	dx[i] += dy[i] * (0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * du);
}
