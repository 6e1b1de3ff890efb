package model

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"llmlab/core/autograd"
	"llmlab/core/checkpoint"
	"llmlab/core/tensor"
	"llmlab/core/tensor/tensortest"
)

// TestLoadGGUF: llama (q/k rows permuted by the exporter, un-permuted by
// the loader), qwen2 (biases, no permutation) and gpt2 (learned
// positions, LayerNorm biases, fused qkv, (out, in) matrices where HF
// keeps Conv1D's [in, out]) exported as F32 GGUF
// and loaded back as models give the original logits, whether the
// weights are converted or kept as stored; files that do not fit give
// errors naming the key or tensor.
func TestLoadGGUF(t *testing.T) {
	for _, js := range []string{
		`{"model_type":"llama","vocab_size":40,"hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":48,"max_position_embeddings":32,"rope_theta":500000}`,
		`{"model_type":"qwen2","vocab_size":40,"hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":48,"max_position_embeddings":32,"tie_word_embeddings":true}`,
		`{"model_type":"gpt2","vocab_size":40,"n_embd":32,"n_layer":2,"n_head":4,"n_inner":48,"n_positions":32}`,
		`{"model_type":"gpt2","vocab_size":40,"n_embd":32,"n_layer":2,"n_head":4,"n_positions":32,"tie_word_embeddings":false}`,
	} {
		cfg, err := ParseConfig([]byte(js))
		if err != nil {
			t.Fatal(err)
		}
		m, _ := New(cfg, 4)
		for _, p := range m.ParamList() {
			if len(p.Value.Shape) == 1 {
				copy(p.Value.F32, tensortest.Rand(9, p.Value.Numel(), 1))
			}
		}
		voc := Vocab{BOS: 1, EOS: 2, PAD: -1}
		for i := 0; i < 40; i++ {
			voc.Tokens = append(voc.Tokens, string(rune('a'+i)))
			voc.Types = append(voc.Types, 1)
		}
		f, err := m.GGUF(voc, "test", tensor.F32)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "m.gguf")
		if err := checkpoint.WriteGGUF(path, f); err != nil {
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
		for _, keep := range []bool{false, true} {
			back, err := Load(path, LoadOptions{KeepStored: keep})
			if err != nil {
				t.Fatal(err)
			}
			if back.Cfg.ModelType != cfg.ModelType || back.Cfg.RopeTheta != cfg.RopeTheta || back.Cfg.TieEmbeddings != cfg.TieEmbeddings || back.Cfg.AttentionBias != cfg.AttentionBias {
				t.Errorf("config read back %+v, wrote %+v", back.Cfg, cfg)
			}
			tensortest.Close(t, cfg.ModelType+" logits", logits(back), logits(m), 1e-5)
		}
	}
	// A file whose tensors do not fit the metadata.
	cfg, _ := ParseConfig([]byte(`{"model_type":"llama","vocab_size":40,"hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":48,"max_position_embeddings":32}`))
	m, _ := New(cfg, 1)
	f, _ := m.GGUF(Vocab{BOS: -1, EOS: -1, PAD: -1}, "t", tensor.F32)
	for _, tc := range []struct {
		name   string
		change func(f *checkpoint.GGUFFile)
		want   string
	}{
		{"arch", func(f *checkpoint.GGUFFile) { f.KV["general.architecture"] = "rwkv7" }, `"rwkv7" is not supported`},
		{"key", func(f *checkpoint.GGUFFile) { delete(f.KV, "llama.block_count") }, "llama.block_count is missing"},
		{"tensor", func(f *checkpoint.GGUFFile) {
			f.Tensors = slices.DeleteFunc(f.Tensors, func(n checkpoint.Named) bool { return n.Name == "blk.1.ffn_up.weight" })
		}, "model.layers.1.mlp.up_proj.weight"},
		{"extra", func(f *checkpoint.GGUFFile) {
			f.Tensors = append(f.Tensors, checkpoint.Named{Name: "rope_freqs.weight", T: tensor.New(8)})
		}, "rope_freqs.weight"},
	} {
		g := &checkpoint.GGUFFile{KV: map[string]any{}, Tensors: append([]checkpoint.Named(nil), f.Tensors...)}
		for k, v := range f.KV {
			g.KV[k] = v
		}
		tc.change(g)
		path := filepath.Join(t.TempDir(), tc.name+".gguf")
		if err := checkpoint.WriteGGUF(path, g); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(path, LoadOptions{}); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %v, want one naming the file and %q", tc.name, err, tc.want)
		}
	}
}

// TestLoadGGUFFamilies: each family the architecture table names,
// exported by GGUF and loaded back from the file, gives the original
// logits: the names, norms stored as 1+w, softcaps, partial RoPE and the
// RoPE scalings (Llama 3's rebuilt from rope_freqs.weight, longrope from
// its factor tensors) all come back.
func TestLoadGGUFFamilies(t *testing.T) {
	const base = `"vocab_size":40,"hidden_size":32,"num_hidden_layers":4,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":48,"max_position_embeddings":64`
	for _, js := range []string{
		`{"model_type":"llama",` + base + `,"rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192}}`,
		`{"model_type":"llama",` + base + `,"rope_scaling":{"rope_type":"linear","factor":2.0}}`,
		`{"model_type":"qwen3",` + base + `,"head_dim":8,"rope_scaling":{"rope_type":"yarn","factor":4.0,"original_max_position_embeddings":16}}`,
		`{"model_type":"gemma3_text",` + base + `,"head_dim":8,"query_pre_attn_scalar":8,"sliding_window":16}`,
		`{"model_type":"gemma2",` + base + `,"head_dim":8,"query_pre_attn_scalar":8,"sliding_window":16}`,
		`{"model_type":"phi3",` + base + `,"partial_rotary_factor":0.5,"original_max_position_embeddings":16,"rope_scaling":{"type":"longrope","short_factor":[1.0,1.5],"long_factor":[2.0,3.0]}}`,
		`{"model_type":"smollm3",` + base + `}`,
	} {
		cfg, err := ParseConfig([]byte(js))
		if err != nil {
			t.Fatal(err)
		}
		t.Run(cfg.ModelType+"/"+cfg.Rope.Kind.String(), func(t *testing.T) {
			m, _ := New(cfg, 4)
			for _, p := range m.ParamList() {
				if len(p.Value.Shape) == 1 {
					copy(p.Value.F32, tensortest.Rand(9, p.Value.Numel(), 0.5))
				}
			}
			voc := Vocab{BOS: 1, EOS: 2, PAD: -1}
			for i := 0; i < 40; i++ {
				voc.Tokens = append(voc.Tokens, string(rune('a'+i)))
				voc.Types = append(voc.Types, 1)
			}
			f, err := m.GGUF(voc, "test", tensor.F32)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "m.gguf")
			if err := checkpoint.WriteGGUF(path, f); err != nil {
				t.Fatal(err)
			}
			back, err := Load(path, LoadOptions{KeepStored: true})
			if err != nil {
				t.Fatal(err)
			}
			ids := []int32{1, 5, 9, 3, 3, 20, 7, 30, 2, 11, 4, 6, 8, 9, 10, 12, 13, 14, 15, 16, 17, 18, 19, 21}
			logits := func(m *Transformer) []float32 {
				tp := autograd.NewTape(tensor.NewCPU(1))
				tp.NoGrad = true
				l, err := m.Forward(tp, Inputs{B: 1, T: len(ids), IDs: ids})
				if err != nil {
					t.Fatal(err)
				}
				return append([]float32(nil), l.Value.F32...)
			}
			tensortest.Close(t, "logits", logits(back), logits(m), 1e-4)
		})
	}
}
