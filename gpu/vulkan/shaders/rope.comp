#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// Rotate-half RoPE on x (N, H, D), row n at position pos[n]; sign -1 is
// the backward (the inverse rotation), acc 1 adds into dst. One invocation
// per rotated pair, which reads both elements before writing: dst may be x.
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Dst { float dst[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) readonly buffer Pos { int pos[]; };
layout(std430, binding = 3) readonly buffer Cos { float cs[]; };
layout(std430, binding = 4) readonly buffer Sin { float sn[]; };
layout(push_constant) uniform P { uint N; uint H; uint D; float sign; uint acc; } p;
void main() {
	uint half_ = p.D / 2u;
	uint i = gid();
	if (i >= p.N * p.H * half_) return;
	uint k = i % half_, nh = i / half_, n = nh / p.H;
	uint off = nh * p.D;
	uint t = uint(pos[n]) * half_ + k;
	float c = cs[t], s = p.sign * sn[t];
	float a = x[off + k], b = x[off + k + half_];
	float o1 = a * c - b * s, o2 = b * c + a * s;
	if (p.acc != 0u) {
		dst[off + k] += o1;
		dst[off + k + half_] += o2;
	} else {
		dst[off + k] = o1;
		dst[off + k + half_] = o2;
	}
}
