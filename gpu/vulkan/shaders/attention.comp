#version 450
// Fused causal attention, one workgroup per (query i, head h, sequence b),
// keys in tiles of 64 with an online softmax. Key index n < P is the
// learned prefix row n (always visible), else key j = n - P, visible when
// j <= offset + i, j < S, offset + i - j < window (when window > 0) and
// (hasSeg 0 or the segment ids agree). With softcap > 0 every score s
// becomes softcap * tanh(s / softcap).
// q, out (B, T, H, D); k, v (B, stride, KVH, D); prefix (KVH, P, D);
// lse (B, H, T), -inf for a query that sees nothing. D <= 256.
layout(local_size_x = 64) in;
layout(std430, binding = 0) buffer Out { float o[]; };
layout(std430, binding = 1) buffer Lse { float lse[]; };
layout(std430, binding = 2) readonly buffer Q { float q[]; };
layout(std430, binding = 3) readonly buffer K { float k[]; };
layout(std430, binding = 4) readonly buffer V { float v[]; };
layout(std430, binding = 5) readonly buffer PK { float pk[]; };
layout(std430, binding = 6) readonly buffer PV { float pv[]; };
layout(std430, binding = 7) readonly buffer QS { int qseg[]; };
layout(std430, binding = 8) readonly buffer KS { int kseg[]; };
layout(push_constant) uniform P { uint T; uint S; uint H; uint KVH; uint D; uint stride; uint P; int offset; float scale; uint hasSeg; uint window; float softcap; } p;
shared float qs[256];
shared float sc[64];
shared float ps[64];
const float NEG = -3.402823466e38;

// row returns the offset of key n's row in k/v (n >= P) or pk/pv.
uint row(uint n, uint b, uint kh) {
	return n < p.P ? (kh * p.P + n) * p.D : ((b * p.stride + (n - p.P)) * p.KVH + kh) * p.D;
}

void main() {
	uint i = gl_WorkGroupID.x, h = gl_WorkGroupID.y, b = gl_WorkGroupID.z, t = gl_LocalInvocationID.x;
	uint kh = h / (p.H / p.KVH);
	uint qo = ((b * p.T + i) * p.H + h) * p.D;
	for (uint d = t; d < p.D; d += 64u) qs[d] = q[qo + d];
	barrier();
	int last = min(int(p.S) - 1, p.offset + int(i));
	uint ntot = p.P + uint(max(last + 1, 0));
	float m = NEG, l = 0.0;
	float acc[4] = float[4](0.0, 0.0, 0.0, 0.0);
	// With a window and no prefix, tiles before the first visible key are skipped.
	uint start = (p.P == 0u && p.window > 0u) ? uint(max(p.offset + int(i) - int(p.window) + 1, 0)) & ~63u : 0u;
	for (uint base = start; base < ntot; base += 64u) {
		uint n = base + t;
		float s = NEG;
		if (n < ntot) {
			bool vis = n < p.P || (p.hasSeg == 0u || qseg[b * p.T + i] == kseg[b * p.stride + (n - p.P)]) &&
				(p.window == 0u || p.offset + int(i) - int(n - p.P) < int(p.window));
			if (vis) {
				uint r = row(n, b, kh);
				float dot = 0.0;
				if (n < p.P) { for (uint d = 0u; d < p.D; d++) dot += qs[d] * pk[r + d]; }
				else { for (uint d = 0u; d < p.D; d++) dot += qs[d] * k[r + d]; }
				s = dot * p.scale;
				if (p.softcap > 0.0) s = p.softcap * tanh(clamp(s / p.softcap, -15.0, 15.0));
			}
		}
		sc[t] = s;
		barrier();
		float tm = NEG;
		for (uint u = 0u; u < 64u; u++) tm = max(tm, sc[u]);
		float mn = max(m, tm);
		ps[t] = (s == NEG || mn == NEG) ? 0.0 : exp(s - mn);
		barrier();
		if (mn != NEG) {
			float corr = m == NEG ? 0.0 : exp(m - mn);
			float ls = 0.0;
			for (uint u = 0u; u < 64u; u++) ls += ps[u];
			l = l * corr + ls;
			for (uint c = 0u; c < 4u; c++) {
				uint d = t + 64u * c;
				if (d >= p.D) break;
				float a = acc[c] * corr;
				for (uint u = 0u; u < 64u; u++) {
					if (ps[u] == 0.0) continue;
					uint nn = base + u;
					uint r = row(nn, b, kh);
					a += ps[u] * (nn < p.P ? pv[r + d] : v[r + d]);
				}
				acc[c] = a;
			}
			m = mn;
		}
		barrier();
	}
	for (uint c = 0u; c < 4u; c++) {
		uint d = t + 64u * c;
		if (d < p.D) o[qo + d] = l == 0.0 ? 0.0 : acc[c] / l;
	}
	if (t == 0u) lse[(b * p.H + h) * p.T + i] = l == 0.0 ? uintBitsToFloat(0xff800000u) : m + log(l);
}
