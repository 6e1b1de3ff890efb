package model

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"llmlab/core/autograd"
	"llmlab/core/checkpoint"
	"llmlab/core/optim"
	"llmlab/core/tensor"
	"llmlab/core/tensor/tensortest"
)

func flatIDs(rows [][]int32) []int32 {
	var out []int32
	for _, r := range rows {
		out = append(out, r...)
	}
	return out
}

type goldenBatch struct {
	IDs     [][]int32 `json:"ids"`
	Targets [][]int32 `json:"targets"`
}

// TestGolden checks logits, loss, every gradient and one AdamW step
// against files written by tools/golden/gen.py (PyTorch).
func TestGolden(t *testing.T) {
	cases, _ := filepath.Glob("testdata/golden/*/expected.safetensors")
	if len(cases) == 0 {
		t.Skip("no golden cases in testdata/golden yet (run make golden)")
	}
	for _, exp := range cases {
		dir := filepath.Dir(exp)
		t.Run(filepath.Base(dir), func(t *testing.T) { checkGolden(t, dir) })
	}
}

func checkGolden(t *testing.T, dir string) {
	m, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var gb goldenBatch
	data, err := os.ReadFile(filepath.Join(dir, "batch.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &gb); err != nil {
		t.Fatal(err)
	}
	want, err := checkpoint.Open(filepath.Join(dir, "expected.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	get := func(name string) []float32 {
		x, err := want.Tensor(name)
		if err != nil {
			t.Fatalf("expected.safetensors: %v", err)
		}
		return x.Float32s()
	}
	has := map[string]bool{}
	for _, n := range want.Names() {
		has[n] = true
	}
	B, T := len(gb.IDs), len(gb.IDs[0])
	in := Inputs{B: B, T: T, IDs: flatIDs(gb.IDs)}
	targets := flatIDs(gb.Targets)
	for _, threads := range []int{1, 2} {
		for _, p := range m.ParamList() {
			p.Grad = nil
		}
		tp := autograd.NewTape(tensor.NewCPU(threads))
		logits, err := m.Forward(tp, in)
		if err != nil {
			t.Fatal(err)
		}
		tensortest.Close(t, "logits", logits.Value.F32, get("logits"), 1e-4)
		loss := tp.SumScaled(tp.CrossEntropy(logits, targets), 1/float32(countTargets(targets)))
		tensortest.Close(t, "loss", loss.Value.F32, get("loss"), 1e-4)
		if !has["grad."+m.ParamList()[0].Name] && !hasAnyGrad(has) {
			return // inference-only case (e.g. bf16 weights)
		}
		if err := tp.Backward(loss); err != nil {
			t.Fatal(err)
		}
		for _, p := range m.ParamList() {
			name := goldenName(has, "grad.", p.Name)
			if name == "" {
				t.Errorf("no golden gradient for %s", p.Name)
				continue
			}
			g := p.Grad
			if m.Cfg.Arch == GPT2 && isConv1D(p.Name) {
				g = transpose2D(g)
			}
			tensortest.Close(t, "grad "+p.Name, g.F32, get(name), 1e-3)
		}
		// One AdamW step from the golden gradients (so the optimizer is
		// checked on its own) must give PyTorch's parameters.
		if threads == 2 {
			continue
		}
		before := map[*autograd.Param]*tensor.Tensor{}
		for _, p := range m.ParamList() {
			before[p] = p.Value.Clone()
			g := tensor.FromF32(append([]float32(nil), get(goldenName(has, "grad.", p.Name))...), p.Value.Shape...)
			if m.Cfg.Arch == GPT2 && isConv1D(p.Name) {
				g = transpose2D(tensor.FromF32(g.F32, p.Value.Shape[1], p.Value.Shape[0]))
			}
			p.Grad = g
		}
		opt := optim.NewAdamW(optim.AdamWConfig{LR: 1e-3, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}, m.ParamList())
		opt.Update(tensor.NewCPU(1), 1e-3)
		for _, p := range m.ParamList() {
			v := p.Value
			if m.Cfg.Arch == GPT2 && isConv1D(p.Name) {
				v = transpose2D(v)
			}
			tensortest.Close(t, "adamw "+p.Name, v.F32, get(goldenName(has, "adamw.", p.Name)), 1e-6)
			p.Value = before[p]
		}
	}
}

func countTargets(ts []int32) int {
	n := 0
	for _, y := range ts {
		if y >= 0 {
			n++
		}
	}
	return n
}

func hasAnyGrad(has map[string]bool) bool {
	for n := range has {
		if len(n) > 5 && n[:5] == "grad." {
			return true
		}
	}
	return false
}

// goldenName finds the golden key for a parameter, with or without the
// GPT-2 "transformer." prefix.
func goldenName(has map[string]bool, prefix, name string) string {
	if has[prefix+name] {
		return prefix + name
	}
	if len(name) > 12 && name[:12] == "transformer." && has[prefix+name[12:]] {
		return prefix + name[12:]
	}
	return ""
}

// TestCacheMatchesFullForward: token-by-token decoding through the KV
// cache gives the same logits as the full forward over the prefix.
func TestCacheMatchesFullForward(t *testing.T) {
	for _, arch := range []Arch{GPT2, Llama} {
		t.Run(arch.String(), func(t *testing.T) {
			cfg := smallConfig(arch)
			m, err := New(cfg, 3)
			if err != nil {
				t.Fatal(err)
			}
			b := tensor.NewCPU(2)
			ids := []int32{5, 17, 99, 3, 42, 7, 250, 11}
			full := autograd.NewTape(b)
			full.NoGrad = true
			want, err := m.Forward(full, Inputs{B: 1, T: len(ids), IDs: ids})
			if err != nil {
				t.Fatal(err)
			}
			V := cfg.VocabSize
			cache := m.NewCache(1, 16)
			tp := autograd.NewTape(b)
			tp.NoGrad = true
			// prompt of 3 tokens, then one at a time
			got, err := m.Forward(tp, Inputs{B: 1, T: 3, IDs: ids[:3], Cache: cache})
			if err != nil {
				t.Fatal(err)
			}
			tensortest.Close(t, "prompt logits", got.Value.F32, want.Value.F32[:3*V], 1e-5)
			for i := 3; i < len(ids); i++ {
				tp.Reset()
				got, err := m.Forward(tp, Inputs{B: 1, T: 1, IDs: ids[i : i+1], Cache: cache})
				if err != nil {
					t.Fatal(err)
				}
				tensortest.Close(t, "step logits", got.Value.F32, want.Value.F32[i*V:(i+1)*V], 1e-5)
			}
		})
	}
}

func smallConfig(arch Arch) Config {
	if arch == GPT2 {
		c, _ := ParseConfig([]byte(`{"model_type":"gpt2","vocab_size":257,"n_embd":32,"n_layer":2,"n_head":4,"n_positions":32}`))
		return c
	}
	c, _ := ParseConfig([]byte(`{"model_type":"llama","vocab_size":257,"hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":48,"max_position_embeddings":32}`))
	return c
}

// TestModelGradients checks the whole backward pass of both families
// against central differences on a few elements of every parameter.
func TestModelGradients(t *testing.T) {
	for _, arch := range []Arch{GPT2, Llama} {
		t.Run(arch.String(), func(t *testing.T) {
			m, err := New(smallConfig(arch), 9)
			if err != nil {
				t.Fatal(err)
			}
			ids := []int32{3, 77, 12, 5, 200, 9, 31, 8}
			targets := []int32{77, 12, 5, -100, 9, 31, 8, 1}
			in := Inputs{B: 2, T: 4, IDs: ids}
			b := tensor.NewCPU(1)
			tp := autograd.NewTape(b)
			loss, _, err := m.Loss(tp, in, targets)
			if err != nil {
				t.Fatal(err)
			}
			if err := tp.Backward(loss); err != nil {
				t.Fatal(err)
			}
			f := func() float64 {
				tp := autograd.NewTape(b)
				tp.NoGrad = true
				l, _, err := m.Loss(tp, in, targets)
				if err != nil {
					t.Fatal(err)
				}
				return float64(l.Value.F32[0])
			}
			for _, p := range m.ParamList() {
				tensortest.GradCheck(t, p.Name, p.Value.F32, p.Grad.F32, f, 1e-2, 5e-4, 3e-2, 6)
			}
		})
	}
}

// TestBadFolders: a checkpoint that does not fit its config fails with an
// error naming the tensor.
func TestBadFolders(t *testing.T) {
	m, err := New(smallConfig(Llama), 1)
	if err != nil {
		t.Fatal(err)
	}
	write := func(t *testing.T, mutate func([]checkpoint.Named) []checkpoint.Named, cfg string) string {
		dir := t.TempDir()
		if err := m.Save(dir, SaveOptions{}); err != nil {
			t.Fatal(err)
		}
		if mutate != nil {
			if err := checkpoint.Write(filepath.Join(dir, "model.safetensors"), mutate(m.StateDict(tensor.F32)), nil); err != nil {
				t.Fatal(err)
			}
		}
		if cfg != "" {
			if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	for _, tc := range []struct {
		name   string
		mutate func([]checkpoint.Named) []checkpoint.Named
		cfg    string
		want   string
	}{
		{"missing tensor", func(ns []checkpoint.Named) []checkpoint.Named { return ns[1:] }, "", "missing tensors"},
		{"extra tensor", func(ns []checkpoint.Named) []checkpoint.Named {
			return append(ns, checkpoint.Named{Name: "model.layers.9.mlp.up_proj.weight", T: tensor.New(2, 2)})
		}, "", "unexpected tensors"},
		{"shape mismatch", func(ns []checkpoint.Named) []checkpoint.Named {
			ns[0].T = tensor.New(3, 3)
			return ns
		}, "", "config implies"},
		{"unknown model_type", nil, `{"model_type":"bert","vocab_size":10}`, "unknown model_type"},
		{"missing field", nil, `{"model_type":"llama","vocab_size":10}`, "missing field"},
		{"not json", nil, `{"model_type":`, "not valid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := write(t, tc.mutate, tc.cfg)
			_, err := Load(dir, LoadOptions{})
			if err == nil {
				t.Fatal("no error")
			}
			if !contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestQuantize: a quantized model runs forward and backward (to the
// activations; the base is frozen) close to the float model, and memory
// drops as documented.
func TestQuantize(t *testing.T) {
	for _, arch := range []Arch{Llama, GPT2} {
		for _, dt := range []tensor.DType{tensor.Q8, tensor.NF4} {
			t.Run(arch.String()+"/"+dt.String(), func(t *testing.T) {
				m, err := New(smallConfig(arch), 3)
				if err != nil {
					t.Fatal(err)
				}
				in := Inputs{B: 2, T: 6, IDs: []int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}}
				logits := func() []float32 {
					tp := autograd.NewTape(tensor.NewCPU(1))
					tp.NoGrad = true
					l, err := m.Forward(tp, in)
					if err != nil {
						t.Fatal(err)
					}
					return append([]float32(nil), l.Value.F32...)
				}
				want := logits()
				st, err := m.Quantize(dt)
				if err != nil {
					t.Fatal(err)
				}
				ratio := float64(st.BytesAfter) / float64(st.BytesBefore)
				if dt == tensor.Q8 && (ratio > 0.3 || ratio <= 0.25) || dt == tensor.NF4 && (ratio > 0.16 || ratio <= 0.125) {
					t.Errorf("%v: %d -> %d bytes (%.3f)", dt, st.BytesBefore, st.BytesAfter, ratio)
				}
				got := logits()
				d, _ := tensortest.MaxDiff(got, want)
				tol := map[tensor.DType]float64{tensor.Q8: 0.02, tensor.NF4: 0.15}[dt]
				if d > tol || d == 0 {
					t.Errorf("quantized logits differ by %.3g (tolerance %.2g)", d, tol)
				}
				tp := autograd.NewTape(tensor.NewCPU(1))
				x := tp.Leaf(tensor.FromF32(tensortest.Rand(4, 12*m.Cfg.Hidden, 0.1), 12, m.Cfg.Hidden))
				h, err := m.Hidden(tp, Inputs{B: 2, T: 6, Embeds: x})
				if err != nil {
					t.Fatal(err)
				}
				if err := tp.Backward(tp.SumScaled(h, 1)); err != nil {
					t.Fatal(err)
				}
				if g := tp.GradOf(x); g == nil {
					t.Fatal("no gradient reached the input through quantized weights")
				}
			})
		}
	}
}

// TestCheckpointBlocks: with activation checkpointing the loss and every
// gradient are bit for bit those of the plain pass, and the tape's arena
// is smaller.
func TestCheckpointBlocks(t *testing.T) {
	for _, arch := range []Arch{Llama, GPT2} {
		t.Run(arch.String(), func(t *testing.T) {
			m, err := New(smallConfig(arch), 3)
			if err != nil {
				t.Fatal(err)
			}
			in := Inputs{B: 2, T: 6, IDs: []int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}}
			targets := []int32{2, 3, 4, 5, 6, -1, 8, 9, 10, 11, 12, -1}
			run := func(ckpt bool) (float32, map[string][]float32, int) {
				m.CheckpointBlocks = ckpt
				for _, p := range m.ParamList() {
					p.Grad = nil
				}
				tp := autograd.NewTape(tensor.NewCPU(2))
				var loss *autograd.Var
				for range 2 { // the second pass runs on sized arenas
					tp.Reset()
					for _, p := range m.ParamList() {
						p.Grad = nil
					}
					loss, _, err = m.Loss(tp, in, targets)
					if err != nil {
						t.Fatal(err)
					}
					if err := tp.Backward(loss); err != nil {
						t.Fatal(err)
					}
				}
				g := map[string][]float32{}
				for _, p := range m.ParamList() {
					g[p.Name] = append([]float32(nil), p.Grad.F32...)
				}
				return loss.Value.F32[0], g, tp.ArenaFloats()
			}
			l0, g0, a0 := run(false)
			l1, g1, a1 := run(true)
			m.CheckpointBlocks = false
			if l0 != l1 {
				t.Fatalf("loss %v with checkpointing, %v without", l1, l0)
			}
			for name, g := range g0 {
				if !slices.Equal(g, g1[name]) {
					d, i := tensortest.MaxDiff(g1[name], g)
					t.Errorf("%s: gradients differ by %g at %d", name, d, i)
				}
			}
			if a1 >= a0 {
				t.Errorf("arena %d floats with checkpointing, %d without", a1, a0)
			}
		})
	}
}

// TestInferenceArenaRewinds checks that an inference forward, which keeps
// one layer's activations (Tape.Rewind), gives the logits of a recording
// forward bit for bit, on its first pass (spilling past the arena) and on
// the next (in the arena sized by the first), and with a cache; and that
// its arena is smaller.
func TestInferenceArenaRewinds(t *testing.T) {
	for _, arch := range []Arch{Llama, GPT2} {
		t.Run(arch.String(), func(t *testing.T) {
			cfg := smallConfig(arch)
			cfg.Layers = 4
			m, err := New(cfg, 5)
			if err != nil {
				t.Fatal(err)
			}
			b := tensor.NewCPU(1)
			ids := []int32{5, 17, 99, 3, 42, 7, 250, 11, 1, 2}
			rec := autograd.NewTape(b)
			want, err := m.Forward(rec, Inputs{B: 2, T: 5, IDs: ids})
			if err != nil {
				t.Fatal(err)
			}
			inf := autograd.NewTape(b)
			inf.NoGrad = true
			for pass := range 3 {
				inf.Reset()
				var cache *Cache
				if pass == 2 {
					cache = m.NewCache(2, 8)
				}
				got, err := m.Forward(inf, Inputs{B: 2, T: 5, IDs: ids, Cache: cache})
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got.Value.F32, want.Value.F32) {
					d, i := tensortest.MaxDiff(got.Value.F32, want.Value.F32)
					t.Fatalf("pass %d: logits differ by %g at %d", pass, d, i)
				}
			}
			if a, r := inf.ArenaFloats(), rec.ArenaFloats(); a*2 >= r {
				t.Errorf("inference arena %d floats, recording %d: want less than half", a, r)
			}
		})
	}
}
