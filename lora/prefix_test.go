package lora

import (
	"path/filepath"
	"slices"
	"testing"

	"llmlab/core/autograd"
	"llmlab/core/model"
	"llmlab/core/optim"
	"llmlab/core/tensor"
	"llmlab/core/tensor/tensortest"
)

func prefixCases() []struct {
	name string
	cfg  PrefixConfig
} {
	return []struct {
		name string
		cfg  PrefixConfig
	}{
		{"prefix", PrefixConfig{Method: Prefix, VirtualTokens: 3, Seed: 1}},
		{"prefix-mlp", PrefixConfig{Method: Prefix, VirtualTokens: 3, Projection: true, Hidden: 8, Seed: 2}},
		{"prompt", PrefixConfig{Method: Prompt, VirtualTokens: 3, Seed: 3}},
		{"prompt-text", PrefixConfig{Method: Prompt, VirtualTokens: 4, InitIDs: []int32{7, 9}, InitText: "x", Seed: 4}},
	}
}

// TestPrefixGradients checks every trainable tensor of prefix and prompt
// tuning against central differences, with the base frozen.
func TestPrefixGradients(t *testing.T) {
	for _, arch := range []model.Arch{model.Llama, model.GPT2} {
		for _, tc := range prefixCases() {
			t.Run(arch.String()+"/"+tc.name, func(t *testing.T) {
				m := tinyModel(t, arch)
				a, err := ApplyPrefix(m, tc.cfg)
				if err != nil {
					t.Fatal(err)
				}
				if tc.cfg.Method == Prefix && !tc.cfg.Projection {
					// Larger prefixes than the init so that they matter.
					copy(a.Emb.Value.F32, tensortest.Rand(11, a.Emb.Value.Numel(), 0.5))
				}
				b := tensor.NewCPU(1)
				tp := autograd.NewTape(b)
				if err := tp.Backward(loss(t, m, tp)); err != nil {
					t.Fatal(err)
				}
				for p := range m.Params() {
					if p.Grad != nil {
						t.Fatalf("frozen base parameter %s received a gradient", p.Name)
					}
				}
				f := func() float64 { return noGradLoss(t, m, b) }
				for _, p := range a.Params() {
					tensortest.GradCheck(t, p.Name, p.Value.F32, p.Grad.F32, f, 1e-2, 5e-4, 3e-2, 16)
				}
			})
		}
	}
}

// TestPromptIsConcatenatedInput: prompt tuning through the prefix path
// gives the logits of the model run on [virtual embeddings; token
// embeddings], the input PEFT builds, with the virtual rows dropped.
func TestPromptIsConcatenatedInput(t *testing.T) {
	for _, arch := range []model.Arch{model.Llama, model.GPT2} {
		t.Run(arch.String(), func(t *testing.T) {
			m := tinyModel(t, arch)
			a, err := ApplyPrefix(m, PrefixConfig{Method: Prompt, VirtualTokens: 3, Seed: 5})
			if err != nil {
				t.Fatal(err)
			}
			b := tensor.NewCPU(1)
			tp := autograd.NewTape(b)
			tp.NoGrad = true
			got, err := m.Forward(tp, model.Inputs{B: 2, T: 5, IDs: ids})
			if err != nil {
				t.Fatal(err)
			}
			P, T, C := 3, 5, m.Cfg.Hidden
			emb := m.Embed.Value.Float32s()
			for row := 0; row < 2; row++ {
				x := tensor.New(P+T, C)
				copy(x.F32, a.Emb.Value.F32)
				for i := 0; i < T; i++ {
					id := ids[row*T+i]
					copy(x.F32[(P+i)*C:(P+i+1)*C], emb[int(id)*C:(int(id)+1)*C])
				}
				tp := autograd.NewTape(b)
				tp.NoGrad = true
				h, err := m.Hidden(tp, model.Inputs{B: 1, T: P + T, Embeds: tp.Const(x), NoPrefix: true})
				if err != nil {
					t.Fatal(err)
				}
				want := m.Logits(tp, h).Value.F32[P*m.Cfg.VocabSize:]
				V := m.Cfg.VocabSize
				tensortest.Close(t, "prompt row", got.Value.F32[row*T*V:(row+1)*T*V], want, 1e-5)
			}
		})
	}
}

// TestPrefixCacheAndFiles: generation through the KV cache matches the
// full forward with a prefix; saving (folded) and loading gives the same
// logits; disabling gives the base.
func TestPrefixCacheAndFiles(t *testing.T) {
	for _, arch := range []model.Arch{model.Llama, model.GPT2} {
		for _, tc := range prefixCases() {
			t.Run(arch.String()+"/"+tc.name, func(t *testing.T) {
				m := tinyModel(t, arch)
				b := tensor.NewCPU(1)
				logits := func() []float32 { return forwardLogits(t, m, b) }
				base := logits()
				a, err := ApplyPrefix(m, tc.cfg)
				if err != nil {
					t.Fatal(err)
				}
				tuned := logits()
				if d, _ := tensortest.MaxDiff(tuned, base); d < 1e-5 {
					t.Fatal("the prefix does not change the logits")
				}
				// Token by token through the cache (twice: the second
				// pass reuses the cached prefixes).
				V := m.Cfg.VocabSize
				for pass := 0; pass < 2; pass++ {
					cache := m.NewCache(2, 8)
					for i := 0; i < 5; i++ {
						tp := autograd.NewTape(b)
						tp.NoGrad = true
						step := []int32{ids[i], ids[5+i]}
						l, err := m.Forward(tp, model.Inputs{B: 2, T: 1, IDs: step, Cache: cache})
						if err != nil {
							t.Fatal(err)
						}
						for row := 0; row < 2; row++ {
							tensortest.Close(t, "cached step", l.Value.F32[row*V:(row+1)*V], tuned[(row*5+i)*V:(row*5+i+1)*V], 1e-5)
						}
					}
				}
				a.SetEnabled(false)
				tensortest.Close(t, "disabled", logits(), base, 0)
				a.SetEnabled(true)
				dir := filepath.Join(t.TempDir(), "adapter")
				if err := a.Save(dir, "tiny"); err != nil {
					t.Fatal(err)
				}
				a.Remove()
				tensortest.Close(t, "removed", logits(), base, 0)
				a2, err := LoadPrefix(m, dir)
				if err != nil {
					t.Fatal(err)
				}
				tensortest.Close(t, "loaded", logits(), tuned, 1e-5)
				if tc.cfg.Projection && a2.W1 != nil {
					t.Error("a saved adapter should hold folded prefixes")
				}
				// The training state (with the MLP) resumes exactly.
				a2.Remove()
				a3, err := ApplyPrefix(m, tc.cfg)
				if err != nil {
					t.Fatal(err)
				}
				ck := filepath.Join(t.TempDir(), "ck")
				if err := a.SaveWeights(ck); err != nil {
					t.Fatal(err)
				}
				if err := a3.LoadWeights(ck); err != nil {
					t.Fatal(err)
				}
				tensortest.Close(t, "resumed", logits(), tuned, 0)
			})
		}
	}
}

func TestPrefixBadInput(t *testing.T) {
	m := tinyModel(t, model.Llama)
	for _, c := range []PrefixConfig{
		{Method: Prefix, VirtualTokens: 0},
		{Method: Prompt, VirtualTokens: 99},
		{Method: Prompt, VirtualTokens: 2, InitIDs: []int32{999}},
		{Method: LoRA, VirtualTokens: 2},
	} {
		if _, err := ApplyPrefix(m, c); err == nil {
			t.Errorf("%+v: no error", c)
			m.Prefix = nil
		}
	}
}

// TestBaseUnchanged: a few optimizer steps with each method change the
// adapter and leave every base parameter bit for bit as it was.
func TestBaseUnchanged(t *testing.T) {
	type method struct {
		name  string
		apply func(m *model.Transformer) ([]*autograd.Param, error)
	}
	methods := []method{
		{"lora", func(m *model.Transformer) ([]*autograd.Param, error) {
			a, err := Apply(m, Config{Rank: 2, Alpha: 4, Targets: []string{"all-linear"}, ModulesToSave: []string{"embed_tokens"}})
			if err != nil {
				return nil, err
			}
			return a.Params(), nil
		}},
		{"dora", func(m *model.Transformer) ([]*autograd.Param, error) {
			a, err := Apply(m, Config{Method: DoRA, Rank: 2, Alpha: 4, Targets: []string{"all-linear"}})
			if err != nil {
				return nil, err
			}
			return a.Params(), nil
		}},
		{"ia3", func(m *model.Transformer) ([]*autograd.Param, error) {
			a, err := ApplyIA3(m, nil, nil)
			if err != nil {
				return nil, err
			}
			return a.Params(), nil
		}},
		{"prefix", func(m *model.Transformer) ([]*autograd.Param, error) {
			a, err := ApplyPrefix(m, PrefixConfig{Method: Prefix, VirtualTokens: 2, Projection: true})
			if err != nil {
				return nil, err
			}
			return a.Params(), nil
		}},
		{"adapter", func(m *model.Transformer) ([]*autograd.Param, error) {
			a, err := ApplyBottleneck(m, BottleneckConfig{Size: 4})
			if err != nil {
				return nil, err
			}
			return a.Params(), nil
		}},
		{"prompt", func(m *model.Transformer) ([]*autograd.Param, error) {
			a, err := ApplyPrefix(m, PrefixConfig{Method: Prompt, VirtualTokens: 2})
			if err != nil {
				return nil, err
			}
			return a.Params(), nil
		}},
	}
	for _, arch := range []model.Arch{model.Llama, model.GPT2} {
		for _, me := range methods {
			t.Run(arch.String()+"/"+me.name, func(t *testing.T) {
				m := tinyModel(t, arch)
				before := map[string][]float32{}
				for p := range m.Params() {
					before[p.Name] = append([]float32(nil), p.Value.Float32s()...)
				}
				params, err := me.apply(m)
				if err != nil {
					t.Fatal(err)
				}
				start := map[*autograd.Param][]float32{}
				for _, p := range params {
					start[p] = append([]float32(nil), p.Value.F32...)
				}
				opt := optim.NewAdamW(optim.AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1}, params)
				if len(opt.Params) != len(params) {
					t.Fatalf("optimizer holds %d tensors, the adapter has %d", len(opt.Params), len(params))
				}
				b := tensor.NewCPU(1)
				for step := 0; step < 3; step++ {
					opt.ZeroGrad()
					tp := autograd.NewTape(b)
					if err := tp.Backward(loss(t, m, tp)); err != nil {
						t.Fatal(err)
					}
					opt.Update(b, 1e-2)
				}
				for p := range m.Params() {
					if !slices.Equal(before[p.Name], p.Value.Float32s()) {
						t.Errorf("base parameter %s changed", p.Name)
					}
				}
				moved := false
				for _, p := range params {
					moved = moved || !slices.Equal(start[p], p.Value.F32)
				}
				if !moved {
					t.Error("the adapter did not change")
				}
			})
		}
	}
}

// TestCheckpointedLoRA: activation checkpointing gives a LoRA adapter the
// same gradients, bit for bit.
func TestCheckpointedLoRA(t *testing.T) {
	for _, arch := range []model.Arch{model.Llama, model.GPT2} {
		m := tinyModel(t, arch)
		a, err := Apply(m, Config{Method: DoRA, Rank: 2, Alpha: 4, Targets: []string{"all-linear"}, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range a.Layers {
			copy(l.B.Value.F32, tensortest.Rand(uint64(i+5), l.B.Value.Numel(), 0.2))
		}
		grads := func(ckpt bool) [][]float32 {
			m.CheckpointBlocks = ckpt
			var out [][]float32
			for _, p := range a.Params() {
				p.Grad = nil
			}
			tp := autograd.NewTape(tensor.NewCPU(1))
			if err := tp.Backward(loss(t, m, tp)); err != nil {
				t.Fatal(err)
			}
			for _, p := range a.Params() {
				out = append(out, append([]float32(nil), p.Grad.F32...))
			}
			return out
		}
		plain, ck := grads(false), grads(true)
		for i := range plain {
			if !slices.Equal(plain[i], ck[i]) {
				t.Errorf("%v: %s differs with checkpointing", arch, a.Params()[i].Name)
			}
		}
	}
}
