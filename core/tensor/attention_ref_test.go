package tensor

import (
	"fmt"
	"math"
	"testing"

	"llmlab/core/tensor/tensortest"
)

// attnCase is one attention configuration. Queries sit at key positions
// Off..Off+T-1; seg picks a segment-id pattern:
//
//	""        no segment ids
//	"pack"    packed documents of 5 tokens (ids j/5)
//	"leftpad" sequence b starts with 3b+1 padding keys (id 0), then id 1
//	"nothing" like pack, and query 1 of each sequence has an id no key has
type attnCase struct {
	name                        string
	B, T, H, KVH, D, S, KS, Off int
	P                           int
	seg                         string
}

var attnCases = []attnCase{
	{name: "mha", B: 2, T: 5, H: 2, KVH: 2, D: 16, S: 5},
	{name: "tiles", B: 2, T: 70, H: 2, KVH: 2, D: 8, S: 70},
	{name: "gqa2", B: 2, T: 33, H: 4, KVH: 2, D: 48, S: 33},
	{name: "gqa1", B: 2, T: 65, H: 4, KVH: 1, D: 16, S: 65},
	{name: "cache", B: 2, T: 3, H: 4, KVH: 2, D: 16, S: 63, KS: 80, Off: 60},
	{name: "decode", B: 2, T: 1, H: 4, KVH: 1, D: 48, S: 70, KS: 100, Off: 69},
	{name: "chunk", B: 2, T: 40, H: 2, KVH: 1, D: 16, S: 80, KS: 90, Off: 40},
	{name: "fewkeys", B: 2, T: 9, H: 2, KVH: 2, D: 8, S: 7},
	{name: "prefix", B: 2, T: 20, H: 4, KVH: 2, D: 16, S: 20, P: 3},
	{name: "prefixlong", B: 2, T: 6, H: 2, KVH: 1, D: 8, S: 10, Off: 4, P: 67},
	{name: "pack", B: 2, T: 37, H: 2, KVH: 2, D: 16, S: 37, seg: "pack"},
	{name: "leftpad", B: 2, T: 12, H: 4, KVH: 2, D: 8, S: 12, seg: "leftpad"},
	{name: "nothing", B: 2, T: 12, H: 2, KVH: 1, D: 16, S: 12, seg: "nothing"},
	{name: "prefixpack", B: 2, T: 12, H: 2, KVH: 2, D: 8, S: 12, P: 3, seg: "nothing"},
	{name: "leftpadcache", B: 2, T: 1, H: 2, KVH: 2, D: 16, S: 9, KS: 12, Off: 8, seg: "leftpad"},
	{name: "nokeys", B: 2, T: 3, H: 2, KVH: 1, D: 8, S: 0, KS: 4},
	{name: "d10", B: 2, T: 9, H: 2, KVH: 1, D: 10, S: 9, P: 3},
	{name: "long", B: 1, T: 300, H: 2, KVH: 1, D: 64, S: 300},
	{name: "prefixonly", B: 2, T: 3, H: 2, KVH: 1, D: 8, S: 0, KS: 4, P: 3},
}

// attnData is the inputs of one case.
type attnData struct {
	c          attnCase
	o          AttentionOpts
	q, k, v    *Tensor
	pk, pv     *Tensor
	r          []float32 // (B, T, H, D) loss weights: loss = Σ out∘r
	qseg, kseg []int32
}

func newAttnData(c attnCase, seed uint64) *attnData {
	if c.KS == 0 {
		c.KS = c.S
	}
	d := &attnData{c: c}
	d.q = FromF32(tensortest.Rand(seed, c.B*c.T*c.H*c.D, 1), c.B, c.T, c.H, c.D)
	d.k = FromF32(tensortest.Rand(seed+1, c.B*c.KS*c.KVH*c.D, 1), c.B, c.KS, c.KVH, c.D)
	d.v = FromF32(tensortest.Rand(seed+2, c.B*c.KS*c.KVH*c.D, 1), c.B, c.KS, c.KVH, c.D)
	d.r = tensortest.Rand(seed+3, c.B*c.T*c.H*c.D, 1)
	// Make the scores large enough that softmax is far from uniform.
	for i := range d.q.F32 {
		d.q.F32[i] *= 3
	}
	d.o = AttentionOpts{Batch: c.B, Heads: c.H, KVHeads: c.KVH, HeadDim: c.D,
		Queries: c.T, Keys: c.S, KStride: c.KS, Offset: c.Off}
	if c.P > 0 {
		d.pk = FromF32(tensortest.Rand(seed+4, c.KVH*c.P*c.D, 1), c.KVH, c.P, c.D)
		d.pv = FromF32(tensortest.Rand(seed+5, c.KVH*c.P*c.D, 1), c.KVH, c.P, c.D)
		d.o.PrefixK, d.o.PrefixV = d.pk, d.pv
	}
	if c.seg != "" {
		d.qseg = make([]int32, c.B*c.T)
		d.kseg = make([]int32, c.B*c.KS)
		for b := range c.B {
			for j := range c.KS {
				id := int32(j / 5)
				if c.seg == "leftpad" {
					id = 0
					if j >= 3*b+1 {
						id = 1
					}
				}
				d.kseg[b*c.KS+j] = id
			}
			for i := range c.T {
				d.qseg[b*c.T+i] = d.kseg[b*c.KS+c.Off+i]
				if c.seg == "nothing" && i == 1 {
					d.qseg[b*c.T+i] = 99
				}
			}
		}
		d.o.QSeg, d.o.KSeg = d.qseg, d.kseg
	}
	return d
}

// refAttention is the naive reference: for each query, list the visible
// keys, materialise the scores, softmax, weighted sum, all in float64.
// With dout it also returns the analytic gradients.
type refAttnGrads struct {
	out, lse, dq, dk, dv, dpk, dpv []float64
}

func refAttention(d *attnData, dout []float32) *refAttnGrads {
	c := d.c
	scale := 1 / math.Sqrt(float64(c.D))
	g := &refAttnGrads{
		out: make([]float64, c.B*c.T*c.H*c.D), lse: make([]float64, c.B*c.H*c.T),
		dq: make([]float64, len(d.q.F32)), dk: make([]float64, len(d.k.F32)), dv: make([]float64, len(d.v.F32)),
		dpk: make([]float64, c.KVH*c.P*c.D), dpv: make([]float64, c.KVH*c.P*c.D),
	}
	type key struct {
		kv, dk, dv []float64 // gradient targets
		k, v       []float32
		koff       int
	}
	for b := range c.B {
		for h := range c.H {
			kh := h / (c.H / c.KVH)
			for i := range c.T {
				qo := ((b*c.T+i)*c.H + h) * c.D
				qv := d.q.F32[qo : qo+c.D]
				// Visible keys: offsets into (k or prefix), with their gradient slices.
				var ks []key
				for p := range c.P {
					o := (kh*c.P + p) * c.D
					ks = append(ks, key{k: d.pk.F32[o : o+c.D], v: d.pv.F32[o : o+c.D], dk: g.dpk[o : o+c.D], dv: g.dpv[o : o+c.D]})
				}
				for j := 0; j < c.S && j <= c.Off+i; j++ {
					if d.qseg != nil && d.qseg[b*c.T+i] != d.kseg[b*c.KS+j] {
						continue
					}
					o := ((b*c.KS+j)*c.KVH + kh) * c.D
					ks = append(ks, key{k: d.k.F32[o : o+c.D], v: d.v.F32[o : o+c.D], dk: g.dk[o : o+c.D], dv: g.dv[o : o+c.D]})
				}
				li := (b*c.H+h)*c.T + i
				if len(ks) == 0 {
					g.lse[li] = math.Inf(-1)
					continue
				}
				s := make([]float64, len(ks))
				mx := math.Inf(-1)
				for j, kk := range ks {
					for e := range c.D {
						s[j] += float64(qv[e]) * float64(kk.k[e])
					}
					s[j] *= scale
					mx = math.Max(mx, s[j])
				}
				sum := 0.0
				for j := range s {
					s[j] = math.Exp(s[j] - mx)
					sum += s[j]
				}
				g.lse[li] = mx + math.Log(sum)
				for j, kk := range ks {
					s[j] /= sum
					for e := range c.D {
						g.out[qo+e] += s[j] * float64(kk.v[e])
					}
				}
				if dout == nil {
					continue
				}
				do := dout[qo : qo+c.D]
				dp := make([]float64, len(ks))
				di := 0.0
				for j, kk := range ks {
					for e := range c.D {
						dp[j] += float64(do[e]) * float64(kk.v[e])
					}
					di += s[j] * dp[j]
				}
				for j, kk := range ks {
					ds := s[j] * (dp[j] - di)
					for e := range c.D {
						g.dq[qo+e] += scale * ds * float64(kk.k[e])
						kk.dk[e] += scale * ds * float64(qv[e])
						kk.dv[e] += s[j] * float64(do[e])
					}
				}
			}
		}
	}
	return g
}

func attnF64To32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

// run does the fused forward and backward with dout = r.
func (d *attnData) run(c *CPU) (out, lse, dq, dk, dv, dpk, dpv *Tensor) {
	cc := d.c
	out = New(cc.B, cc.T, cc.H, cc.D)
	lse = New(cc.B, cc.H, cc.T)
	c.Attention(out, lse, d.q, d.k, d.v, &d.o)
	dq, dk, dv = New(d.q.Shape...), New(d.k.Shape...), New(d.v.Shape...)
	o := d.o
	if cc.P > 0 {
		dpk, dpv = New(d.pk.Shape...), New(d.pv.Shape...)
		o.DPrefixK, o.DPrefixV = dpk, dpv
	}
	c.AttentionBackward(dq, dk, dv, FromF32(d.r, out.Shape...), d.q, d.k, d.v, out, lse, &o)
	return
}

func TestAttentionMatchesReference(t *testing.T) {
	for _, tc := range attnCases {
		t.Run(tc.name, func(t *testing.T) {
			d := newAttnData(tc, 7)
			want := refAttention(d, d.r)
			out, lse, dq, dk, dv, dpk, dpv := d.run(NewCPU(2))
			for i, x := range lse.F32 {
				if math.IsInf(want.lse[i], -1) != math.IsInf(float64(x), -1) {
					t.Fatalf("lse[%d] = %v, want %v", i, x, want.lse[i])
				}
				if math.IsInf(want.lse[i], -1) {
					lse.F32[i], want.lse[i] = 0, 0
				}
			}
			for name, x := range map[string]*Tensor{"out": out, "dq": dq, "dk": dk, "dv": dv} {
				for i, f := range x.F32 {
					if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
						t.Fatalf("%s[%d] = %v", name, i, f)
					}
				}
			}
			tensortest.Close(t, "out", out.F32, attnF64To32(want.out), 2e-6)
			tensortest.Close(t, "lse", lse.F32, attnF64To32(want.lse), 2e-6)
			tensortest.Close(t, "dq", dq.F32, attnF64To32(want.dq), 1e-5)
			tensortest.Close(t, "dk", dk.F32, attnF64To32(want.dk), 1e-5)
			tensortest.Close(t, "dv", dv.F32, attnF64To32(want.dv), 1e-5)
			if tc.P > 0 {
				tensortest.Close(t, "dprefixK", dpk.F32, attnF64To32(want.dpk), 1e-5)
				tensortest.Close(t, "dprefixV", dpv.F32, attnF64To32(want.dpv), 1e-5)
			}
		})
	}
}

// A query that sees nothing outputs zeros; rows of k past Keys get no gradient.
func TestAttentionEmptyRowsAndUnusedKeys(t *testing.T) {
	d := newAttnData(attnCase{B: 2, T: 12, H: 2, KVH: 1, D: 16, S: 12, KS: 20, seg: "nothing"}, 3)
	out, lse, dq, dk, dv, _, _ := d.run(NewCPU(2))
	for b := range 2 {
		for h := range 2 {
			if x := lse.F32[(b*2+h)*12+1]; !math.IsInf(float64(x), -1) {
				t.Errorf("lse of the blind query (b=%d h=%d) = %v, want -Inf", b, h, x)
			}
			o := ((b*12+1)*2 + h) * 16
			for e := range 16 {
				if out.F32[o+e] != 0 || dq.F32[o+e] != 0 {
					t.Fatalf("blind query b=%d h=%d: out %v, dq %v, want 0", b, h, out.F32[o+e], dq.F32[o+e])
				}
			}
		}
		for j := 12; j < 20; j++ {
			for e := range 16 {
				if x, y := dk.F32[(b*20+j)*16+e], dv.F32[(b*20+j)*16+e]; x != 0 || y != 0 {
					t.Fatalf("key %d past Keys got gradient %v, %v", j, x, y)
				}
			}
		}
	}
}

// Gradients add into what is there, and dk, dv may be nil.
func TestAttentionBackwardAccumulatesAndNilKeys(t *testing.T) {
	d := newAttnData(attnCases[4], 11) // cache
	c := NewCPU(2)
	out, lse, dq, dk, _, _, _ := d.run(c)
	dq2 := New(dq.Shape...)
	for i := range dq2.F32 {
		dq2.F32[i] = 1
	}
	dk2 := New(dk.Shape...)
	c.AttentionBackward(dq2, dk2, nil, FromF32(d.r, out.Shape...), d.q, d.k, d.v, out, lse, &d.o)
	for i := range dq.F32 {
		// Accumulation adds into what is there; the order of the additions
		// may differ from (fresh gradient) + 1, so allow rounding.
		if math.Abs(float64(dq2.F32[i]-(dq.F32[i]+1))) > 1e-6 {
			t.Fatalf("dq[%d]: accumulated %v, want %v+1", i, dq2.F32[i], dq.F32[i])
		}
	}
	if d := attnCmpExact(dk2.F32, dk.F32); d != "" {
		t.Fatalf("dk with dv=nil differs: %s", d)
	}
	dq3 := New(dq.Shape...)
	c.AttentionBackward(dq3, nil, nil, FromF32(d.r, out.Shape...), d.q, d.k, d.v, out, lse, &d.o)
	if d := attnCmpExact(dq3.F32, dq.F32); d != "" {
		t.Fatalf("dq with dk=dv=nil differs: %s", d)
	}
}

func attnCmpExact(a, b []float32) string {
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return fmt.Sprintf("element %d: %v vs %v", i, a[i], b[i])
		}
	}
	return ""
}

func TestAttentionThreadInvariance(t *testing.T) {
	for _, tc := range []attnCase{attnCases[1], attnCases[3], attnCases[9], attnCases[13]} {
		t.Run(tc.name, func(t *testing.T) {
			d := newAttnData(tc, 5)
			a := make([]*Tensor, 7)
			a[0], a[1], a[2], a[3], a[4], a[5], a[6] = d.run(&CPU{Threads: 1})
			b := make([]*Tensor, 7)
			b[0], b[1], b[2], b[3], b[4], b[5], b[6] = d.run(&CPU{Threads: 4})
			for i := range a {
				if a[i] == nil {
					continue
				}
				if diff := attnCmpExact(a[i].F32, b[i].F32); diff != "" {
					t.Errorf("output %d: Threads=1 vs 4: %s", i, diff)
				}
			}
		})
	}
}

// Decoding one token against a cache gives the full call's last row.
func TestAttentionDecodeMatchesPrompt(t *testing.T) {
	const B, S, H, KVH, D, KS = 2, 45, 4, 2, 16, 64
	c := NewCPU(2)
	full := newAttnData(attnCase{B: B, T: S, H: H, KVH: KVH, D: D, S: S, KS: KS}, 9)
	out := New(B, S, H, D)
	c.Attention(out, New(B, H, S), full.q, full.k, full.v, &full.o)
	q1 := New(B, 1, H, D)
	for b := range B {
		copy(q1.F32[b*H*D:][:H*D], full.q.F32[(b*S+S-1)*H*D:])
	}
	o1 := New(B, 1, H, D)
	opts := full.o
	opts.Queries, opts.Offset = 1, S-1
	c.Attention(o1, New(B, H, 1), q1, full.k, full.v, &opts)
	for b := range B {
		tensortest.Close(t, "decode row", o1.F32[b*H*D:][:H*D], out.F32[(b*S+S-1)*H*D:][:H*D], 1e-6)
	}
}

// Finite differences of loss = Σ out∘R, R fixed, in float64.
func TestAttentionGradCheck(t *testing.T) {
	for _, tc := range []attnCase{
		{name: "gqa", B: 2, T: 5, H: 4, KVH: 2, D: 8, S: 7, KS: 9, Off: 2, P: 3},
		{name: "seg", B: 2, T: 6, H: 2, KVH: 1, D: 8, S: 6, P: 2, seg: "nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newAttnData(tc, 21)
			c := &CPU{Threads: 1}
			_, _, dq, dk, dv, dpk, dpv := d.run(c)
			out, lse := New(tc.B, tc.T, tc.H, tc.D), New(tc.B, tc.H, tc.T)
			loss := func() float64 {
				c.Attention(out, lse, d.q, d.k, d.v, &d.o)
				s := 0.0
				for i, x := range out.F32 {
					s += float64(x) * float64(d.r[i])
				}
				return s
			}
			tensortest.GradCheck(t, "dq", d.q.F32, dq.F32, loss, 1e-2, 1e-3, 1e-2, 0)
			tensortest.GradCheck(t, "dk", d.k.F32, dk.F32, loss, 1e-2, 1e-3, 1e-2, 0)
			tensortest.GradCheck(t, "dv", d.v.F32, dv.F32, loss, 1e-2, 1e-3, 1e-2, 0)
			tensortest.GradCheck(t, "dprefixK", d.pk.F32, dpk.F32, loss, 1e-2, 1e-3, 1e-2, 0)
			tensortest.GradCheck(t, "dprefixV", d.pv.F32, dpv.F32, loss, 1e-2, 1e-3, 1e-2, 0)
		})
	}
}

// Steady state allocates no buffers: only c.parallel's closure and the
// per-call geometry, a constant independent of the sizes.
func TestAttentionAllocs(t *testing.T) {
	d := newAttnData(attnCase{B: 2, T: 40, H: 4, KVH: 2, D: 16, S: 40, P: 3}, 1)
	c := &CPU{Threads: 1}
	out, lse, dq, dk, dv, dpk, dpv := d.run(c)
	o := d.o
	o.DPrefixK, o.DPrefixV = dpk, dpv
	dout := FromF32(d.r, out.Shape...)
	fwd := testing.AllocsPerRun(10, func() { c.Attention(out, lse, d.q, d.k, d.v, &d.o) })
	bwd := testing.AllocsPerRun(10, func() { c.AttentionBackward(dq, dk, dv, dout, d.q, d.k, d.v, out, lse, &o) })
	t.Logf("allocations per call: forward %v, backward %v", fwd, bwd)
	if fwd > 4 || bwd > 8 {
		t.Errorf("allocations per call: forward %v, backward %v; want <= 4, <= 8", fwd, bwd)
	}
}
