// Package gputest holds the checks every backend in gpu/ runs on top of
// core/tensor/backendtest's op-by-op comparison: a few training steps of
// small models whose losses must follow the CPU backend's.
package gputest

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"

	"llmlab/core/autograd"
	"llmlab/core/generate"
	"llmlab/core/model"
	"llmlab/core/optim"
	"llmlab/core/tensor"
)

// Losses trains a fresh model of cfg (seeded, so every backend starts from
// the same weights) for steps AdamW steps with gradient clipping on one
// fixed batch on b, and returns each step's loss.
func Losses(t testing.TB, b tensor.Backend, cfg model.Config, steps int) []float64 {
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

// Configs returns the models TrainMatchesCPU trains: the tiny Llama
// preset (RMSNorm, RoPE, SwiGLU, GQA-ready attention), a GPT-2 of the
// same size (LayerNorm with bias, learned positions, GELU, fused qkv) and
// a Gemma 2 (see below).
func Configs(t testing.TB) map[string]model.Config {
	t.Helper()
	llama, err := model.Preset(model.Llama, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	llama.KVHeads = 2 // grouped-query attention
	gpt2, err := model.Preset(model.GPT2, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	gpt2.Arch, gpt2.ModelType, gpt2.Activation, gpt2.AttentionBias, gpt2.OutputBias = model.GPT2, "gpt2", "gelu_new", true, true
	// Gemma 2's differences from Llama: (1+w) norms, four a block, GeGLU,
	// embedding scale, windowed layers (shorter than the 24-token rows),
	// attention and final softcaps.
	gemma2, err := model.ParseConfig([]byte(`{"model_type":"gemma2","vocab_size":512,"hidden_size":128,"num_hidden_layers":2,
		"num_attention_heads":4,"num_key_value_heads":2,"head_dim":32,"intermediate_size":256,"max_position_embeddings":128,
		"sliding_window":8,"query_pre_attn_scalar":32,"attn_logit_softcapping":5.0,"final_logit_softcapping":10.0}`))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]model.Config{"llama": llama, "gpt2": gpt2, "gemma2": gemma2}
}

// TrainMatchesCPU trains each of Configs for 5 steps on b and on the CPU
// backend; every step's loss must agree to 1e-3 (relative), and the loss
// must fall.
func TrainMatchesCPU(t *testing.T, b tensor.Backend) {
	for name, cfg := range Configs(t) {
		t.Run(name, func(t *testing.T) {
			want := Losses(t, tensor.NewCPU(1), cfg, 5)
			got := Losses(t, b, cfg, 5)
			for i := range want {
				if math.Abs(got[i]-want[i]) > 1e-3*math.Max(1, want[i]) {
					t.Errorf("step %d: loss %.6f on %s, %.6f on the CPU", i, got[i], b.Name(), want[i])
				}
			}
			if want[len(want)-1] >= want[0] {
				t.Errorf("loss did not fall: %v", want)
			}
			t.Logf("cpu %.5f, %s %.5f", want, b.Name(), got)
		})
	}
}

// idText decodes ids as their numbers (the checks need no tokenizer).
type idText struct{}

func (idText) Decode(ids []int32) string { return fmt.Sprint(ids) }

// GenerateMatchesCPU decodes greedily from two prompts of different
// lengths (left padding, segment masks, the KV cache) on b and on the CPU
// with each of Configs: the tokens must be the same.
func GenerateMatchesCPU(t *testing.T, b tensor.Backend) {
	for name, cfg := range Configs(t) {
		t.Run(name, func(t *testing.T) {
			m, err := model.New(cfg, 3)
			if err != nil {
				t.Fatal(err)
			}
			req := generate.Request{Prompts: [][]int32{{5, 17, 99, 3, 42}, {7, 8}}, MaxTokens: 12}
			want, err := generate.New(m, tensor.NewCPU(1), idText{}).Generate(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := generate.New(m, b, idText{}).Generate(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want.IDs {
				if !slices.Equal(got.IDs[i], want.IDs[i]) {
					t.Errorf("sequence %d: %v on %s, %v on the CPU", i, got.IDs[i], b.Name(), want.IDs[i])
				}
			}
			// Continuous batching: rows at different lengths in one step
			// (per-row cache lengths, empty cache rows masked by segment
			// ids), a row leaving and its slot reused.
			wantC, err := continuous(m, tensor.NewCPU(1))
			if err != nil {
				t.Fatal(err)
			}
			gotC, err := continuous(m, b)
			if err != nil {
				t.Fatal(err)
			}
			for i := range wantC {
				if !slices.Equal(gotC[i], wantC[i]) {
					t.Errorf("continuous batch, sequence %d: %v on %s, %v on the CPU", i, gotC[i], b.Name(), wantC[i])
				}
			}
		})
	}
}

// continuous decodes three prompts greedily in a batch of two slots: the
// second joins three steps after the first, the third when the first has
// left.
func continuous(m *model.Transformer, b tensor.Backend) ([][]int32, error) {
	bt, err := generate.New(m, b, idText{}).NewBatch(2, 40)
	if err != nil {
		return nil, err
	}
	defer bt.Close()
	reqs := []generate.SeqRequest{
		{Prompt: []int32{5, 17, 99, 3, 42}, MaxTokens: 6},
		{Prompt: []int32{7, 8}, MaxTokens: 14},
		{Prompt: []int32{11, 12, 13}, MaxTokens: 8},
	}
	var seqs []*generate.Seq
	for step := 0; len(seqs) < len(reqs) || bt.Running() > 0; step++ {
		if len(seqs) < len(reqs) && bt.Free() > 0 && (len(seqs) == 0 || step >= 3) {
			s, err := bt.Join(reqs[len(seqs)])
			if err != nil {
				return nil, err
			}
			seqs = append(seqs, s...)
		}
		if err := bt.Step(); err != nil {
			return nil, err
		}
	}
	out := make([][]int32, len(seqs))
	for i, s := range seqs {
		out[i] = s.IDs()
	}
	return out, nil
}
