#version 450
#extension GL_GOOGLE_include_directive : require
#define ROW_REDUCE
#include "common.glsl"
// Cross-entropy of row wg (one workgroup per row): lse = log Σ exp(logits),
// loss = lse - logits[target]; a target < 0 gives loss 0.
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Loss { float loss[]; };
layout(std430, binding = 1) buffer Lse { float lse[]; };
layout(std430, binding = 2) readonly buffer L { float logits[]; };
layout(std430, binding = 3) readonly buffer T { int targets[]; };
layout(push_constant) uniform P { uint V; } p;
void main() {
	uint r = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x, t = gl_LocalInvocationID.x, o = r * p.V;
	float m = -3.402823466e38;
	for (uint i = t; i < p.V; i += 256u) m = max(m, logits[o + i]);
	m = rowMax(m);
	float s = 0.0;
	for (uint i = t; i < p.V; i += 256u) s += exp(logits[o + i] - m);
	float l = m + log(rowSum(s));
	if (t == 0u) {
		lse[r] = l;
		int tg = targets[r];
		loss[r] = tg < 0 ? 0.0 : l - logits[o + uint(tg)];
	}
}
