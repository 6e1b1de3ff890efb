package model

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"llmlab/core/autograd"
	"llmlab/core/checkpoint"
	"llmlab/core/tensor"
	"llmlab/core/tensor/tensortest"
)

// TestPermuteQKMatchesInterleavedRoPE: rotate-half RoPE on HF's q equals,
// after the permutation, llama.cpp's interleaved RoPE on the permuted
// weights' q. This is what makes an exported Llama compute the same thing.
func TestPermuteQKMatchesInterleavedRoPE(t *testing.T) {
	const heads, D, C, pos = 3, 8, 5, 7
	w := tensor.FromF32(tensortest.Rand(1, heads*D*C, 1), heads*D, C)
	x := tensortest.Rand(2, C, 1)
	mv := func(w *tensor.Tensor) []float64 {
		out := make([]float64, heads*D)
		for r := range out {
			for k := 0; k < C; k++ {
				out[r] += float64(w.F32[r*C+k]) * float64(x[k])
			}
		}
		return out
	}
	theta := func(i int) float64 { return pos * math.Pow(10000, -2*float64(i)/D) }
	hf := mv(w)
	rotHF := make([]float64, len(hf))
	for h := 0; h < heads; h++ {
		for i := 0; i < D/2; i++ {
			a, b := hf[h*D+i], hf[h*D+i+D/2]
			c, s := math.Cos(theta(i)), math.Sin(theta(i))
			rotHF[h*D+i], rotHF[h*D+i+D/2] = a*c-b*s, b*c+a*s
		}
	}
	gg := mv(permuteQK(w, heads, false))
	for h := 0; h < heads; h++ {
		for i := 0; i < D/2; i++ {
			a, b := gg[h*D+2*i], gg[h*D+2*i+1]
			c, s := math.Cos(theta(i)), math.Sin(theta(i))
			ra, rb := a*c-b*s, a*s+b*c
			// the same rotated values, in GGUF's row order
			if math.Abs(ra-rotHF[h*D+i]) > 1e-5 || math.Abs(rb-rotHF[h*D+i+D/2]) > 1e-5 {
				t.Fatalf("head %d pair %d: %v,%v vs %v,%v", h, i, ra, rb, rotHF[h*D+i], rotHF[h*D+i+D/2])
			}
		}
	}
	back := permuteQK(permuteQK(w, heads, false), heads, true)
	tensortest.Close(t, "inverse", back.F32, w.F32, 0)
}

// TestGGUFRoundTrip: export, re-read every key and tensor, rebuild the
// model and get the same logits.
func TestGGUFRoundTrip(t *testing.T) {
	for _, js := range []string{
		`{"model_type":"llama","vocab_size":40,"hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":48,"max_position_embeddings":32}`,
		`{"model_type":"qwen2","vocab_size":40,"hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":48,"max_position_embeddings":32,"tie_word_embeddings":true}`,
	} {
		cfg, err := ParseConfig([]byte(js))
		if err != nil {
			t.Fatal(err)
		}
		m, _ := New(cfg, 4)
		for _, p := range m.ParamList() { // non-trivial biases and norms
			if len(p.Value.Shape) == 1 {
				copy(p.Value.F32, tensortest.Rand(9, p.Value.Numel(), 1))
			}
		}
		voc := Vocab{BOS: 1, EOS: 2, PAD: -1}
		for i := 0; i < 30; i++ {
			voc.Tokens = append(voc.Tokens, string(rune('a'+i)))
			voc.Types = append(voc.Types, 1)
		}
		voc.Merges = []string{"a b"}
		for _, dt := range []tensor.DType{tensor.F32, tensor.F16} {
			f, err := m.GGUF(voc, "test", dt)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "m.gguf")
			if err := checkpoint.WriteGGUF(path, f); err != nil {
				t.Fatal(err)
			}
			g, err := checkpoint.ReadGGUF(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(g.KV) != len(f.KV) || len(g.Tensors) != len(f.Tensors) {
				t.Fatalf("read back %d keys %d tensors, wrote %d and %d", len(g.KV), len(g.Tensors), len(f.KV), len(f.Tensors))
			}
			if toks := g.KV["tokenizer.ggml.tokens"].([]string); len(toks) != cfg.VocabSize || toks[3] != "d" {
				t.Fatalf("tokens %v", toks)
			}
			back, err := FromGGUF(g)
			if err != nil {
				t.Fatal(err)
			}
			logits := func(m *Transformer) []float32 {
				tp := autograd.NewTape(tensor.NewCPU(1))
				tp.NoGrad = true
				l, err := m.Forward(tp, Inputs{B: 1, T: 6, IDs: []int32{1, 5, 9, 3, 3, 20}})
				if err != nil {
					t.Fatal(err)
				}
				return append([]float32(nil), l.Value.F32...)
			}
			tol := 1e-6
			if dt == tensor.F16 {
				tol = 2e-2
			}
			tensortest.Close(t, cfg.ModelType+" "+dt.String()+" logits", logits(back), logits(m), tol)
		}
	}
}

// TestGGUFFamilies exports every family case with llama.cpp's names:
// its architecture, tensor names from that architecture's table, Gemma's
// norms as 1+w, and the RoPE scaling tensors and keys.
func TestGGUFFamilies(t *testing.T) {
	llamaSet := []string{"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"}
	gemmaSet := []string{"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "post_attention_norm", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down", "post_ffw_norm"}
	for _, tc := range []struct {
		dir, arch string
		blk       []string
		global    []string
	}{
		{"llama3", "llama", llamaSet, []string{"token_embd", "output_norm", "rope_freqs"}},
		{"mistral_window", "llama", llamaSet, []string{"token_embd", "output_norm", "output"}},
		{"qwen3_yarn", "qwen3", append(llamaSet, "attn_q_norm", "attn_k_norm"), []string{"token_embd", "output_norm"}},
		{"gemma3", "gemma3", append(gemmaSet, "attn_q_norm", "attn_k_norm"), []string{"token_embd", "output_norm"}},
		{"gemma2", "gemma2", gemmaSet, []string{"token_embd", "output_norm"}},
		{"phi3_longrope", "phi3", []string{"attn_norm", "attn_qkv", "attn_output", "ffn_norm", "ffn_up", "ffn_down"},
			[]string{"token_embd", "output_norm", "rope_factors_long", "rope_factors_short"}},
		{"smollm3", "smollm3", llamaSet, []string{"token_embd", "output_norm"}},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			m, err := Load(filepath.Join("testdata/golden/families", tc.dir), LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if tc.arch == "smollm3" { // the NoPE layers llama.cpp runs (TestGGUFUnsupported)
				for i := range m.Cfg.NoRope {
					m.Cfg.NoRope[i] = (i+1)%4 == 0
				}
			}
			voc := Vocab{BOS: 1, EOS: 2, PAD: -1}
			f, err := m.GGUF(voc, tc.dir, tensor.F32)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "m.gguf")
			if err := checkpoint.WriteGGUF(path, f); err != nil {
				t.Fatal(err)
			}
			g, err := checkpoint.ReadGGUF(path)
			if err != nil {
				t.Fatal(err)
			}
			if a := g.KV["general.architecture"]; a != tc.arch {
				t.Fatalf("architecture %v, want %s", a, tc.arch)
			}
			if d := g.KV[tc.arch+".rope.dimension_count"]; d != uint32(m.Cfg.RotaryDim()) {
				t.Errorf("rope.dimension_count %v, want %d", d, m.Cfg.RotaryDim())
			}
			want := map[string]bool{}
			for _, n := range tc.global {
				want[n+".weight"] = true
			}
			for l := range m.Cfg.Layers {
				for _, n := range tc.blk {
					want[fmt.Sprintf("blk.%d.%s.weight", l, n)] = true
				}
			}
			got := map[string]*tensor.Tensor{}
			for _, x := range g.Tensors {
				got[x.Name] = x.T
			}
			var names []string
			for n := range got {
				names = append(names, n)
			}
			for n := range want {
				if got[n] == nil {
					t.Errorf("missing %s (have %v)", n, names)
				}
			}
			if len(got) != len(want) {
				t.Errorf("%d tensors, want %d: %v", len(got), len(want), names)
			}
			if tc.arch == "gemma3" || tc.arch == "gemma2" {
				w := got["blk.0.post_ffw_norm.weight"].F32
				hf := m.Blocks[0].PostMLP.W.Value.F32
				for i := range w {
					if w[i] != hf[i]+1 {
						t.Fatalf("post_ffw_norm[%d] = %v, want 1 + %v", i, w[i], hf[i])
					}
				}
			}
			if tc.dir == "qwen3_yarn" {
				// The default YaRN attention factor is the 1 + 0.1·ln(factor)
				// llama.cpp applies itself: 1 is left for the file.
				if a, ok := g.KV["qwen3.rope.scaling.attn_factor"].(float32); !ok || math.Abs(float64(a)-1) > 1e-6 {
					t.Errorf("rope.scaling.attn_factor %v, want 1", g.KV["qwen3.rope.scaling.attn_factor"])
				}
			}
			if tc.dir == "llama3" {
				// factor 8 at the lowest frequencies, 1 at the highest.
				d := got["rope_freqs.weight"].F32
				if d[0] != 1 || d[len(d)-1] != 8 {
					t.Errorf("rope_freqs %v: want 1 first and 8 last", d)
				}
			}
		})
	}
}

// TestGGUFModelName: names llama.cpp would take for Phi-3's own vocabulary
// are changed only when the vocabulary lacks Phi-3's special tokens.
func TestGGUFModelName(t *testing.T) {
	byteLevel := []string{"a", "b", "<|endoftext|>"}
	phi3 := []string{"<unk>", "<s>", "</s>", "<|endoftext|>", "a"}
	for _, c := range []struct {
		name   string
		tokens []string
		want   string
	}{
		{"tiny-phi3", byteLevel, "tiny-phi 3"},
		{"Phi-3-mini-sft", byteLevel, "Phi 3-mini-sft"},
		{"PHI3", byteLevel, "PHI 3"},
		{"Phi-3-mini-sft", phi3, "Phi-3-mini-sft"},
		{"tiny-llama", byteLevel, "tiny-llama"},
		{"phi-4-mini", byteLevel, "phi-4-mini"},
	} {
		if got := ggufModelName(c.name, c.tokens); got != c.want {
			t.Errorf("ggufModelName(%q) = %q, want %q", c.name, got, c.want)
		}
	}
}

// TestGGUFUnsupported: settings llama.cpp fixes per architecture instead of
// reading them from the file are refused on export, naming the setting.
func TestGGUFUnsupported(t *testing.T) {
	for _, tc := range []struct {
		dir  string
		edit func(c *Config)
		want string // in the error; "" for none
	}{
		{"smollm3", nil, "no_rope_layers"},
		{"smollm3_interval", nil, "no_rope_layers"},
		{"smollm3", func(c *Config) {
			for i := range c.NoRope {
				c.NoRope[i] = (i+1)%4 == 0
			}
		}, ""},
		{"gemma2", nil, ""},
		{"gemma2", func(c *Config) { c.QueryPreAttnScalar = 64 }, "query_pre_attn_scalar"},
		{"gemma3", func(c *Config) { c.QueryPreAttnScalar = 8 }, "query_pre_attn_scalar"},
	} {
		m, err := Load(filepath.Join("testdata/golden/families", tc.dir), LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if tc.edit != nil {
			tc.edit(&m.Cfg)
		}
		_, err = m.GGUF(Vocab{BOS: 1, EOS: 2, PAD: -1}, tc.dir, tensor.F32)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.dir, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one naming %s", tc.dir, err, tc.want)
		}
	}
}

// TestGGUFCaveats: a windowed Mistral is exported with a note that
// llama.cpp ignores its window; the families llama.cpp windows get none.
func TestGGUFCaveats(t *testing.T) {
	for _, tc := range []struct {
		dir  string
		want int
	}{{"mistral_window", 1}, {"llama3", 0}, {"gemma2", 0}, {"gemma3", 0}} {
		m, err := Load(filepath.Join("testdata/golden/families", tc.dir), LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Cfg.GGUFCaveats(); len(got) != tc.want {
			t.Errorf("%s: caveats %q, want %d", tc.dir, got, tc.want)
		}
	}
}
