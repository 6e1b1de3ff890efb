#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// Weight gradients of LayerNorm and RMSNorm, one invocation per column:
// dw[c] += Σr (x[r,c] - mean[r]) * rstd[r] * dy[r,c]   (rms 1: mean is 0)
// db[c] += Σr dy[r,c]                                    (hasDB 1)
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer DW { float dw[]; };
layout(std430, binding = 1) buffer DB { float db[]; };
layout(std430, binding = 2) readonly buffer DY { float dy[]; };
layout(std430, binding = 3) readonly buffer X { float x[]; };
layout(std430, binding = 4) readonly buffer Mean { float mean[]; };
layout(std430, binding = 5) readonly buffer Rstd { float rstd[]; };
layout(push_constant) uniform P { uint N; uint C; uint rms; uint hasDW; uint hasDB; } p;
void main() {
	uint c = gid();
	if (c >= p.C) return;
	float sw = 0.0, sb = 0.0;
	for (uint r = 0u; r < p.N; r++) {
		float g = dy[r * p.C + c];
		float m = p.rms != 0u ? 0.0 : mean[r];
		sw += (x[r * p.C + c] - m) * rstd[r] * g;
		sb += g;
	}
	if (p.hasDW != 0u) dw[c] += sw;
	if (p.hasDB != 0u) db[c] += sb;
}
