#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// dst = silu(gate) * up.
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Dst { float dst[]; };
layout(std430, binding = 1) readonly buffer G { float gate[]; };
layout(std430, binding = 2) readonly buffer U { float up[]; };
layout(push_constant) uniform P { uint n; } p;
void main() {
	uint i = gid();
	if (i >= p.n) return;
	float g = gate[i];
	dst[i] = g / (1.0 + exp(-g)) * up[i];
}
