#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// GELU, tanh approximation: dst = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Dst { float dst[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(push_constant) uniform P { uint n; } p;
void main() {
	uint i = gid();
	if (i >= p.n) return;
	float v = x[i];
	float u = 0.7978845608028654 * (v + 0.044715 * v * v * v);
	dst[i] = 0.5 * v * (1.0 + tanh(clamp(u, -15.0, 15.0)));
}
