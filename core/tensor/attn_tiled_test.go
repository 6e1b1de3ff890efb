package tensor

import (
	"math"
	"testing"

	"llmlab/core/tensor/tensortest"
)

// The tiled path of every kernel set against the row path, on every case
// with enough queries, and with a sliding window and a softcap.
func TestAttentionTiledMatchesRows(t *testing.T) {
	type variant struct {
		name    string
		window  int
		softcap float32
	}
	for _, tc := range attnCases {
		if tc.T < attnTiledMin {
			continue
		}
		for _, vr := range []variant{{name: "plain"}, {name: "window", window: 7}, {name: "softcap", softcap: 2}, {name: "both", window: 5, softcap: 3}} {
			d := newAttnData(tc, 13)
			d.o.Window, d.o.Softcap = vr.window, vr.softcap
			c := NewCPU(3)
			cc := d.c
			want, wantL := New(cc.B, cc.T, cc.H, cc.D), New(cc.B, cc.H, cc.T)
			c.attentionRows(want, wantL, d.q, d.k, d.v, &d.o)
			for _, kern := range kernelSets() {
				t.Run(tc.name+"/"+vr.name+"/"+kern.name, func(t *testing.T) {
					got, gotL := New(cc.B, cc.T, cc.H, cc.D), New(cc.B, cc.H, cc.T)
					for i := range got.F32 {
						got.F32[i] = float32(math.NaN()) // every output is written
					}
					c.attentionTiled(kern, got, gotL, d.q, d.k, d.v, &d.o)
					for i, x := range wantL.F32 {
						if math.IsInf(float64(x), -1) != math.IsInf(float64(gotL.F32[i]), -1) {
							t.Fatalf("lse[%d] = %v, want %v", i, gotL.F32[i], x)
						}
					}
					tensortest.Close(t, "out", got.F32, want.F32, 2e-6)
					tensortest.Close(t, "lse", finite(gotL.F32), finite(wantL.F32), 2e-6)
					one, oneL := New(cc.B, cc.T, cc.H, cc.D), New(cc.B, cc.H, cc.T)
					(&CPU{Threads: 1}).attentionTiled(kern, one, oneL, d.q, d.k, d.v, &d.o)
					if diff := attnCmpExact(one.F32, got.F32); diff != "" {
						t.Errorf("Threads=1 vs 3: %s", diff)
					}
				})
			}
		}
	}
}

// finite replaces -Inf (a query that sees nothing) with 0.
func finite(x []float32) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		if !math.IsInf(float64(v), 0) {
			out[i] = v
		}
	}
	return out
}

// BenchmarkAttentionPrompt: one 512-token prompt of a 12-head, 4-kv-head
// model with head size 64, tiled against one row at a time.
func BenchmarkAttentionPrompt(b *testing.B) {
	d := newAttnData(attnCase{B: 1, T: 512, H: 12, KVH: 4, D: 64, S: 512}, 1)
	out, lse := New(1, 512, 12, 64), New(1, 12, 512)
	c := NewCPU(1)
	b.Run("tiled", func(b *testing.B) {
		for b.Loop() {
			c.attentionTiled(gemmKernels(), out, lse, d.q, d.k, d.v, &d.o)
		}
	})
	b.Run("rows", func(b *testing.B) {
		for b.Loop() {
			c.attentionRows(out, lse, d.q, d.k, d.v, &d.o)
		}
	})
}
