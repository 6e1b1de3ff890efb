package tensor_test

import (
	"testing"

	"llmlab/core/tensor"
	"llmlab/core/tensor/tensortest"
)

// Every kernel pair is checked the same way: loss = Σ out∘R for a fixed
// random R; the backward kernel's input gradients (with dout = R) must
// match central differences of that loss.

func dotR(out, r []float32) float64 {
	var s float64
	for i := range out {
		s += float64(out[i]) * float64(r[i])
	}
	return s
}

func TestOpGradients(t *testing.T) {
	c := tensor.NewCPU(2)
	const N, C = 5, 12
	t.Run("layernorm", func(t *testing.T) {
		x := tensor.FromF32(tensortest.Rand(1, N*C, 1), N, C)
		w := tensor.FromF32(tensortest.Rand(2, C, 1), C)
		b := tensor.FromF32(tensortest.Rand(3, C, 1), C)
		r := tensortest.Rand(4, N*C, 1)
		out, mean, rstd := tensor.New(N, C), tensor.New(N), tensor.New(N)
		f := func() float64 { c.LayerNorm(out, mean, rstd, x, w, b, 1e-5); return dotR(out.F32, r) }
		f()
		dx, dw, db := tensor.New(N, C), tensor.New(C), tensor.New(C)
		c.LayerNormBackward(dx, dw, db, tensor.FromF32(r, N, C), x, w, mean, rstd)
		tensortest.GradCheck(t, "dx", x.F32, dx.F32, f, 1e-2, 1e-3, 1e-2, 0)
		tensortest.GradCheck(t, "dw", w.F32, dw.F32, f, 1e-2, 1e-3, 1e-2, 0)
		tensortest.GradCheck(t, "db", b.F32, db.F32, f, 1e-2, 1e-3, 1e-2, 0)
	})
	t.Run("rmsnorm", func(t *testing.T) {
		x := tensor.FromF32(tensortest.Rand(5, N*C, 1), N, C)
		w := tensor.FromF32(tensortest.Rand(6, C, 1), C)
		r := tensortest.Rand(7, N*C, 1)
		out, rstd := tensor.New(N, C), tensor.New(N)
		f := func() float64 { c.RMSNorm(out, rstd, x, w, 1e-5); return dotR(out.F32, r) }
		f()
		dx, dw := tensor.New(N, C), tensor.New(C)
		c.RMSNormBackward(dx, dw, tensor.FromF32(r, N, C), x, w, rstd)
		tensortest.GradCheck(t, "dx", x.F32, dx.F32, f, 1e-2, 1e-3, 1e-2, 0)
		tensortest.GradCheck(t, "dw", w.F32, dw.F32, f, 1e-2, 1e-3, 1e-2, 0)
	})
	t.Run("gelu+swiglu", func(t *testing.T) {
		x := tensor.FromF32(tensortest.Rand(8, N*C, 3), N, C)
		u := tensor.FromF32(tensortest.Rand(9, N*C, 3), N, C)
		r := tensortest.Rand(10, N*C, 1)
		out := tensor.New(N, C)
		fg := func() float64 { c.GELU(out, x); return dotR(out.F32, r) }
		dx := tensor.New(N, C)
		c.GELUBackward(dx, tensor.FromF32(r, N, C), x)
		tensortest.GradCheck(t, "gelu", x.F32, dx.F32, fg, 1e-2, 1e-3, 1e-2, 0)
		fs := func() float64 { c.SwiGLU(out, x, u); return dotR(out.F32, r) }
		dg, du := tensor.New(N, C), tensor.New(N, C)
		c.SwiGLUBackward(dg, du, tensor.FromF32(r, N, C), x, u)
		tensortest.GradCheck(t, "gate", x.F32, dg.F32, fs, 1e-2, 1e-3, 1e-2, 0)
		tensortest.GradCheck(t, "up", u.F32, du.F32, fs, 1e-2, 1e-3, 1e-2, 0)
	})
	t.Run("geglu+softcap", func(t *testing.T) {
		x := tensor.FromF32(tensortest.Rand(18, N*C, 3), N, C)
		u := tensor.FromF32(tensortest.Rand(19, N*C, 3), N, C)
		r := tensortest.Rand(20, N*C, 1)
		out := tensor.New(N, C)
		fg := func() float64 { c.GeGLU(out, x, u); return dotR(out.F32, r) }
		dg, du := tensor.New(N, C), tensor.New(N, C)
		c.GeGLUBackward(dg, du, tensor.FromF32(r, N, C), x, u)
		tensortest.GradCheck(t, "geglu gate", x.F32, dg.F32, fg, 1e-2, 1e-3, 1e-2, 0)
		tensortest.GradCheck(t, "geglu up", u.F32, du.F32, fg, 1e-2, 1e-3, 1e-2, 0)
		const cp = 1.5 // below the inputs' range, so the cap bends
		fs := func() float64 { c.Softcap(out, x, cp); return dotR(out.F32, r) }
		fs()
		dx := tensor.New(N, C)
		c.SoftcapBackward(dx, tensor.FromF32(r, N, C), out, cp)
		tensortest.GradCheck(t, "softcap", x.F32, dx.F32, fs, 1e-2, 1e-3, 1e-2, 0)
	})
	t.Run("rope scaled", func(t *testing.T) {
		// A table from given frequencies with an attention factor (YaRN,
		// longrope) is still a scaled rotation: the backward must match.
		const H, D = 2, 6
		tab := tensor.NewRoPETableFreqs(D, 16, []float32{1, 0.3, 0.01}, 1.2)
		pos := []int32{0, 3, 7, 15, 2}
		x := tensor.FromF32(tensortest.Rand(21, N*H*D, 1), N, H, D)
		r := tensortest.Rand(22, N*H*D, 1)
		out := tensor.New(N, H, D)
		f := func() float64 { c.RoPE(out, x, pos, tab); return dotR(out.F32, r) }
		dx := tensor.New(N, H, D)
		c.RoPEBackward(dx, tensor.FromF32(r, N, H, D), pos, tab)
		tensortest.GradCheck(t, "rope scaled", x.F32, dx.F32, f, 1e-2, 1e-3, 1e-2, 0)
	})
	t.Run("rope", func(t *testing.T) {
		const H, D = 3, 8
		tab := tensor.NewRoPETable(D, 16, 10000)
		pos := []int32{0, 3, 7, 15, 2}
		x := tensor.FromF32(tensortest.Rand(11, N*H*D, 1), N, H, D)
		r := tensortest.Rand(12, N*H*D, 1)
		out := tensor.New(N, H, D)
		f := func() float64 { c.RoPE(out, x, pos, tab); return dotR(out.F32, r) }
		dx := tensor.New(N, H, D)
		c.RoPEBackward(dx, tensor.FromF32(r, N, H, D), pos, tab)
		tensortest.GradCheck(t, "rope", x.F32, dx.F32, f, 1e-2, 1e-3, 1e-2, 0)
	})
	t.Run("cross-entropy", func(t *testing.T) {
		const V = 9
		logits := tensor.FromF32(tensortest.Rand(13, N*V, 3), N, V)
		targets := []int32{1, -100, 8, 0, 4}
		r := tensortest.Rand(14, N, 1)
		loss, lse := tensor.New(N), tensor.New(N)
		f := func() float64 { c.CrossEntropy(loss, lse, logits, targets); return dotR(loss.F32, r) }
		f()
		if loss.F32[1] != 0 {
			t.Fatalf("ignored target has loss %v", loss.F32[1])
		}
		d := tensor.New(N, V)
		c.CrossEntropyBackward(d, tensor.FromF32(r, N), logits, lse, targets)
		tensortest.GradCheck(t, "dlogits", logits.F32, d.F32, f, 1e-2, 1e-3, 1e-2, 0)
	})
	t.Run("embedding+bias", func(t *testing.T) {
		const V = 7
		table := tensor.FromF32(tensortest.Rand(15, V*C, 1), V, C)
		ids := []int32{3, 0, 3, 6, 1}
		bias := tensor.FromF32(tensortest.Rand(16, C, 1), C)
		r := tensortest.Rand(17, N*C, 1)
		emb, out := tensor.New(N, C), tensor.New(N, C)
		f := func() float64 { c.Embedding(emb, ids, table); c.AddBias(out, emb, bias); return dotR(out.F32, r) }
		dt, db := tensor.New(V, C), tensor.New(C)
		c.EmbeddingBackward(dt, ids, tensor.FromF32(r, N, C))
		c.SumRows(db, tensor.FromF32(r, N, C))
		tensortest.GradCheck(t, "dtable", table.F32, dt.F32, f, 1e-2, 1e-3, 1e-2, 0)
		tensortest.GradCheck(t, "dbias", bias.F32, db.F32, f, 1e-2, 1e-3, 1e-2, 0)
	})
}

// TestAttentionGradients covers GQA, a KV cache offset, a learned prefix,
// segment ids (including a query that sees no key), sliding windows and
// score softcaps.
func TestAttentionGradients(t *testing.T) {
	c := tensor.NewCPU(2)
	for _, tc := range []struct {
		name            string
		B, T, S, H, KVH int
		P               int
		seg             bool
		window          int
		softcap         float32
	}{
		{"plain", 2, 5, 5, 2, 2, 0, false, 0, 0},
		{"gqa", 1, 6, 6, 4, 2, 0, false, 0, 0},
		{"cache", 1, 2, 6, 2, 1, 0, false, 0, 0},
		{"prefix", 2, 4, 4, 2, 1, 3, false, 0, 0},
		{"segments", 2, 6, 6, 2, 2, 0, true, 0, 0},
		{"window", 2, 7, 7, 2, 1, 0, false, 3, 0},
		{"window+cache", 1, 3, 8, 2, 2, 0, false, 4, 0},
		{"softcap", 2, 5, 5, 2, 1, 0, false, 0, 0.8},
		{"window+softcap+prefix", 1, 6, 6, 2, 2, 2, false, 2, 1.1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const D = 8
			o := tensor.AttentionOpts{Batch: tc.B, Heads: tc.H, KVHeads: tc.KVH, HeadDim: D,
				Queries: tc.T, Keys: tc.S, KStride: tc.S, Offset: tc.S - tc.T, Window: tc.window, Softcap: tc.softcap}
			q := tensor.FromF32(tensortest.Rand(1, tc.B*tc.T*tc.H*D, 1), tc.B, tc.T, tc.H, D)
			k := tensor.FromF32(tensortest.Rand(2, tc.B*tc.S*tc.KVH*D, 1), tc.B, tc.S, tc.KVH, D)
			v := tensor.FromF32(tensortest.Rand(3, tc.B*tc.S*tc.KVH*D, 1), tc.B, tc.S, tc.KVH, D)
			var pk, pv *tensor.Tensor
			if tc.P > 0 {
				pk = tensor.FromF32(tensortest.Rand(4, tc.KVH*tc.P*D, 1), tc.KVH, tc.P, D)
				pv = tensor.FromF32(tensortest.Rand(5, tc.KVH*tc.P*D, 1), tc.KVH, tc.P, D)
				o.PrefixK, o.PrefixV = pk, pv
			}
			if tc.seg {
				seg := []int32{1, 1, 2, 2, 2, 3, -1, 1, 1, 1, 2, 2}
				o.QSeg, o.KSeg = seg, seg
			}
			r := tensortest.Rand(6, q.Numel(), 1)
			out, lse := tensor.New(q.Shape...), tensor.New(tc.B, tc.H, tc.T)
			f := func() float64 { c.Attention(out, lse, q, k, v, &o); return dotR(out.F32, r) }
			f()
			dq, dk, dv := tensor.New(q.Shape...), tensor.New(k.Shape...), tensor.New(v.Shape...)
			ob := o
			if tc.P > 0 {
				ob.DPrefixK, ob.DPrefixV = tensor.New(pk.Shape...), tensor.New(pv.Shape...)
			}
			c.AttentionBackward(dq, dk, dv, tensor.FromF32(r, q.Shape...), q, k, v, out, lse, &ob)
			tensortest.GradCheck(t, "dq", q.F32, dq.F32, f, 1e-2, 1e-3, 1e-2, 0)
			tensortest.GradCheck(t, "dk", k.F32, dk.F32, f, 1e-2, 1e-3, 1e-2, 0)
			tensortest.GradCheck(t, "dv", v.F32, dv.F32, f, 1e-2, 1e-3, 1e-2, 0)
			if tc.P > 0 {
				tensortest.GradCheck(t, "dprefixK", pk.F32, ob.DPrefixK.F32, f, 1e-2, 1e-3, 1e-2, 0)
				tensortest.GradCheck(t, "dprefixV", pv.F32, ob.DPrefixV.F32, f, 1e-2, 1e-3, 1e-2, 0)
			}
			for i, x := range out.F32 {
				if x != x {
					t.Fatalf("NaN at %d", i)
				}
			}
		})
	}
}
