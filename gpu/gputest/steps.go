package gputest

import (
	"testing"

	"llmlab/core/autograd"
	"llmlab/core/model"
	"llmlab/core/optim"
	"llmlab/core/tensor"
)

// StepLosses runs steps AdamW steps of the tiny Llama preset on one fixed
// batch of B rows of T tokens on b and returns each step's loss; after(i),
// when set, runs after step i. The loss is the one value a step reads: the
// gradient norm stays where the backend computed it (optim.Clipper), so a
// device backend's traffic per step can be counted around it.
func StepLosses(t testing.TB, b tensor.Backend, steps, B, T int, after func(step int)) []float32 {
	t.Helper()
	cfg, err := model.Preset(model.Llama, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.New(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	ids, targets := make([]int32, B*T), make([]int32, B*T)
	for i := range ids {
		ids[i] = int32((i*7919 + 13) % cfg.VocabSize)
		targets[i] = int32((i*104729 + 7) % cfg.VocabSize)
	}
	targets[5] = -1 // an ignored position
	opt := optim.NewAdamW(optim.AdamWConfig{LR: 1e-3, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}, m.ParamList())
	tp := autograd.NewTape(b)
	var clip optim.Clipper
	defer clip.Free()
	var losses []float32
	for i := range steps {
		tp.Reset()
		loss, _, err := m.Loss(tp, model.Inputs{B: B, T: T, IDs: ids}, targets)
		if err != nil {
			t.Fatal(err)
		}
		losses = append(losses, loss.Value.At(0))
		if err := tp.Backward(loss); err != nil {
			t.Fatal(err)
		}
		clip.Clip(b, m.ParamList(), 1)
		opt.Update(b, 1e-3)
		opt.ZeroGrad()
		if after != nil {
			after(i)
		}
	}
	return losses
}
