#version 450
#extension GL_GOOGLE_include_directive : require
#define ROW_REDUCE
#include "common.glsl"
// Partial sums of squares: workgroup w sums x[w*4096 .. w*4096+4095]
// (a tree, so the rounding error grows with log n) into part[off+w]; the
// host adds the partials in float64 (SumSquares), or clipnorm does on the
// device (ClipNorm: the partials of many tensors side by side).
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Part { float part[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(push_constant) uniform P { uint n; uint off; } p;
void main() {
	uint w = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x, t = gl_LocalInvocationID.x;
	uint base = w * 4096u;
	float s = 0.0;
	for (uint i = t; i < 4096u; i += 256u) {
		if (base + i < p.n) { float v = x[base + i]; s += v * v; }
	}
	s = rowSum(s);
	if (t == 0u) part[p.off + w] = s;
}
