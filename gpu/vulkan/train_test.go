//go:build linux || freebsd

package vulkan

import (
	"math"
	"slices"
	"testing"

	"llmlab/core/autograd"
	"llmlab/core/model"
	"llmlab/core/optim"
	"llmlab/core/tensor"
)

// losses trains a fresh model of cfg for steps AdamW steps on one fixed
// batch on backend b and returns the loss of each step.
func losses(t *testing.T, b tensor.Backend, cfg model.Config, steps int) []float64 {
	t.Helper()
	m, err := model.New(cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	B, T := 2, 24
	ids, tg := make([]int32, B*T), make([]int32, B*T)
	for i := range ids {
		ids[i], tg[i] = int32(i*31%cfg.VocabSize), int32((i*31+1)%cfg.VocabSize)
	}
	ps := slices.Collect(m.Params())
	opt := optim.NewAdamW(optim.AdamWConfig{LR: 3e-3, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}, ps)
	tp := autograd.NewTape(b)
	var out []float64
	for s := 0; s < steps; s++ {
		tp.Reset()
		opt.ZeroGrad()
		loss, _, err := m.Loss(tp, model.Inputs{B: B, T: T, IDs: ids}, tg)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, float64(loss.Value.F32[0]))
		tp.Backward(loss)
		optim.ClipGradNorm(b, ps, 1)
		opt.Update(b, 3e-3)
	}
	return out
}

// TestTrainingMatchesCPU trains the tiny Llama preset and a small GPT-2 for
// a few steps on Vulkan and on the CPU: the loss curves must agree.
func TestTrainingMatchesCPU(t *testing.T) {
	vk := openOrSkip(t)
	llama, err := model.Preset(model.Llama, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	gpt2, err := model.Preset(model.GPT2, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	gpt2.Arch, gpt2.ModelType, gpt2.Activation, gpt2.AttentionBias, gpt2.OutputBias = model.GPT2, "gpt2", "gelu_new", true, true
	for name, cfg := range map[string]model.Config{"llama": llama, "gpt2": gpt2} {
		t.Run(name, func(t *testing.T) {
			want := losses(t, tensor.NewCPU(1), cfg, 5)
			got := losses(t, vk, cfg, 5)
			for i := range want {
				if math.Abs(got[i]-want[i]) > 1e-3*math.Max(1, want[i]) {
					t.Errorf("step %d: loss %.6f on Vulkan, %.6f on the CPU", i, got[i], want[i])
				}
			}
			if want[len(want)-1] >= want[0] {
				t.Errorf("loss did not fall: %v", want)
			}
			t.Logf("cpu %.5f, vulkan %.5f", want, got)
		})
	}
}
