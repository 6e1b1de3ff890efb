package optim

import (
	"math"
	"testing"

	"llmlab/core/autograd"
	"llmlab/core/tensor"
	"llmlab/core/tensor/tensortest"
)

// refAdamW is torch.optim.AdamW's update in float64.
func refAdamW(p, g, m, v []float64, lr, b1, b2, eps, wd float64, step int) {
	bc1 := 1 - math.Pow(b1, float64(step))
	bc2 := 1 - math.Pow(b2, float64(step))
	for i := range p {
		p[i] *= 1 - lr*wd
		m[i] = b1*m[i] + (1-b1)*g[i]
		v[i] = b2*v[i] + (1-b2)*g[i]*g[i]
		p[i] -= lr / bc1 * m[i] / (math.Sqrt(v[i])/math.Sqrt(bc2) + eps)
	}
}

func TestAdamWMatchesReference(t *testing.T) {
	w := &autograd.Param{Name: "w", Value: tensor.FromF32(tensortest.Rand(1, 12, 1), 3, 4)}
	bias := &autograd.Param{Name: "b", Value: tensor.FromF32(tensortest.Rand(2, 4, 1), 4)}
	frozen := &autograd.Param{Name: "f", Value: tensor.FromF32(tensortest.Rand(3, 4, 1), 4), Frozen: true}
	o := NewAdamW(AdamWConfig{LR: 1e-2, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}, []*autograd.Param{w, bias, frozen})
	ref := map[*autograd.Param][3][]float64{}
	for _, p := range []*autograd.Param{w, bias} {
		pv := make([]float64, p.Value.Numel())
		for i, x := range p.Value.F32 {
			pv[i] = float64(x)
		}
		ref[p] = [3][]float64{pv, make([]float64, len(pv)), make([]float64, len(pv))}
	}
	b := tensor.NewCPU(2)
	frozenBefore := append([]float32(nil), frozen.Value.F32...)
	for step := 1; step <= 5; step++ {
		for k, p := range []*autograd.Param{w, bias} {
			p.Grad = tensor.FromF32(tensortest.Rand(uint64(10*step+k), p.Value.Numel(), 1), p.Value.Shape...)
			g := make([]float64, p.Value.Numel())
			for i, x := range p.Grad.F32 {
				g[i] = float64(x)
			}
			wd := 0.1
			if p == bias {
				wd = 0
			}
			r := ref[p]
			refAdamW(r[0], g, r[1], r[2], 1e-2, 0.9, 0.95, 1e-8, wd, step)
		}
		o.Update(b, 1e-2)
	}
	for _, p := range []*autograd.Param{w, bias} {
		want := make([]float32, len(ref[p][0]))
		for i, x := range ref[p][0] {
			want[i] = float32(x)
		}
		tensortest.Close(t, p.Name, p.Value.F32, want, 1e-6)
	}
	tensortest.Close(t, "frozen", frozen.Value.F32, frozenBefore, 0)
	if len(o.Params) != 2 {
		t.Fatalf("optimizer holds %d params, want 2 (frozen ones get no state)", len(o.Params))
	}

	dir := t.TempDir()
	if err := o.Save(dir); err != nil {
		t.Fatal(err)
	}
	o2 := NewAdamW(o.Cfg, []*autograd.Param{w, bias})
	if err := o2.Load(dir); err != nil {
		t.Fatal(err)
	}
	if o2.Step != 5 {
		t.Fatalf("step %d", o2.Step)
	}
	tensortest.Close(t, "m", o2.m[0].F32, o.m[0].F32, 0)
	o3 := NewAdamW(o.Cfg, []*autograd.Param{w})
	if err := o3.Load(dir); err == nil {
		t.Fatal("loading state for other parameters succeeded")
	}
}

func TestScheduleAndClip(t *testing.T) {
	s := Schedule{Kind: Cosine, Warmup: 10, Total: 110, MinRatio: 0.1}
	for _, tc := range []struct {
		step int
		want float64
	}{{1, 0.1}, {10, 1}, {60, 0.55}, {110, 0.1}, {200, 0.1}} {
		if got := s.LR(1, tc.step); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("LR(step %d) = %v, want %v", tc.step, got, tc.want)
		}
	}
	p := &autograd.Param{Name: "p", Value: tensor.New(2), Grad: tensor.FromF32([]float32{3, 4}, 2)}
	n := ClipGradNorm(tensor.NewCPU(1), []*autograd.Param{p}, 1)
	if math.Abs(n-5) > 1e-6 || math.Abs(float64(p.Grad.F32[0])-0.6) > 1e-5 {
		t.Fatalf("norm %v, grad %v", n, p.Grad.F32)
	}
}
