#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// dst = c * tanh(x / c) (Gemma 2's logit cap).
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Dst { float dst[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(push_constant) uniform P { uint n; float c; } p;
void main() {
	uint i = gid();
	if (i >= p.n) return;
	dst[i] = p.c * tanh(clamp(x[i] / p.c, -15.0, 15.0));
}
