#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// AdamW on up to eight tensors in one dispatch (tensor.MultiAdamW): slot
// s = wg.z updates p_s from g_s with moments m_s, v_s, of n[s] elements
// and decay factor decay[s], with adamw.comp's arithmetic (so the results
// are the same, bit for bit). The 32 buffers are separate bindings,
// reached by constant indices in a switch on the slot, so no descriptor
// indexing feature is needed; an empty slot has n 0.
layout(local_size_x = 256) in;
#define SLOT(k) \
	layout(std430, binding = k) buffer Pk##k { float p##k[]; }; \
	layout(std430, binding = 8 + k) readonly buffer Gk##k { float g##k[]; }; \
	layout(std430, binding = 16 + k) buffer Mk##k { float m##k[]; }; \
	layout(std430, binding = 24 + k) buffer Vk##k { float v##k[]; };
SLOT(0) SLOT(1) SLOT(2) SLOT(3) SLOT(4) SLOT(5) SLOT(6) SLOT(7)
layout(push_constant) uniform P { uint n[8]; float decay[8]; float b1; float b2; float eps; float stepSize; float bc2s; } p;
#define STEP(k) { \
	float gi = g##k[i]; \
	float x = p##k[i] * p.decay[k]; \
	float mi = p.b1 * m##k[i] + (1.0 - p.b1) * gi; \
	float vi = p.b2 * v##k[i] + (1.0 - p.b2) * gi * gi; \
	m##k[i] = mi; \
	v##k[i] = vi; \
	p##k[i] = x - p.stepSize * mi / (sqrt(vi) / p.bc2s + p.eps); \
}
void main() {
	uint s = gl_WorkGroupID.z, i = gid();
	if (i >= p.n[s]) return;
	switch (s) {
	case 0u: STEP(0) break;
	case 1u: STEP(1) break;
	case 2u: STEP(2) break;
	case 3u: STEP(3) break;
	case 4u: STEP(4) break;
	case 5u: STEP(5) break;
	case 6u: STEP(6) break;
	case 7u: STEP(7) break;
	}
}
