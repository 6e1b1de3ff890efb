package generate

import (
	"context"
	"testing"

	"llmlab/core/model"
	"llmlab/core/tensor"
)

func TestSamplerGreedyAndSeeds(t *testing.T) {
	logits := []float32{0.1, 2.5, -1, 2.4}
	if got := NewSampler(Sampling{}, 1).Sample(append([]float32(nil), logits...), nil); got != 1 {
		t.Fatalf("greedy picked %d, want 1", got)
	}
	s := Sampling{Temperature: 1, TopK: 2}
	a, b := NewSampler(s, 7), NewSampler(s, 7)
	for i := 0; i < 50; i++ {
		x, y := a.Sample(append([]float32(nil), logits...), nil), b.Sample(append([]float32(nil), logits...), nil)
		if x != y {
			t.Fatalf("same seed, different draws at %d: %d vs %d", i, x, y)
		}
		if x != 1 && x != 3 {
			t.Fatalf("top-k 2 drew token %d", x)
		}
	}
}

func TestSamplerTopPMinP(t *testing.T) {
	// probabilities ~ 0.64, 0.24, 0.09, 0.03
	logits := []float32{3, 2, 1, 0}
	for _, tc := range []struct {
		name  string
		s     Sampling
		allow map[int32]bool
	}{
		{"top-p 0.5 keeps the top token", Sampling{Temperature: 1, TopP: 0.5}, map[int32]bool{0: true}},
		{"top-p 0.8 keeps two", Sampling{Temperature: 1, TopP: 0.8}, map[int32]bool{0: true, 1: true}},
		{"min-p 0.3 keeps two", Sampling{Temperature: 1, MinP: 0.3}, map[int32]bool{0: true, 1: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sm := NewSampler(tc.s, 3)
			seen := map[int32]bool{}
			for i := 0; i < 400; i++ {
				id := sm.Sample(append([]float32(nil), logits...), nil)
				if !tc.allow[id] {
					t.Fatalf("drew %d", id)
				}
				seen[id] = true
			}
			if len(seen) != len(tc.allow) {
				t.Errorf("drew %v, want all of %v", seen, tc.allow)
			}
		})
	}
}

func TestRepetitionPenaltyOncePerToken(t *testing.T) {
	sm := NewSampler(Sampling{RepetitionPenalty: 2}, 1)
	l := []float32{4, 3}
	sm.Sample(l, []int32{0, 0, 0})
	if l[0] != 2 {
		t.Fatalf("penalised logit %v, want 2 (once, not per occurrence)", l[0])
	}
}

func TestStopStringsAndStreaming(t *testing.T) {
	if got, ok := cutStop("hello</s> more", []string{"</s>"}); !ok || got != "hello" {
		t.Fatalf("cutStop = %q, %v", got, ok)
	}
	if n := streamable("hello <", []string{"<end>"}, false); n != 6 {
		t.Fatalf("streamable held back %d bytes, want to show 6", n)
	}
	if n := streamable("caf\xc3", nil, false); n != 3 {
		t.Fatalf("streamable shows %d bytes of an incomplete rune, want 3", n)
	}
}

type byteDecoder struct{}

func (byteDecoder) Decode(ids []int32) string {
	b := make([]byte, 0, len(ids))
	for _, id := range ids {
		if id < 256 {
			b = append(b, byte(id))
		}
	}
	return string(b)
}

// TestBatchedEqualsSingle: greedy generation of several prompts at once
// gives each the tokens it gets alone, windowed models (whose cache layers
// are rings) included.
func TestBatchedEqualsSingle(t *testing.T) {
	for _, tc := range []struct{ name, config string }{
		{"gpt2", `{"model_type":"gpt2","vocab_size":257,"n_embd":32,"n_layer":2,"n_head":4,"n_positions":64}`},
		{"llama", `{"model_type":"llama","vocab_size":257,"hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":48,"max_position_embeddings":64}`},
		{"mistral window", `{"model_type":"mistral","vocab_size":257,"hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":48,"max_position_embeddings":64,"sliding_window":5}`},
		{"gemma3 window", `{"model_type":"gemma3_text","vocab_size":257,"hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":8,"intermediate_size":48,"max_position_embeddings":64,"sliding_window":4,"query_pre_attn_scalar":8,"sliding_window_pattern":2}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := model.ParseConfig([]byte(tc.config))
			if err != nil {
				t.Fatal(err)
			}
			m, err := model.New(cfg, 11)
			if err != nil {
				t.Fatal(err)
			}
			// Larger weights so greedy choices are not near-ties.
			for p := range m.Params() {
				for i := range p.Value.F32 {
					p.Value.F32[i] *= 20
				}
			}
			g := New(m, tensor.NewCPU(2), byteDecoder{})
			prompts := [][]int32{{72, 101, 108}, {5, 6, 7, 8, 9, 10, 11}, {200}}
			req := Request{Prompts: prompts, MaxTokens: 20}
			all, err := g.Generate(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range prompts {
				one, err := g.Generate(context.Background(), Request{Prompts: [][]int32{p}, MaxTokens: 20})
				if err != nil {
					t.Fatal(err)
				}
				if len(one.IDs[0]) != len(all.IDs[i]) {
					t.Fatalf("prompt %d: batched %v, alone %v", i, all.IDs[i], one.IDs[0])
				}
				for k := range one.IDs[0] {
					if one.IDs[0][k] != all.IDs[i][k] {
						t.Fatalf("prompt %d: batched %v, alone %v", i, all.IDs[i], one.IDs[0])
					}
				}
			}
		})
	}
}
