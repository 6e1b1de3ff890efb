#version 450
#extension GL_GOOGLE_include_directive : require
#define ROW_REDUCE
#include "common.glsl"
// RMSNorm of row wg (one workgroup per row): dst = x * rstd * w.
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Dst { float dst[]; };
layout(std430, binding = 1) buffer Rstd { float rstd[]; };
layout(std430, binding = 2) readonly buffer X { float x[]; };
layout(std430, binding = 3) readonly buffer W { float w[]; };
layout(push_constant) uniform P { uint C; float eps; } p;
void main() {
	uint r = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x, t = gl_LocalInvocationID.x, o = r * p.C;
	float ss = 0.0;
	for (uint i = t; i < p.C; i += 256u) ss += x[o + i] * x[o + i];
	float rs = inversesqrt(rowSum(ss) / float(p.C) + p.eps);
	if (t == 0u) rstd[r] = rs;
	for (uint i = t; i < p.C; i += 256u) dst[o + i] = x[o + i] * rs * w[i];
}
