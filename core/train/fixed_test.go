package train

import (
	"slices"
	"testing"

	"llmlab/core/model"
	"llmlab/core/optim"
	"llmlab/core/tensor"
)

func TestFixedStep(t *testing.T) {
	ids, targets := FixedBatch(50, 200)
	again, _ := FixedBatch(50, 200)
	if !slices.Equal(ids, again) || slices.ContainsFunc(append(ids, targets...), func(v int32) bool { return v < 0 || v >= 50 }) {
		t.Fatal("FixedBatch: not deterministic, or outside the vocabulary")
	}
	cfg, err := model.Preset(model.Llama, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.New(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	b := tensor.NewCPU(1)
	ps := m.ParamList()
	opt := optim.NewAdamW(optim.AdamWConfig{LR: 1e-3, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8}, ps)
	before := slices.Clone(ps[0].Value.F32)
	hooked := 0
	step := FixedStep(m, b, opt, 2, 8, 1e-3, func() {
		hooked++
		if ps[0].Grad == nil || !slices.ContainsFunc(ps[0].Grad.F32, func(g float32) bool { return g != 0 }) {
			t.Error("no gradient when the hook runs")
		}
	})
	for range 2 {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	if hooked != 2 || slices.Equal(before, ps[0].Value.F32) {
		t.Errorf("hook ran %d times; weights moved: %v", hooked, !slices.Equal(before, ps[0].Value.F32))
	}
	if slices.ContainsFunc(ps[0].Grad.F32, func(g float32) bool { return g != 0 }) {
		t.Error("gradients not zeroed after the step")
	}
}
