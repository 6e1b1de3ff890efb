#version 450
#extension GL_GOOGLE_include_directive : require
#define ROW_REDUCE
#include "common.glsl"
// dx += RMSNorm backward of row wg (one workgroup per row).
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer DX { float dx[]; };
layout(std430, binding = 1) readonly buffer DY { float dy[]; };
layout(std430, binding = 2) readonly buffer X { float x[]; };
layout(std430, binding = 3) readonly buffer W { float w[]; };
layout(std430, binding = 4) readonly buffer Rstd { float rstd[]; };
layout(push_constant) uniform P { uint C; } p;
void main() {
	uint r = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x, t = gl_LocalInvocationID.x, o = r * p.C;
	float rs = rstd[r];
	float d = 0.0;
	for (uint i = t; i < p.C; i += 256u) d += dy[o + i] * w[i] * x[o + i];
	float k = rowSum(d) * rs * rs * rs / float(p.C);
	for (uint i = t; i < p.C; i += 256u) dx[o + i] += dy[o + i] * w[i] * rs - x[o + i] * k;
}
