#version 450
// dq += scale · Σ_n p_n (dout·v_n − delta) k_n for query (i, h, b), one
// workgroup per query, keys in tiles of 64 (layout as attention.comp).
layout(local_size_x = 64) in;
layout(std430, binding = 0) buffer DQ { float dq[]; };
layout(std430, binding = 1) readonly buffer Q { float q[]; };
layout(std430, binding = 2) readonly buffer DO { float dout[]; };
layout(std430, binding = 3) readonly buffer Lse { float lse[]; };
layout(std430, binding = 4) readonly buffer Delta { float delta[]; };
layout(std430, binding = 5) readonly buffer K { float k[]; };
layout(std430, binding = 6) readonly buffer V { float v[]; };
layout(std430, binding = 7) readonly buffer PK { float pk[]; };
layout(std430, binding = 8) readonly buffer PV { float pv[]; };
layout(std430, binding = 9) readonly buffer QS { int qseg[]; };
layout(std430, binding = 10) readonly buffer KS { int kseg[]; };
layout(push_constant) uniform P { uint T; uint S; uint H; uint KVH; uint D; uint stride; uint P; int offset; float scale; uint hasSeg; uint window; float softcap; } p;
shared float qs[256];
shared float dos[256];
shared float dss[64];

uint row(uint n, uint b, uint kh) {
	return n < p.P ? (kh * p.P + n) * p.D : ((b * p.stride + (n - p.P)) * p.KVH + kh) * p.D;
}

void main() {
	uint i = gl_WorkGroupID.x, h = gl_WorkGroupID.y, b = gl_WorkGroupID.z, t = gl_LocalInvocationID.x;
	uint kh = h / (p.H / p.KVH);
	float li = lse[(b * p.H + h) * p.T + i];
	if (isinf(li)) return; // uniform: the whole workgroup leaves
	float di = delta[(b * p.H + h) * p.T + i];
	uint qo = ((b * p.T + i) * p.H + h) * p.D;
	for (uint d = t; d < p.D; d += 64u) { qs[d] = q[qo + d]; dos[d] = dout[qo + d]; }
	barrier();
	int last = min(int(p.S) - 1, p.offset + int(i));
	uint ntot = p.P + uint(max(last + 1, 0));
	float acc[4] = float[4](0.0, 0.0, 0.0, 0.0);
	// With a window and no prefix, tiles before the first visible key are skipped.
	uint start = (p.P == 0u && p.window > 0u) ? uint(max(p.offset + int(i) - int(p.window) + 1, 0)) & ~63u : 0u;
	for (uint base = start; base < ntot; base += 64u) {
		uint n = base + t;
		float ds = 0.0;
		if (n < ntot && (n < p.P || (p.hasSeg == 0u || qseg[b * p.T + i] == kseg[b * p.stride + (n - p.P)]) &&
				(p.window == 0u || p.offset + int(i) - int(n - p.P) < int(p.window)))) {
			uint r = row(n, b, kh);
			float s = 0.0, dp = 0.0;
			if (n < p.P) { for (uint d = 0u; d < p.D; d++) { s += qs[d] * pk[r + d]; dp += dos[d] * pv[r + d]; } }
			else { for (uint d = 0u; d < p.D; d++) { s += qs[d] * k[r + d]; dp += dos[d] * v[r + d]; } }
			float sv = s * p.scale, dcap = 1.0;
			if (p.softcap > 0.0) {
				float th = tanh(clamp(sv / p.softcap, -15.0, 15.0));
				sv = p.softcap * th;
				dcap = 1.0 - th * th;
			}
			float pr = exp(sv - li);
			ds = pr * (dp - di) * dcap * p.scale;
		}
		dss[t] = ds;
		barrier();
		for (uint c = 0u; c < 4u; c++) {
			uint d = t + 64u * c;
			if (d >= p.D) break;
			float a = acc[c];
			for (uint u = 0u; u < 64u; u++) {
				if (dss[u] == 0.0) continue;
				uint nn = base + u;
				uint r = row(nn, b, kh);
				a += dss[u] * (nn < p.P ? pk[r + d] : k[r + d]);
			}
			acc[c] = a;
		}
		barrier();
	}
	for (uint c = 0u; c < 4u; c++) {
		uint d = t + 64u * c;
		if (d < p.D) dq[qo + d] += acc[c];
	}
}
