#version 450
#extension GL_GOOGLE_include_directive : require
#define ROW_REDUCE
#include "common.glsl"
// dx += LayerNorm backward of row wg (one workgroup per row).
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer DX { float dx[]; };
layout(std430, binding = 1) readonly buffer DY { float dy[]; };
layout(std430, binding = 2) readonly buffer X { float x[]; };
layout(std430, binding = 3) readonly buffer W { float w[]; };
layout(std430, binding = 4) readonly buffer Mean { float mean[]; };
layout(std430, binding = 5) readonly buffer Rstd { float rstd[]; };
layout(push_constant) uniform P { uint C; } p;
void main() {
	uint r = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x, t = gl_LocalInvocationID.x, o = r * p.C;
	float m = mean[r], rs = rstd[r];
	float a = 0.0, bsum = 0.0;
	for (uint i = t; i < p.C; i += 256u) {
		float n = (x[o + i] - m) * rs, d = w[i] * dy[o + i];
		a += d;
		bsum += d * n;
	}
	float dnm = rowSum(a) / float(p.C);
	float dnx = rowSum(bsum) / float(p.C);
	for (uint i = t; i < p.C; i += 256u) {
		float n = (x[o + i] - m) * rs;
		dx[o + i] += (w[i] * dy[o + i] - dnm - n * dnx) * rs;
	}
}
