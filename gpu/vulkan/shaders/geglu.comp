#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// dst = gelu_tanh(gate) * up (Gemma's MLP).
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Dst { float dst[]; };
layout(std430, binding = 1) readonly buffer G { float gate[]; };
layout(std430, binding = 2) readonly buffer U { float up[]; };
layout(push_constant) uniform P { uint n; } p;
void main() {
	uint i = gid();
	if (i >= p.n) return;
	float v = gate[i];
	float u = 0.7978845608028654 * (v + 0.044715 * v * v * v);
	dst[i] = 0.5 * v * (1.0 + tanh(clamp(u, -15.0, 15.0))) * up[i];
}
