#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// dst = a + b (op 0) or a * b (op 1), n elements.
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Dst { float dst[]; };
layout(std430, binding = 1) readonly buffer A { float a[]; };
layout(std430, binding = 2) readonly buffer B { float b[]; };
layout(push_constant) uniform P { uint n; uint op; } p;
void main() {
	uint i = gid();
	if (i >= p.n) return;
	dst[i] = p.op == 0u ? a[i] + b[i] : a[i] * b[i];
}
