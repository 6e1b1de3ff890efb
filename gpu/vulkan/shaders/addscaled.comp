#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// dst += s * a, n elements.
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Dst { float dst[]; };
layout(std430, binding = 1) readonly buffer A { float a[]; };
layout(push_constant) uniform P { uint n; float s; } p;
void main() {
	uint i = gid();
	if (i >= p.n) return;
	dst[i] += p.s * a[i];
}
