package lora

import (
	"fmt"
	"slices"
	"testing"

	"llmlab/core/autograd"
	"llmlab/core/model"
	"llmlab/core/optim"
	"llmlab/core/tensor"
	"llmlab/core/tensor/devicetest"
)

// TestDeviceResident trains every PEFT method on a backend with its own
// memory (devicetest: weights, gradients and activations are device
// tensors) and on the CPU: the losses must be identical. Every method
// runs on backend ops alone, and a steady step copies only the loss and
// the gradient norm.
func TestDeviceResident(t *testing.T) {
	cfg, _ := model.Preset(model.Llama, "tiny")
	setups := map[string]func(m *model.Transformer) ([]*autograd.Param, error){
		"lora": func(m *model.Transformer) ([]*autograd.Param, error) {
			a, err := Apply(m, Config{Rank: 4, Alpha: 8, Targets: []string{"q_proj", "v_proj"}, Seed: 1})
			if err != nil {
				return nil, err
			}
			return a.Params(), nil
		},
		"lora-dropout": func(m *model.Transformer) ([]*autograd.Param, error) {
			a, err := Apply(m, Config{Rank: 4, Alpha: 8, Dropout: 0.1, Targets: []string{"q_proj", "v_proj"}, Seed: 1})
			if err != nil {
				return nil, err
			}
			return a.Params(), nil
		},
		"qlora": func(m *model.Transformer) ([]*autograd.Param, error) {
			if _, err := m.Quantize(tensor.NF4); err != nil {
				return nil, err
			}
			a, err := Apply(m, Config{Rank: 4, Alpha: 8, Targets: []string{"all-linear"}, Seed: 1})
			if err != nil {
				return nil, err
			}
			return a.Params(), nil
		},
		"dora": func(m *model.Transformer) ([]*autograd.Param, error) {
			a, err := Apply(m, Config{Method: DoRA, Rank: 4, Alpha: 8, Targets: []string{"q_proj"}, Seed: 1})
			if err != nil {
				return nil, err
			}
			return a.Params(), nil
		},
		"ia3": func(m *model.Transformer) ([]*autograd.Param, error) {
			a, err := ApplyIA3(m, []string{"k_proj", "v_proj", "down_proj"}, []string{"down_proj"})
			if err != nil {
				return nil, err
			}
			return a.Params(), nil
		},
		"prefix": func(m *model.Transformer) ([]*autograd.Param, error) {
			a, err := ApplyPrefix(m, PrefixConfig{Method: Prefix, VirtualTokens: 4})
			if err != nil {
				return nil, err
			}
			return a.Params(), nil
		},
		"prompt": func(m *model.Transformer) ([]*autograd.Param, error) {
			a, err := ApplyPrefix(m, PrefixConfig{Method: Prompt, VirtualTokens: 4})
			if err != nil {
				return nil, err
			}
			return a.Params(), nil
		},
		"bottleneck": func(m *model.Transformer) ([]*autograd.Param, error) {
			a, err := ApplyBottleneck(m, BottleneckConfig{Size: 8, Seed: 1})
			if err != nil {
				return nil, err
			}
			return a.Params(), nil
		},
	}
	// traffic is a steady step's copies and host arguments on the
	// device, per method.
	traffic := map[string]int{}
	resident := map[string]bool{"lora": true, "lora-dropout": true, "qlora": true, "ia3": true, "dora": true, "prefix": true, "prompt": true, "bottleneck": true}
	for name, setup := range setups {
		run := func(b tensor.Backend) (out []float32, err error) {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("panic: %v", r)
				}
			}()
			m, _ := model.New(cfg, 5)
			ps, err := setup(m)
			if err != nil {
				return nil, err
			}
			opt := optim.NewAdamW(optim.AdamWConfig{LR: 1e-2, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8}, ps)
			tp := autograd.NewTape(b)
			ids := make([]int32, 32)
			tg := make([]int32, 32)
			for i := range ids {
				ids[i], tg[i] = int32(i*7%cfg.VocabSize), int32((i*7+1)%cfg.VocabSize)
			}
			dev, _ := b.(*devicetest.Backend)
			for step := range 3 {
				var before devicetest.Stats
				if dev != nil {
					before = dev.Stats()
				}
				tp.Reset()
				loss, _, err := m.Loss(tp, model.Inputs{B: 2, T: 16, IDs: ids}, tg)
				if err != nil {
					return nil, err
				}
				out = append(out, loss.Value.At(0))
				tp.Backward(loss)
				optim.ClipGradNorm(b, ps, 1)
				opt.Update(b, 1e-2)
				opt.ZeroGrad()
				if dev != nil && step == 2 {
					after := dev.Stats()
					traffic[name] = after.Uploads + after.Downloads - before.Uploads - before.Downloads + after.HostArgs - before.HostArgs
				}
			}
			return out, nil
		}
		want, err := run(tensor.NewCPU(1))
		if err != nil {
			t.Fatalf("%s on the CPU: %v", name, err)
		}
		got, err := run(devicetest.New(1))
		if err != nil {
			t.Errorf("%s on device tensors: %v", name, err)
			continue
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: losses %v on device tensors, %v on the CPU", name, got, want)
		}
		t.Logf("%-12s a steady step: %d copies and host arguments", name, traffic[name])
		// The methods on backend ops alone copy the loss and the clipped
		// norm, nothing else.
		if resident[name] && traffic[name] > 2 {
			t.Errorf("%s: a steady step on device tensors made %d copies and host arguments, want at most 2", name, traffic[name])
		}
	}
}
