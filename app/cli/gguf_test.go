package cli

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"llmlab/core/model"
	"llmlab/core/tokenizer"
)

// TestGGUFModelSource: the demo model exported to an f16 GGUF file and
// read back as --model gives the same greedy tokens as the HF folder, and
// its tokenizer (rebuilt from the GGUF metadata) the same ids.
func TestGGUFModelSource(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "demo.gguf")
	if code, msg := run(t, "export", "--model", "demo", "--out", out); code != 0 {
		t.Fatalf("export: %d %s", code, msg)
	}
	gen := func(m string) string {
		code, msg := run(t, "generate", "--model", m, "--prompt", "Once upon a time", "--max-tokens", "32", "--temperature", "0")
		if code != 0 {
			t.Fatalf("generate --model %s: %d %s", m, code, msg)
		}
		text, _, _ := strings.Cut(msg, "\n[")
		return text
	}
	if a, b := gen("demo"), gen(out); a != b {
		t.Errorf("greedy text differs:\nfolder %q\ngguf   %q", a, b)
	}
	demo, err := demoModelDir()
	if err != nil {
		t.Fatal(err)
	}
	want, err := tokenizer.Load(demo)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tokenizer.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Once upon a time, a fox.", "  two  spaces\nand\ttabs 123 4567!", "<|im_start|>user\nhi<|im_end|>", "émigré ünïcode 日本"} {
		if a, b := want.Encode(s, true), got.Encode(s, true); !slices.Equal(a, b) {
			t.Errorf("%q: folder ids %v, gguf ids %v", s, a, b)
		}
	}
	if got.ChatTemplate() != want.ChatTemplate() || got.EOS() != want.EOS() {
		t.Errorf("chat template or EOS differ: %q/%d vs %q/%d", got.ChatTemplate(), got.EOS(), want.ChatTemplate(), want.EOS())
	}
	// A GGUF file through model.Load keeps its stored types with KeepStored.
	m, err := model.Load(out, model.LoadOptions{KeepStored: true})
	if err != nil {
		t.Fatal(err)
	}
	if m.Cfg.ModelType != "llama" || m.Cfg.Layers == 0 {
		t.Errorf("config %+v", m.Cfg)
	}
	if code, msg := run(t, "generate", "--model", filepath.Join(dir, "nope.gguf"), "--prompt", "x"); code != 2 || !strings.Contains(msg, "nope.gguf") {
		t.Errorf("a missing file: %d %s", code, msg)
	}
}
