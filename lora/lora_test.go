package lora

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"llmlab/core/autograd"
	"llmlab/core/model"
	"llmlab/core/tensor"
	"llmlab/core/tensor/tensortest"
)

func tinyModel(t *testing.T, arch model.Arch) *model.Transformer {
	t.Helper()
	js := `{"model_type":"llama","vocab_size":61,"hidden_size":16,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":24,"max_position_embeddings":16}`
	if arch == model.GPT2 {
		js = `{"model_type":"gpt2","vocab_size":61,"n_embd":16,"n_layer":2,"n_head":4,"n_positions":16}`
	}
	cfg, err := model.ParseConfig([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.New(cfg, 5)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var (
	ids     = []int32{1, 5, 9, 33, 2, 60, 7, 7, 3, 12}
	targets = []int32{5, 9, 33, 2, 60, 7, 7, 3, 12, -100}
)

func loss(t *testing.T, m *model.Transformer, tp *autograd.Tape) *autograd.Var {
	l, _, err := m.Loss(tp, model.Inputs{B: 2, T: 5, IDs: ids}, targets)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// forwardLogits returns a copy of the logits of the test batch.
func forwardLogits(t *testing.T, m *model.Transformer, b tensor.Backend) []float32 {
	t.Helper()
	tp := autograd.NewTape(b)
	tp.NoGrad = true
	l, err := m.Forward(tp, model.Inputs{B: 2, T: 5, IDs: ids})
	if err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), l.Value.F32...)
}

// noGradLoss is the test batch's loss without recording (for central
// differences).
func noGradLoss(t *testing.T, m *model.Transformer, b tensor.Backend) float64 {
	tp := autograd.NewTape(b)
	tp.NoGrad = true
	return float64(loss(t, m, tp).Value.F32[0])
}

// TestLoRAGradients checks the adapter's gradients against central
// differences, and that the base receives none.
func TestLoRAGradients(t *testing.T) {
	for _, arch := range []model.Arch{model.Llama, model.GPT2} {
		t.Run(arch.String(), func(t *testing.T) {
			m := tinyModel(t, arch)
			targets := []string{"all-linear"}
			if arch == model.GPT2 {
				targets = []string{"c_attn", "c_proj"}
			}
			a, err := Apply(m, Config{Rank: 4, Alpha: 8, Targets: targets, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			// Non-zero B so gradients of A are non-trivial.
			for i, l := range a.Layers {
				copy(l.B.Value.F32, tensortest.Rand(uint64(i+10), l.B.Value.Numel(), 0.1))
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
				tensortest.GradCheck(t, p.Name, p.Value.F32, p.Grad.F32, f, 1e-2, 5e-4, 3e-2, 24)
			}
		})
	}
}

// TestDisabledAndMergedEqualBase: B = 0 at init gives the base exactly;
// merging gives base+adapter; saving and loading gives identical logits.
func TestSaveLoadMerge(t *testing.T) {
	for _, method := range []Method{LoRA, DoRA} {
		for _, arch := range []model.Arch{model.Llama, model.GPT2} {
			t.Run(method.String()+"/"+arch.String(), func(t *testing.T) { testSaveLoadMerge(t, method, arch) })
		}
	}
}

func testSaveLoadMerge(t *testing.T, method Method, arch model.Arch) {
	m := tinyModel(t, arch)
	b := tensor.NewCPU(1)
	logits := func() []float32 { return forwardLogits(t, m, b) }
	base := logits()
	a, err := Apply(m, Config{Method: method, Rank: 2, Alpha: 4, Targets: []string{"all-linear"}, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	tol := 0.0
	if method == DoRA {
		tol = 1e-5 // m/‖W‖ is 1 to a rounding
	}
	tensortest.Close(t, "fresh adapter vs base", logits(), base, tol)
	for i, l := range a.Layers {
		copy(l.B.Value.F32, tensortest.Rand(uint64(i+20), l.B.Value.Numel(), 0.2))
		if l.M != nil {
			for j, v := range tensortest.Rand(uint64(i+40), l.M.Value.Numel(), 0.1) {
				l.M.Value.F32[j] *= 1 + v
			}
		}
	}
	tuned := logits()
	if d, _ := tensortest.MaxDiff(tuned, base); d < 1e-4 {
		t.Fatal("adapter does not change the logits")
	}
	a.SetEnabled(false)
	tensortest.Close(t, "disabled adapter vs base", logits(), base, 0)
	a.SetEnabled(true)

	dir := filepath.Join(t.TempDir(), "adapter")
	if err := a.Save(dir, "tiny"); err != nil {
		t.Fatal(err)
	}
	a.Remove()
	tensortest.Close(t, "removed adapter vs base", logits(), base, 0)
	a2, err := Load(m, dir)
	if err != nil {
		t.Fatal(err)
	}
	tensortest.Close(t, "loaded adapter", logits(), tuned, 0)
	if err := a2.Merge(); err != nil {
		t.Fatal(err)
	}
	tensortest.Close(t, "merged", logits(), tuned, 1e-5)
}

func TestBadConfigs(t *testing.T) {
	m := tinyModel(t, model.Llama)
	for _, tc := range []struct {
		name string
		c    Config
	}{
		{"unknown target", Config{Rank: 2, Targets: []string{"qkv"}}},
		{"rank too large", Config{Rank: 64, Targets: []string{"q_proj"}}},
		{"zero rank", Config{Rank: 0, Targets: []string{"q_proj"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Apply(m, tc.c); err == nil {
				t.Fatal("no error")
			} else {
				t.Log(err)
			}
		})
	}
	if math.IsNaN(float64(Config{Rank: 4, Alpha: 8, RSLoRA: true}.Scale())) {
		t.Fatal("nan scale")
	}
}

// TestModulesToSave: a trained copy of the embedding replaces the base one
// only while the adapter is on, round-trips through PEFT files, and the
// base weight is never changed.
func TestModulesToSave(t *testing.T) {
	m := tinyModel(t, model.Llama)
	orig := m.Embed
	base := append([]float32(nil), orig.Value.F32...)
	a, err := Apply(m, Config{Rank: 2, Alpha: 2, Targets: []string{"q_proj"}, ModulesToSave: []string{"embed_tokens"}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Embed == orig || len(a.Params()) != 2*len(a.Layers)+1 {
		t.Fatal("embedding copy not in place or not trainable")
	}
	for i := range a.Saved[0].Copy.Value.F32 {
		a.Saved[0].Copy.Value.F32[i] += 0.5
	}
	a.SetEnabled(false)
	if m.Embed != orig {
		t.Fatal("disabled adapter still uses the copy")
	}
	a.SetEnabled(true)
	dir := t.TempDir()
	if err := a.Save(dir, "x"); err != nil {
		t.Fatal(err)
	}
	a.Remove()
	tensortest.Close(t, "base embedding", orig.Value.F32, base, 0)
	a2, err := Load(m, dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Embed.Value.F32[0] != base[0]+0.5 {
		t.Fatalf("loaded copy %v, want %v", m.Embed.Value.F32[0], base[0]+0.5)
	}
	a2.Remove()
	tensortest.Close(t, "base embedding after load", orig.Value.F32, base, 0)
}

// TestDoRAGradients checks the magnitude's gradient against central
// differences (the norm is a constant in DoRA's backward pass, so A and B
// are checked against PyTorch in the golden test instead), and that the
// low-rank path still learns.
func TestDoRAGradients(t *testing.T) {
	for _, arch := range []model.Arch{model.Llama, model.GPT2} {
		t.Run(arch.String(), func(t *testing.T) {
			m := tinyModel(t, arch)
			a, err := Apply(m, Config{Method: DoRA, Rank: 4, Alpha: 8, Targets: []string{"all-linear"}, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			for i, l := range a.Layers {
				copy(l.B.Value.F32, tensortest.Rand(uint64(i+10), l.B.Value.Numel(), 0.1))
			}
			b := tensor.NewCPU(1)
			tp := autograd.NewTape(b)
			if err := tp.Backward(loss(t, m, tp)); err != nil {
				t.Fatal(err)
			}
			f := func() float64 { return noGradLoss(t, m, b) }
			for _, l := range a.Layers {
				tensortest.GradCheck(t, l.M.Name, l.M.Value.F32, l.M.Grad.F32, f, 1e-2, 5e-4, 3e-2, 8)
				if n := len(a.Params()); n != 3*len(a.Layers) {
					t.Fatalf("%d trainable tensors, want A, B and M per layer (%d)", n, 3*len(a.Layers))
				}
			}
		})
	}
}

// TestIA3: gradients of the scaling vectors by central differences, the
// fresh adapter equals the base, save/load keeps the logits and merging
// folds the vectors into the weights.
func TestIA3(t *testing.T) {
	for _, arch := range []model.Arch{model.Llama, model.GPT2} {
		t.Run(arch.String(), func(t *testing.T) {
			m := tinyModel(t, arch)
			b := tensor.NewCPU(1)
			logits := func() []float32 { return forwardLogits(t, m, b) }
			base := logits()
			a, err := ApplyIA3(m, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			tensortest.Close(t, "fresh IA3 vs base", logits(), base, 0)
			for i, l := range a.Layers {
				for j, v := range tensortest.Rand(uint64(i+50), l.L.Value.Numel(), 0.3) {
					l.L.Value.F32[j] += v
				}
			}
			tp := autograd.NewTape(b)
			if err := tp.Backward(loss(t, m, tp)); err != nil {
				t.Fatal(err)
			}
			f := func() float64 { return noGradLoss(t, m, b) }
			for _, p := range a.Params() {
				tensortest.GradCheck(t, p.Name, p.Value.F32, p.Grad.F32, f, 1e-2, 5e-4, 3e-2, 12)
			}
			tuned := logits()
			dir := filepath.Join(t.TempDir(), "ia3")
			if err := a.Save(dir, "tiny"); err != nil {
				t.Fatal(err)
			}
			a.Remove()
			tensortest.Close(t, "removed", logits(), base, 0)
			a2, err := LoadIA3(m, dir)
			if err != nil {
				t.Fatal(err)
			}
			tensortest.Close(t, "loaded", logits(), tuned, 0)
			if err := a2.Merge(); err != nil {
				t.Fatal(err)
			}
			tensortest.Close(t, "merged", logits(), tuned, 1e-5)
		})
	}
}

// TestBottleneck: gradients of every adapter tensor by central
// differences (up non-zero), the fresh adapter equals the base, files
// round-trip, and an adapter for another base is refused by name.
func TestBottleneck(t *testing.T) {
	for _, arch := range []model.Arch{model.Llama, model.GPT2} {
		for _, act := range []string{"relu", "gelu", "silu"} {
			t.Run(arch.String()+"/"+act, func(t *testing.T) {
				m := tinyModel(t, arch)
				b := tensor.NewCPU(1)
				logits := func() []float32 { return forwardLogits(t, m, b) }
				base := logits()
				a, err := ApplyBottleneck(m, BottleneckConfig{Size: 4, Activation: act, Seed: 3})
				if err != nil {
					t.Fatal(err)
				}
				if len(a.Layers) != 2*m.Cfg.Layers {
					t.Fatalf("%d adapters, want one after attention and one after the MLP per block", len(a.Layers))
				}
				tensortest.Close(t, "fresh adapter vs base", logits(), base, 0)
				for i, l := range a.Layers {
					copy(l.Up.Value.F32, tensortest.Rand(uint64(i+60), l.Up.Value.Numel(), 0.3))
					copy(l.DownB.Value.F32, tensortest.Rand(uint64(i+70), l.DownB.Value.Numel(), 0.3))
				}
				tp := autograd.NewTape(b)
				if err := tp.Backward(loss(t, m, tp)); err != nil {
					t.Fatal(err)
				}
				f := func() float64 { return noGradLoss(t, m, b) }
				for _, p := range a.Params() {
					tensortest.GradCheck(t, p.Name, p.Value.F32, p.Grad.F32, f, 1e-2, 5e-4, 3e-2, 12)
				}
				tuned := logits()
				dir := filepath.Join(t.TempDir(), "adapter")
				if err := a.Save(dir, "tiny"); err != nil {
					t.Fatal(err)
				}
				a.Remove()
				tensortest.Close(t, "removed", logits(), base, 0)
				if _, err := LoadBottleneck(m, dir); err != nil {
					t.Fatal(err)
				}
				tensortest.Close(t, "loaded", logits(), tuned, 0)
			})
		}
	}
	// Another base: wider layers.
	m := tinyModel(t, model.Llama)
	a, err := ApplyBottleneck(m, BottleneckConfig{Size: 4})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "adapter")
	if err := a.Save(dir, "tiny"); err != nil {
		t.Fatal(err)
	}
	cfg, _ := model.ParseConfig([]byte(`{"model_type":"llama","vocab_size":61,"hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":24,"max_position_embeddings":16}`))
	other, _ := model.New(cfg, 1)
	if _, err := LoadBottleneck(other, dir); err == nil || !strings.Contains(err.Error(), "adapter_down.weight") {
		t.Errorf("adapter for another base: %v", err)
	}
	if _, err := ApplyBottleneck(tinyModel(t, model.Llama), BottleneckConfig{Size: 4, Activation: "tanh"}); err == nil {
		t.Error("unknown non-linearity accepted")
	}
}
