package model

import (
	"math"
	"path/filepath"
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
