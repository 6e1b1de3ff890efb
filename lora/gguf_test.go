package lora

import (
	"path/filepath"
	"strings"
	"testing"

	"llmlab/core/checkpoint"
	"llmlab/core/model"
	"llmlab/core/tensor"
	"llmlab/core/tensor/tensortest"
)

// TestGGUFAdapter writes LoRA adapters as GGUF adapter files, reads them
// back, and checks keys, names and shapes; then checks that the file's
// update, applied the way llama.cpp applies it (W_gguf + alpha/r·B·A), is
// the GGUF export of the merged model: this covers the q/k row permutation
// and the rsLoRA alpha.
func TestGGUFAdapter(t *testing.T) {
	for _, arch := range []model.Arch{model.Llama, model.GPT2} {
		for _, rs := range []bool{false, true} {
			t.Run(arch.String()+map[bool]string{false: "", true: "/rslora"}[rs], func(t *testing.T) {
				m := tinyModel(t, arch)
				a, err := Apply(m, Config{Rank: 2, Alpha: 3, RSLoRA: rs, Targets: []string{"all-linear"}, Seed: 1})
				if err != nil {
					t.Fatal(err)
				}
				for i, l := range a.Layers {
					copy(l.B.Value.F32, tensortest.Rand(uint64(i+80), l.B.Value.Numel(), 0.3))
				}
				f, err := a.GGUF("tiny-adapter", tensor.F32)
				if err != nil {
					t.Fatal(err)
				}
				path := filepath.Join(t.TempDir(), "adapter.gguf")
				if err := checkpoint.WriteGGUF(path, f); err != nil {
					t.Fatal(err)
				}
				g, err := checkpoint.ReadGGUF(path)
				if err != nil {
					t.Fatal(err)
				}
				arch := map[model.Arch]string{model.Llama: "llama", model.GPT2: "gpt2"}[m.Cfg.Arch]
				if g.KV["general.type"] != "adapter" || g.KV["adapter.type"] != "lora" || g.KV["general.architecture"] != arch {
					t.Fatalf("keys %v", g.KV)
				}
				alpha := g.KV["adapter.lora.alpha"].(float32)
				if len(g.Tensors) != 2*len(a.Layers) {
					t.Fatalf("%d tensors for %d layers", len(g.Tensors), len(a.Layers))
				}
				delta := map[string][]float32{} // GGUF weight name -> alpha/r·B·A
				byName := map[string]*tensor.Tensor{}
				for _, nt := range g.Tensors {
					byName[nt.Name] = nt.T
				}
				for name, A := range byName {
					base, ok := strings.CutSuffix(name, ".lora_a")
					if !ok {
						continue
					}
					B := byName[base+".lora_b"]
					if B == nil {
						t.Fatalf("%s without its lora_b", name)
					}
					r, in, out := A.Shape[0], A.Shape[1], B.Shape[0]
					d := make([]float32, out*in)
					for o := 0; o < out; o++ {
						for k := 0; k < r; k++ {
							s := alpha / float32(r) * B.F32[o*r+k]
							for i := 0; i < in; i++ {
								d[o*in+i] += s * A.F32[k*in+i]
							}
						}
					}
					delta[base] = d
				}
				vocab := model.Vocab{Tokens: make([]string, m.Cfg.VocabSize), Types: make([]int32, m.Cfg.VocabSize), BOS: -1, EOS: -1, PAD: -1}
				baseF, err := m.GGUF(vocab, "tiny", tensor.F32)
				if err != nil {
					t.Fatal(err)
				}
				for i := range baseF.Tensors { // F32 exports share the model's weights
					baseF.Tensors[i].T = baseF.Tensors[i].T.Clone()
				}
				if err := a.Merge(); err != nil {
					t.Fatal(err)
				}
				mergedF, err := m.GGUF(vocab, "tiny", tensor.F32)
				if err != nil {
					t.Fatal(err)
				}
				checked := 0
				for i, nt := range baseF.Tensors {
					d, ok := delta[nt.Name]
					if !ok {
						continue
					}
					want := mergedF.Tensors[i].T.F32
					got := make([]float32, len(d))
					for j := range got {
						got[j] = nt.T.F32[j] + d[j]
					}
					tensortest.Close(t, nt.Name, got, want, 1e-5)
					checked++
				}
				if checked != len(a.Layers) {
					t.Fatalf("checked %d of %d adapted weights", checked, len(a.Layers))
				}
			})
		}
	}
}

func TestGGUFAdapterRefuses(t *testing.T) {
	m := tinyModel(t, model.Llama)
	a, err := Apply(m, Config{Method: DoRA, Rank: 2, Targets: []string{"q_proj"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.GGUF("x", tensor.F32); err == nil || !strings.Contains(err.Error(), "DoRA") {
		t.Errorf("DoRA: %v", err)
	}
	a.Remove()
	a, err = Apply(m, Config{Rank: 2, Targets: []string{"q_proj"}, ModulesToSave: []string{"embed_tokens"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.GGUF("x", tensor.F32); err == nil || !strings.Contains(err.Error(), "modules_to_save") {
		t.Errorf("modules_to_save: %v", err)
	}
}
