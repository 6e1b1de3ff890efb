package lora

import (
	"path/filepath"
	"testing"

	"llmlab/core/autograd"
	"llmlab/core/checkpoint"
	"llmlab/core/model"
	"llmlab/core/tensor"
	"llmlab/core/tensor/tensortest"
)

// TestFusedTargets: on Phi-3's fused projections LoRA targets qkv_proj and
// gate_up_proj by those names (as PEFT does), trains through them, saves
// and loads them under PEFT's keys, and merges into the same outputs.
func TestFusedTargets(t *testing.T) {
	cfg, err := model.ParseConfig([]byte(`{"model_type":"phi3","vocab_size":50,"hidden_size":32,"num_hidden_layers":2,
		"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":40,"max_position_embeddings":32,
		"partial_rotary_factor":0.5,"tie_word_embeddings":true}`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.New(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	valid := ValidTargets(m)
	for _, want := range []string{"qkv_proj", "gate_up_proj", "o_proj", "down_proj"} {
		found := false
		for _, v := range valid {
			found = found || v == want
		}
		if !found {
			t.Fatalf("valid targets %v lack %s", valid, want)
		}
	}
	a, err := Apply(m, Config{Method: LoRA, Rank: 4, Alpha: 8, Targets: []string{"qkv_proj", "gate_up_proj"}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	// B starts at zero: give it values so the adapter changes the output.
	for _, p := range a.Params() {
		copy(p.Value.F32, tensortest.Rand(5, p.Value.Numel(), 0.1))
	}
	ids := []int32{1, 4, 9, 16, 25, 36, 49, 2}
	in := model.Inputs{B: 1, T: len(ids), IDs: ids}
	logits := func() []float32 {
		tp := autograd.NewTape(tensor.NewCPU(1))
		l, err := m.Forward(tp, in)
		if err != nil {
			t.Fatal(err)
		}
		return append([]float32(nil), l.Value.F32...)
	}
	withAdapter := logits()
	tp := autograd.NewTape(tensor.NewCPU(1))
	loss, _, err := m.Loss(tp, in, append(ids[1:], -1))
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.Backward(loss); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range a.Params() {
		if p.Grad == nil {
			t.Fatalf("%s got no gradient", p.Name)
		}
		n++
	}
	if n != 2*2*cfg.Layers {
		t.Fatalf("%d adapter tensors, want %d (A and B for 2 modules x %d layers)", n, 4*cfg.Layers, cfg.Layers)
	}
	dir := t.TempDir()
	if err := a.Save(dir, "base"); err != nil {
		t.Fatal(err)
	}
	f, err := checkpoint.Open(filepath.Join(dir, "adapter_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"base_model.model.model.layers.1.self_attn.qkv_proj.lora_A.weight", "base_model.model.model.layers.0.mlp.gate_up_proj.lora_B.weight"} {
		if _, err := f.Tensor(key); err != nil {
			t.Errorf("PEFT key %s: %v", key, err)
		}
	}
	f.Close()
	a.Remove()
	b, err := Load(m, dir)
	if err != nil {
		t.Fatal(err)
	}
	tensortest.Close(t, "logits after PEFT save and load", logits(), withAdapter, 1e-6)
	if err := b.Merge(); err != nil {
		t.Fatal(err)
	}
	tensortest.Close(t, "merged logits", logits(), withAdapter, 1e-5)
}
