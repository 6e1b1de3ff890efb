#version 450
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
// C = A·Bᵀ (acc 1: C +=) for a few rows, M <= 8 (decoding), batched over
// wg.z with element strides sA, sB, sC: A is (M, K), B is (N, K), both
// contiguous along K. One workgroup computes column n for every row: its
// invocations stride over K (each value of B is read once, by one
// invocation), each subgroup adds its lanes' sums with subgroupAdd, and
// the subgroups' sums meet in shared memory. Any subgroup size works.
// Needs Vulkan 1.1 with subgroup arithmetic in compute shaders; the plain
// matmul is the fallback.
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer C { float c[]; };
layout(std430, binding = 1) readonly buffer A { float a[]; };
layout(std430, binding = 2) readonly buffer B { float b[]; };
layout(push_constant) uniform P { uint M; uint N; uint K; uint acc; uint sA; uint sB; uint sC; } p;
shared float part[8][256]; // [row][subgroup]
void main() {
	uint n = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x, z = gl_WorkGroupID.z, t = gl_LocalInvocationID.x;
	if (n >= p.N) return; // the same for the whole workgroup
	uint oa = z * p.sA, ob = z * p.sB + n * p.K;
	float s[8];
	for (uint m = 0u; m < 8u; m++) s[m] = 0.0;
	for (uint k = t; k < p.K; k += 256u) {
		float bv = b[ob + k];
		for (uint m = 0u; m < 8u; m++) {
			if (m < p.M) s[m] += a[oa + m * p.K + k] * bv;
		}
	}
	for (uint m = 0u; m < 8u; m++) {
		if (m < p.M) {
			float v = subgroupAdd(s[m]);
			if (subgroupElect()) part[m][gl_SubgroupID] = v;
		}
	}
	barrier();
	if (t < p.M) {
		float v = 0.0;
		for (uint i = 0u; i < gl_NumSubgroups; i++) v += part[t][i];
		uint o = z * p.sC + t * p.N + n;
		c[o] = p.acc != 0u ? c[o] + v : v;
	}
}
