#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// dst = max(x, 0) (bottleneck adapters' activation).
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Dst { float dst[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(push_constant) uniform P { uint n; } p;
void main() {
	uint i = gid();
	if (i >= p.n) return;
	dst[i] = max(x[i], 0.0);
}
