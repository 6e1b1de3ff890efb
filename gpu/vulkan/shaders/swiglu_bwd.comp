#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// dgate += dy * up * silu'(gate); dup += dy * silu(gate).
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
	float g = gate[i];
	float s = 1.0 / (1.0 + exp(-g));
	dgate[i] += dy[i] * up[i] * s * (1.0 + g * (1.0 - s));
	dup[i] += dy[i] * g * s;
}
