#version 450
// C = op(A)·op(B) (acc 1: C +=), batched over wg.z with element strides
// sA, sB, sC, as matmul.comp, register-tiled: a workgroup of 16×16
// invocations computes a 64×64 tile of C, each invocation a 4×4 block of
// it held in registers (rows ty+16i, columns tx+16j), so every value read
// from shared memory feeds four products instead of one. K goes in steps
// of 16 through shared memory; each invocation loads four values of A's
// and B's tiles, along whichever dimension is contiguous in memory. Each
// output sums over K in ascending order, as matmul.comp does.
layout(local_size_x = 16, local_size_y = 16) in;
layout(std430, binding = 0) buffer C { float c[]; };
layout(std430, binding = 1) readonly buffer A { float a[]; };
layout(std430, binding = 2) readonly buffer B { float b[]; };
layout(push_constant) uniform P { uint M; uint N; uint K; uint transA; uint transB; uint acc; uint sA; uint sB; uint sC; } p;
shared float As[16][68]; // [k][row]
shared float Bs[16][68]; // [k][col]
void main() {
	uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y, t = ty * 16u + tx;
	uint row0 = gl_WorkGroupID.y * 64u, col0 = gl_WorkGroupID.x * 64u, z = gl_WorkGroupID.z;
	uint oa = z * p.sA, ob = z * p.sB;
	float s[4][4];
	for (uint i = 0u; i < 4u; i++) for (uint j = 0u; j < 4u; j++) s[i][j] = 0.0;
	for (uint k0 = 0u; k0 < p.K; k0 += 16u) {
		for (uint q = 0u; q < 4u; q++) {
			uint e = t + 256u * q;
			uint r, kk;
			if (p.transA != 0u) { kk = e / 64u; r = e % 64u; } else { r = e / 16u; kk = e % 16u; }
			uint gr = row0 + r, gk = k0 + kk;
			float v = 0.0;
			if (gr < p.M && gk < p.K) v = p.transA != 0u ? a[oa + gk * p.M + gr] : a[oa + gr * p.K + gk];
			As[kk][r] = v;
			uint cc;
			if (p.transB != 0u) { cc = e / 16u; kk = e % 16u; } else { kk = e / 64u; cc = e % 64u; }
			uint gc = col0 + cc;
			gk = k0 + kk;
			v = 0.0;
			if (gk < p.K && gc < p.N) v = p.transB != 0u ? b[ob + gc * p.K + gk] : b[ob + gk * p.N + gc];
			Bs[kk][cc] = v;
		}
		barrier();
		for (uint kk = 0u; kk < 16u; kk++) {
			float av[4], bv[4];
			for (uint i = 0u; i < 4u; i++) av[i] = As[kk][ty + 16u * i];
			for (uint j = 0u; j < 4u; j++) bv[j] = Bs[kk][tx + 16u * j];
			for (uint i = 0u; i < 4u; i++) for (uint j = 0u; j < 4u; j++) s[i][j] += av[i] * bv[j];
		}
		barrier();
	}
	for (uint i = 0u; i < 4u; i++) {
		uint row = row0 + ty + 16u * i;
		if (row >= p.M) continue;
		for (uint j = 0u; j < 4u; j++) {
			uint col = col0 + tx + 16u * j;
			if (col >= p.N) continue;
			uint o = z * p.sC + row * p.N + col;
			c[o] = p.acc != 0u ? c[o] + s[i][j] : s[i][j];
		}
	}
}
