package model

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"llmlab/core/autograd"
	"llmlab/core/checkpoint"
	"llmlab/core/tensor"
)

// TestGGUFTensorType: llama.cpp's choices for the _M mixtures and the
// fallbacks for rows that are not whole blocks.
func TestGGUFTensorType(t *testing.T) {
	sq := tensor.Shape{256, 256}
	for _, tc := range []struct {
		q     GGUFQuant
		name  string
		shape tensor.Shape
		tied  bool
		want  tensor.DType
	}{
		{QuantQ4_K_M, "blk.3.attn_q.weight", sq, false, tensor.Q4_K},
		{QuantQ4_K_M, "blk.0.attn_v.weight", sq, false, tensor.Q6_K}, // first eighth
		{QuantQ4_K_M, "blk.1.attn_v.weight", sq, false, tensor.Q4_K},
		{QuantQ4_K_M, "blk.3.ffn_down.weight", sq, false, tensor.Q6_K}, // (3-1)%3 == 2
		{QuantQ4_K_M, "blk.7.ffn_down.weight", sq, false, tensor.Q6_K}, // last eighth
		{QuantQ4_K_M, "blk.4.ffn_down.weight", sq, false, tensor.Q4_K},
		{QuantQ4_K_M, "output.weight", sq, false, tensor.Q6_K},
		{QuantQ4_K_M, "token_embd.weight", sq, false, tensor.Q4_K},
		{QuantQ4_K_M, "token_embd.weight", sq, true, tensor.Q6_K}, // also the output
		{QuantQ4_K_M, "blk.3.attn_q.weight", tensor.Shape{256, 192}, false, tensor.Q5_0},
		{QuantQ5_K_M, "blk.2.attn_k.weight", tensor.Shape{256, 192}, false, tensor.Q5_1},
		{QuantQ6_K, "blk.2.attn_k.weight", tensor.Shape{256, 192}, false, tensor.Q8_0},
		{QuantQ4_K_M, "blk.3.attn_q.weight", tensor.Shape{256, 100}, false, tensor.F16},
		{QuantQ5_K_M, "blk.1.attn_v.weight", sq, false, tensor.Q5_K},
		{QuantQ8_0, "output.weight", sq, false, tensor.Q8_0},
		{QuantQ4_0, "output.weight", sq, false, tensor.Q6_K},
		{QuantQ4_0, "output.weight", tensor.Shape{256, 192}, false, tensor.Q8_0},
		{QuantQ4_0, "blk.0.attn_norm.weight", tensor.Shape{256}, false, tensor.F32},
		{QuantF16, "blk.0.attn_q.weight", sq, false, tensor.F16},
		{QuantBF16, "output.weight", sq, false, tensor.BF16},
	} {
		if got := tc.q.TensorType(tc.name, tc.shape, 8, tc.tied); got != tc.want {
			t.Errorf("%v %s %v (tied %v): %v, want %v", tc.q, tc.name, tc.shape, tc.tied, got, tc.want)
		}
	}
	for _, s := range ggufQuantNames {
		q, err := ParseGGUFQuant(s)
		if err != nil || q.String() != s {
			t.Errorf("ParseGGUFQuant(%q) = %v, %v", s, q, err)
		}
	}
}

// TestGGUFQuantizedExport: a model whose rows are whole 256-blocks,
// exported at each type, read back and run: Q4_K_M under 5.5 bits per
// weight, and the logits close to the float model's (a random model: its
// errors compound through the layers more than a trained model's do).
func TestGGUFQuantizedExport(t *testing.T) {
	if testing.Short() {
		t.Skip("quantizes a 3M-parameter model six times")
	}
	cfg, err := ParseConfig([]byte(`{"model_type":"llama","vocab_size":512,"hidden_size":256,"num_hidden_layers":8,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":512,"max_position_embeddings":64}`))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := New(cfg, 7)
	voc := Vocab{BOS: 1, EOS: 2, PAD: -1}
	for i := 0; i < 256; i++ {
		voc.Tokens = append(voc.Tokens, string(rune(0x100+i)))
		voc.Types = append(voc.Types, 1)
	}
	ids := []int32{1, 5, 9, 3, 3, 20, 300, 41}
	logits := func(m *Transformer) []float32 {
		tp := autograd.NewTape(tensor.NewCPU(2))
		tp.NoGrad = true
		l, err := m.Forward(tp, Inputs{B: 1, T: len(ids), IDs: ids})
		if err != nil {
			t.Fatal(err)
		}
		return append([]float32(nil), l.Value.F32...)
	}
	want := logits(m)
	for _, tc := range []struct {
		q      GGUFQuant
		maxBPW float64
		rel    float64 // RMS of the logit error / RMS of the logits
	}{
		{QuantF16, 16.1, 0.002}, {QuantQ8_0, 8.6, 0.025}, {QuantQ6_K, 6.6, 0.08},
		{QuantQ5_K_M, 6.0, 0.14}, {QuantQ4_K_M, 5.5, 0.3}, {QuantQ4_0, 4.6, 0.35},
	} {
		t.Run(tc.q.String(), func(t *testing.T) {
			f, st, err := m.GGUFQuantized(voc, "t", tc.q)
			if err != nil {
				t.Fatal(err)
			}
			_, whole := st.BitsPerWeight()
			t.Logf("%.3f bits per weight on whole-block matrices; %v", whole, st.Types)
			if whole > tc.maxBPW {
				t.Errorf("%.3f bits per weight, want <= %.1f", whole, tc.maxBPW)
			}
			path := filepath.Join(t.TempDir(), "m.gguf")
			if err := checkpoint.WriteGGUF(path, f); err != nil {
				t.Fatal(err)
			}
			back, err := LoadGGUF(path, LoadOptions{KeepStored: true})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(cfg.Hidden, back.Cfg.Hidden); diff != "" {
				t.Error(diff)
			}
			got := logits(back)
			var num, den float64
			for i := range got {
				d := float64(got[i] - want[i])
				num += d * d
				den += float64(want[i]) * float64(want[i])
			}
			rel := math.Sqrt(num / den)
			t.Logf("relative RMS logit error %.4f", rel)
			if rel > tc.rel {
				t.Errorf("relative RMS logit error %.4f, want <= %.3f", rel, tc.rel)
			}
		})
	}
}
