#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// delta[(b*H+h)*T+i] = dout·out of that query row (the softmax backward's
// row term), one invocation per row of (B, T, H).
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Delta { float delta[]; };
layout(std430, binding = 1) readonly buffer DO { float dout[]; };
layout(std430, binding = 2) readonly buffer O { float o[]; };
layout(push_constant) uniform P { uint rows; uint T; uint H; uint D; } p;
void main() {
	uint r = gid();
	if (r >= p.rows) return;
	uint h = r % p.H, bi = r / p.H, i = bi % p.T, b = bi / p.T;
	float s = 0.0;
	for (uint d = 0u; d < p.D; d++) s += dout[r * p.D + d] * o[r * p.D + d];
	delta[(b * p.H + h) * p.T + i] = s;
}
