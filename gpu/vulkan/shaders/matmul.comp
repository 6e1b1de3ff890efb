#version 450
// C = op(A)·op(B) (acc 1: C +=), batched over wg.z with element strides
// sA, sB, sC. A is (M, K) or, transposed, (K, M); B is (K, N) or (N, K).
// 16×16 output tiles, K in steps of 16 through shared memory.
layout(local_size_x = 16, local_size_y = 16) in;
layout(std430, binding = 0) buffer C { float c[]; };
layout(std430, binding = 1) readonly buffer A { float a[]; };
layout(std430, binding = 2) readonly buffer B { float b[]; };
layout(push_constant) uniform P { uint M; uint N; uint K; uint transA; uint transB; uint acc; uint sA; uint sB; uint sC; } p;
shared float As[16][17];
shared float Bs[16][17];
void main() {
	uint lx = gl_LocalInvocationID.x, ly = gl_LocalInvocationID.y;
	uint row = gl_WorkGroupID.y * 16u + ly, col = gl_WorkGroupID.x * 16u + lx, z = gl_WorkGroupID.z;
	uint oa = z * p.sA, ob = z * p.sB;
	float s = 0.0;
	for (uint k0 = 0u; k0 < p.K; k0 += 16u) {
		uint ka = k0 + lx;
		float av = 0.0;
		if (row < p.M && ka < p.K) av = p.transA != 0u ? a[oa + ka * p.M + row] : a[oa + row * p.K + ka];
		As[ly][lx] = av;
		uint kb = k0 + ly;
		float bv = 0.0;
		if (kb < p.K && col < p.N) bv = p.transB != 0u ? b[ob + col * p.K + kb] : b[ob + kb * p.N + col];
		Bs[ly][lx] = bv;
		barrier();
		for (uint kk = 0u; kk < 16u; kk++) s += As[ly][kk] * Bs[kk][lx];
		barrier();
	}
	if (row < p.M && col < p.N) {
		uint i = z * p.sC + row * p.N + col;
		c[i] = p.acc != 0u ? c[i] + s : s;
	}
}
