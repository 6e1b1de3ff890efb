#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// One AdamW step in place; bias corrections come from the host:
// p *= decay; m, v moments; p -= stepSize * m / (sqrt(v) / bc2s + eps).
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Param { float prm[]; };
layout(std430, binding = 1) readonly buffer G { float g[]; };
layout(std430, binding = 2) buffer M { float m[]; };
layout(std430, binding = 3) buffer V { float v[]; };
layout(push_constant) uniform P { uint n; float b1; float b2; float eps; float decay; float stepSize; float bc2s; } p;
void main() {
	uint i = gid();
	if (i >= p.n) return;
	float gi = g[i];
	float x = prm[i] * p.decay;
	float mi = p.b1 * m[i] + (1.0 - p.b1) * gi;
	float vi = p.b2 * v[i] + (1.0 - p.b2) * gi * gi;
	m[i] = mi;
	v[i] = vi;
	prm[i] = x - p.stepSize * mi / (sqrt(vi) / p.bc2s + p.eps);
}
