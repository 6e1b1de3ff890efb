package gputest

import (
	"fmt"
	"math"
	"testing"

	"llmlab/core/autograd"
	"llmlab/core/model"
	"llmlab/core/optim"
	"llmlab/core/tensor"
	"llmlab/lora"
)

// PEFTMatchesCPU trains each PEFT method for three steps of the tiny Llama
// preset on b and on the CPU backend: the losses must agree to 1e-3
// (relative). Every method runs on backend ops alone.
func PEFTMatchesCPU(t *testing.T, b tensor.Backend) {
	cfg, err := model.Preset(model.Llama, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	setups := map[string]func(m *model.Transformer) ([]*autograd.Param, error){
		"lora": func(m *model.Transformer) ([]*autograd.Param, error) {
			a, err := lora.Apply(m, lora.Config{Rank: 4, Alpha: 8, Targets: []string{"q_proj", "v_proj"}, Seed: 1})
			if err != nil {
				return nil, err
			}
			return a.Params(), nil
		},
		"qlora": func(m *model.Transformer) ([]*autograd.Param, error) {
			if _, err := m.Quantize(tensor.NF4); err != nil {
				return nil, err
			}
			a, err := lora.Apply(m, lora.Config{Rank: 4, Alpha: 8, Targets: []string{"all-linear"}, Seed: 1})
			if err != nil {
				return nil, err
			}
			return a.Params(), nil
		},
		"dora": func(m *model.Transformer) ([]*autograd.Param, error) {
			a, err := lora.Apply(m, lora.Config{Method: lora.DoRA, Rank: 4, Alpha: 8, Targets: []string{"q_proj"}, Seed: 1})
			if err != nil {
				return nil, err
			}
			return a.Params(), nil
		},
		"ia3": func(m *model.Transformer) ([]*autograd.Param, error) {
			a, err := lora.ApplyIA3(m, []string{"k_proj", "v_proj", "down_proj"}, []string{"down_proj"})
			if err != nil {
				return nil, err
			}
			return a.Params(), nil
		},
		"prefix": func(m *model.Transformer) ([]*autograd.Param, error) {
			a, err := lora.ApplyPrefix(m, lora.PrefixConfig{Method: lora.Prefix, VirtualTokens: 4})
			if err != nil {
				return nil, err
			}
			return a.Params(), nil
		},
		"prompt": func(m *model.Transformer) ([]*autograd.Param, error) {
			a, err := lora.ApplyPrefix(m, lora.PrefixConfig{Method: lora.Prompt, VirtualTokens: 4})
			if err != nil {
				return nil, err
			}
			return a.Params(), nil
		},
		"bottleneck": func(m *model.Transformer) ([]*autograd.Param, error) {
			a, err := lora.ApplyBottleneck(m, lora.BottleneckConfig{Size: 8, Seed: 1})
			if err != nil {
				return nil, err
			}
			return a.Params(), nil
		},
	}
	run := func(b tensor.Backend, setup func(m *model.Transformer) ([]*autograd.Param, error)) (out []float32, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		m, err := model.New(cfg, 5)
		if err != nil {
			return nil, err
		}
		ps, err := setup(m)
		if err != nil {
			return nil, err
		}
		opt := optim.NewAdamW(optim.AdamWConfig{LR: 1e-2, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8}, ps)
		tp := autograd.NewTape(b)
		ids, tg := make([]int32, 32), make([]int32, 32)
		for i := range ids {
			ids[i], tg[i] = int32(i*7%cfg.VocabSize), int32((i*7+1)%cfg.VocabSize)
		}
		for range 3 {
			tp.Reset()
			loss, _, err := m.Loss(tp, model.Inputs{B: 2, T: 16, IDs: ids}, tg)
			if err != nil {
				return nil, err
			}
			out = append(out, loss.Value.At(0))
			if err := tp.Backward(loss); err != nil {
				return nil, err
			}
			optim.ClipGradNorm(b, ps, 1)
			opt.Update(b, 1e-2)
			opt.ZeroGrad()
		}
		return out, nil
	}
	for name, setup := range setups {
		t.Run(name, func(t *testing.T) {
			want, err := run(tensor.NewCPU(1), setup)
			if err != nil {
				t.Fatalf("on the CPU: %v", err)
			}
			got, err := run(b, setup)
			if err != nil {
				t.Fatalf("on %s: %v", b.Name(), err)
			}
			for i := range want {
				if d := math.Abs(float64(got[i] - want[i])); d > 1e-3*math.Max(1, math.Abs(float64(want[i]))) {
					t.Errorf("step %d: loss %v on %s, %v on the CPU", i+1, got[i], b.Name(), want[i])
				}
			}
		})
	}
}
