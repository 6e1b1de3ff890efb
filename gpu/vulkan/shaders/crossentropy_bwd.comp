#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// dlogits[r, j] += dloss[r] * (softmax(logits[r])[j] - (j == target[r]));
// rows with a target < 0 get nothing.
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer DL { float dlogits[]; };
layout(std430, binding = 1) readonly buffer DLoss { float dloss[]; };
layout(std430, binding = 2) readonly buffer L { float logits[]; };
layout(std430, binding = 3) readonly buffer Lse { float lse[]; };
layout(std430, binding = 4) readonly buffer T { int targets[]; };
layout(push_constant) uniform P { uint N; uint V; } p;
void main() {
	uint i = gid();
	if (i >= p.N * p.V) return;
	uint r = i / p.V, j = i % p.V;
	int tg = targets[r];
	if (tg < 0) return;
	float g = exp(logits[i] - lse[r]);
	if (uint(tg) == j) g -= 1.0;
	dlogits[i] += dloss[r] * g;
}
