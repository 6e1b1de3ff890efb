#version 450
#extension GL_GOOGLE_include_directive : require
#define ROW_REDUCE
#include "common.glsl"
// The global gradient norm from sumsq's partials (one workgroup):
// norm = sqrt(Σ part), and the factor clipscale applies, maxNorm/(norm+1e-6)
// when maxNorm > 0 and the norm exceeds it, else 1. Nothing is read on the
// host: the norm stays on the device until someone asks for it.
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Norm { float norm[]; };
layout(std430, binding = 1) buffer Scale { float scale[]; };
layout(std430, binding = 2) readonly buffer Part { float part[]; };
layout(push_constant) uniform P { uint n; float maxNorm; } p;
void main() {
	uint t = gl_LocalInvocationID.x;
	float s = 0.0;
	for (uint i = t; i < p.n; i += 256u) s += part[i];
	s = rowSum(s);
	if (t == 0u) {
		float nv = sqrt(s);
		norm[0] = nv;
		scale[0] = (p.maxNorm > 0.0 && nv > p.maxNorm) ? p.maxNorm / (nv + 1e-6) : 1.0;
	}
}
