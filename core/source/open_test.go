package source

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"llmlab/core/autograd"
	"llmlab/core/chat"
	"llmlab/core/checkpoint"
	"llmlab/core/model"
	"llmlab/core/tensor"
)

// modelGGUF writes a small Llama model with a vocabulary and a ChatML
// template as a Q8_0 GGUF file and returns its path and bytes.
func modelGGUF(t *testing.T) (string, []byte) {
	t.Helper()
	cfg, err := model.ParseConfig([]byte(`{"model_type":"llama","vocab_size":40,"hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":64,"max_position_embeddings":32}`))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := model.New(cfg, 3)
	voc := model.Vocab{BOS: -1, EOS: 39, PAD: -1, ChatTemplate: "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"}
	for i := 0; i < 39; i++ {
		voc.Tokens = append(voc.Tokens, string(rune('a'+i)))
		voc.Types = append(voc.Types, 1)
	}
	voc.Tokens, voc.Types = append(voc.Tokens, "<|im_end|>"), append(voc.Types, 3)
	f, _, err := m.GGUFQuantized(voc, "tiny", model.QuantQ8_0)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "tiny.gguf")
	if err := checkpoint.WriteGGUF(p, f); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return p, b
}

// TestOpenBytes: a GGUF image handed over in memory (the browser build)
// opens as the same file resolved by path does: the same config, weights
// kept as Q8_0, logits, tokenizer and chat format; bytes that are not a
// GGUF model give errors naming the file.
func TestOpenBytes(t *testing.T) {
	path, data := modelGGUF(t)
	byPath, err := Resolve(path, "")
	if err != nil {
		t.Fatal(err)
	}
	byBytes, err := FromBytes("tiny.gguf", data)
	if err != nil {
		t.Fatal(err)
	}
	if byBytes.Kind != GGUF || byBytes.Name != "tiny" {
		t.Errorf("FromBytes: kind %v name %q", byBytes.Kind, byBytes.Name)
	}
	logits := func(m *model.Transformer) []float32 {
		tp := autograd.NewTape(tensor.NewCPU(1))
		tp.NoGrad = true
		l, err := m.Forward(tp, model.Inputs{B: 1, T: 5, IDs: []int32{1, 5, 9, 3, 20}})
		if err != nil {
			t.Fatal(err)
		}
		return append([]float32(nil), l.Value.F32...)
	}
	var got [2]*Opened
	for i, s := range []Source{byPath, byBytes} {
		if got[i], err = s.Open(model.LoadOptions{KeepStored: true}); err != nil {
			t.Fatal(err)
		}
	}
	a, b := got[0], got[1]
	ja, _ := a.M.Cfg.JSON()
	jb, _ := b.M.Cfg.JSON()
	if diff := cmp.Diff(string(ja), string(jb)); diff != "" {
		t.Errorf("config (-path +bytes):\n%s", diff)
	}
	for p := range b.M.Params() {
		if p.Name == "model.layers.0.mlp.up_proj.weight" && p.Value.DType != tensor.Q8_0 {
			t.Errorf("%s kept as %v, want Q8_0", p.Name, p.Value.DType)
		}
	}
	if diff := cmp.Diff(logits(a.M), logits(b.M)); diff != "" {
		t.Errorf("logits (-path +bytes):\n%s", diff)
	}
	if a.Arch != "llama" || b.Arch != "llama" || a.Type != "Q8_0" || b.Type != "Q8_0" {
		t.Errorf("described as %s %s / %s %s, want llama Q8_0", a.Arch, a.Type, b.Arch, b.Type)
	}
	msgs := []chat.Message{{Role: chat.RoleUser, Content: "abc"}}
	ta, err := a.Chat.Text(msgs, true)
	if err != nil {
		t.Fatal(err)
	}
	tb, _ := b.Chat.Text(msgs, true)
	if want := "<|im_start|>user\nabc<|im_end|>\n<|im_start|>assistant\n"; ta != want || tb != want {
		t.Errorf("chat text %q / %q, want %q", ta, tb, want)
	}
	if diff := cmp.Diff(a.Tok.Encode("abc<|im_end|>", false), b.Tok.Encode("abc<|im_end|>", false)); diff != "" {
		t.Errorf("token ids (-path +bytes):\n%s", diff)
	}

	ap := filepath.Join(t.TempDir(), "a.gguf")
	if err := checkpoint.WriteGGUF(ap, &checkpoint.GGUFFile{KV: map[string]any{"general.architecture": "llama", "general.type": "adapter"},
		Tensors: []checkpoint.Named{{Name: "blk.0.attn_q.weight.lora_a", T: tensor.New(2, 32)}}}); err != nil {
		t.Fatal(err)
	}
	adapter, _ := os.ReadFile(ap)
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"notes.txt", []byte("hello, world"), "notes.txt is not a GGUF file"},
		{"short.gguf", []byte("GG"), "short.gguf is not a GGUF file"},
		{"cut.gguf", data[:len(data)/2], "cut.gguf"},
		{"lora.gguf", adapter, "lora.gguf is a LoRA adapter"},
	} {
		s, err := FromBytes(tc.name, tc.data)
		if err == nil {
			_, err = s.Open(model.LoadOptions{KeepStored: true})
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}
