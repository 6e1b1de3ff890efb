#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// dgate += dy * up * gelu_tanh'(gate); dup += dy * gelu_tanh(gate).
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer DG { float dgate[]; };
layout(std430, binding = 1) buffer DU { float dup[]; };
layout(std430, binding = 2) readonly buffer DY { float dy[]; };
layout(std430, binding = 3) readonly buffer G { float gate[]; };
layout(std430, binding = 4) readonly buffer U { float up[]; };
layout(push_constant) uniform P { uint n; } p;
void main() {
	uint i = gid();
	if (i >= p.n) return;
	float v = gate[i];
	float th = tanh(clamp(0.7978845608028654 * (v + 0.044715 * v * v * v), -15.0, 15.0));
	float du = 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * v * v);
	float g = 0.5 * v * (1.0 + th);
	float dg = 0.5 * (1.0 + th) + 0.5 * v * (1.0 - th * th) * du;
	dgate[i] += dy[i] * up[i] * dg;
	dup[i] += dy[i] * g;
}
