#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// Greedy ids, one workgroup per row of x (N, V): ids[r] is the index of
// the first largest value of row r, 0 when no value is above -inf (as
// tensor.ArgMaxRows). Each invocation scans a strided part of the row,
// then a tree keeps the larger value, the smaller index on ties.
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Ids { int ids[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(push_constant) uniform P { uint V; } p;
shared float bv[256];
shared uint bi[256];
void main() {
	uint r = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x, t = gl_LocalInvocationID.x, o = r * p.V;
	float best = -1.0 / 0.0;
	uint idx = 0xffffffffu;
	for (uint i = t; i < p.V; i += 256u) {
		float v = x[o + i];
		if (v > best) { best = v; idx = i; }
	}
	bv[t] = best;
	bi[t] = idx;
	barrier();
	for (uint s = 128u; s > 0u; s >>= 1) {
		if (t < s) {
			float v = bv[t + s];
			uint j = bi[t + s];
			if (v > bv[t] || (v == bv[t] && j < bi[t])) { bv[t] = v; bi[t] = j; }
		}
		barrier();
	}
	if (t == 0u) ids[r] = bi[0] == 0xffffffffu ? 0 : int(bi[0]);
}
