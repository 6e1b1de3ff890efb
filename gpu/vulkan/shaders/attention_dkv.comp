#version 450
// dk, dv of one key row, one workgroup per (key j, kv head kh, sequence b):
// dv += Σ p·dout, dk += Σ scale·p·(dout·v − delta)·q over the queries of
// the heads of group kh that see the key. prefix 1: the row is prefix row
// j, seen by every live query of every sequence (wg.z is 0 and all B
// sequences are summed), and dk, dv are the prefix gradients (KVH, P, D).
layout(local_size_x = 64) in;
layout(std430, binding = 0) buffer DK { float dk[]; };
layout(std430, binding = 1) buffer DV { float dv[]; };
layout(std430, binding = 2) readonly buffer Q { float q[]; };
layout(std430, binding = 3) readonly buffer DO { float dout[]; };
layout(std430, binding = 4) readonly buffer Lse { float lse[]; };
layout(std430, binding = 5) readonly buffer Delta { float delta[]; };
layout(std430, binding = 6) readonly buffer K { float k[]; };
layout(std430, binding = 7) readonly buffer V { float v[]; };
layout(std430, binding = 8) readonly buffer QS { int qseg[]; };
layout(std430, binding = 9) readonly buffer KS { int kseg[]; };
layout(push_constant) uniform P { uint T; uint S; uint H; uint KVH; uint D; uint stride; uint P; int offset; float scale; uint hasSeg; uint window; float softcap;
	uint prefix; uint B; uint hasDK; uint hasDV; } p;
shared float ks[256];
shared float vs[256];
shared float ps[64];
shared float dss[64];

void main() {
	uint j = gl_WorkGroupID.x, kh = gl_WorkGroupID.y, t = gl_LocalInvocationID.x;
	uint g = p.H / p.KVH;
	uint b0 = gl_WorkGroupID.z, b1 = b0 + 1u;
	uint ro;
	if (p.prefix != 0u) { b0 = 0u; b1 = p.B; ro = (kh * p.P + j) * p.D; }
	else ro = ((gl_WorkGroupID.z * p.stride + j) * p.KVH + kh) * p.D;
	for (uint d = t; d < p.D; d += 64u) { ks[d] = k[ro + d]; vs[d] = v[ro + d]; }
	barrier();
	float ak[4] = float[4](0.0, 0.0, 0.0, 0.0);
	float av[4] = float[4](0.0, 0.0, 0.0, 0.0);
	for (uint b = b0; b < b1; b++) {
		for (uint h = kh * g; h < (kh + 1u) * g; h++) {
			// Only queries offset+i >= j see key j (causal), and with a
			// window only those with offset+i-j < window (no prefix pass).
			uint qstart = 0u, qend = p.T;
			if (p.prefix == 0u) qstart = uint(clamp(int(j) - p.offset, 0, int(p.T))) & ~63u;
			if (p.prefix == 0u && p.window > 0u) qend = uint(clamp(int(j) - p.offset + int(p.window), 0, int(p.T)));
			for (uint base = qstart; base < qend; base += 64u) {
				uint i = base + t;
				float pr = 0.0, ds = 0.0;
				if (i < p.T) {
					float li = lse[(b * p.H + h) * p.T + i];
					bool vis = !isinf(li);
					if (p.prefix == 0u) {
						vis = vis && int(j) <= p.offset + int(i) && (p.hasSeg == 0u || qseg[b * p.T + i] == kseg[b * p.stride + j]) &&
							(p.window == 0u || p.offset + int(i) - int(j) < int(p.window));
					}
					if (vis) {
						uint qo = ((b * p.T + i) * p.H + h) * p.D;
						float s = 0.0, dp = 0.0;
						for (uint d = 0u; d < p.D; d++) { s += q[qo + d] * ks[d]; dp += dout[qo + d] * vs[d]; }
						float sv = s * p.scale, dcap = 1.0;
						if (p.softcap > 0.0) {
							float th = tanh(clamp(sv / p.softcap, -15.0, 15.0));
							sv = p.softcap * th;
							dcap = 1.0 - th * th;
						}
						pr = exp(sv - li);
						ds = pr * (dp - delta[(b * p.H + h) * p.T + i]) * dcap * p.scale;
					}
				}
				ps[t] = pr;
				dss[t] = ds;
				barrier();
				for (uint c = 0u; c < 4u; c++) {
					uint d = t + 64u * c;
					if (d >= p.D) break;
					float a1 = ak[c], a2 = av[c];
					for (uint u = 0u; u < 64u; u++) {
						if (ps[u] == 0.0) continue;
						uint qo = ((b * p.T + base + u) * p.H + h) * p.D;
						a1 += dss[u] * q[qo + d];
						a2 += ps[u] * dout[qo + d];
					}
					ak[c] = a1;
					av[c] = a2;
				}
				barrier();
			}
		}
	}
	for (uint c = 0u; c < 4u; c++) {
		uint d = t + 64u * c;
		if (d >= p.D) break;
		if (p.hasDK != 0u) dk[ro + d] += ak[c];
		if (p.hasDV != 0u) dv[ro + d] += av[c];
	}
}
