#version 450
#extension GL_GOOGLE_include_directive : require
#define ROW_REDUCE
#include "common.glsl"
// LayerNorm of row wg.x (one workgroup per row): x (N, C), w, b (C)
// (hasB 0: no bias), mean and rstd (N) saved for the backward.
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Dst { float dst[]; };
layout(std430, binding = 1) buffer Mean { float mean[]; };
layout(std430, binding = 2) buffer Rstd { float rstd[]; };
layout(std430, binding = 3) readonly buffer X { float x[]; };
layout(std430, binding = 4) readonly buffer W { float w[]; };
layout(std430, binding = 5) readonly buffer B { float b[]; };
layout(push_constant) uniform P { uint C; float eps; uint hasB; } p;
void main() {
	uint r = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x, t = gl_LocalInvocationID.x, o = r * p.C;
	float s = 0.0;
	for (uint i = t; i < p.C; i += 256u) s += x[o + i];
	float m = rowSum(s) / float(p.C);
	float vs = 0.0;
	for (uint i = t; i < p.C; i += 256u) { float d = x[o + i] - m; vs += d * d; }
	float rs = inversesqrt(rowSum(vs) / float(p.C) + p.eps);
	if (t == 0u) { mean[r] = m; rstd[r] = rs; }
	for (uint i = t; i < p.C; i += 256u) {
		float v = (x[o + i] - m) * rs * w[i];
		if (p.hasB != 0u) v += b[i];
		dst[o + i] = v;
	}
}
