package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"llmlab/core/model"
	"llmlab/core/tensor"
)

// TestGGUFGPT2RoundTrip: the small GPT-2 `make gguf-check` trained
// (testdata/gguf/tiny-gpt2) exported as llama.cpp's "gpt2" architecture at
// f16 and q8_0 and read back as --model decodes the same greedy tokens as
// its HF folder, and those llama.cpp decoded from the f32 file; the file
// reads back as GPT-2 with its matrices kept in the file's types.
func TestGGUFGPT2RoundTrip(t *testing.T) {
	dir := filepath.Join("testdata", "gguf", "tiny-gpt2")
	var g ggufGolden
	data, err := os.ReadFile(filepath.Join(dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	greedy := func(m string) []int32 {
		t.Helper()
		code, msg := run(t, "generate", "--model", m, "--prompt", g.Prompt, "--max-tokens", "32", "--temperature", "0", "--json")
		if code != 0 {
			t.Fatalf("generate --model %s: %d %s", m, code, msg)
		}
		lines := strings.Split(strings.TrimSpace(msg), "\n")
		var res struct {
			IDs []int32 `json:"ids"`
		}
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil || len(res.IDs) == 0 {
			t.Fatalf("generate --model %s: %v\n%s", m, err, msg)
		}
		return res.IDs
	}
	want := greedy(dir)
	if diff := cmp.Diff(g.LlamaCppF32, want); diff != "" {
		t.Errorf("the folder's greedy ids differ from llama.cpp's (-llama.cpp +folder):\n%s", diff)
	}
	for _, tc := range []struct {
		quant string
		dtype tensor.DType // of blk.0.attn_qkv.weight as read back
	}{{"f16", tensor.F16}, {"q8_0", tensor.Q8_0}} {
		t.Run(tc.quant, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "gpt2-"+tc.quant+".gguf")
			if code, msg := run(t, "export", "--model", dir, "--format", "gguf", "--quant", tc.quant, "--out", out, "--template", "plain"); code != 0 {
				t.Fatalf("export: %d %s", code, msg)
			}
			if diff := cmp.Diff(want, greedy(out)); diff != "" {
				t.Errorf("greedy ids (-folder +gguf):\n%s", diff)
			}
			m, err := model.Load(out, model.LoadOptions{KeepStored: true})
			if err != nil {
				t.Fatal(err)
			}
			if m.Cfg.Arch != model.GPT2 || m.Cfg.Hidden != 64 || m.Cfg.Intermediate != 128 || !m.Cfg.TieEmbeddings {
				t.Errorf("read back as %+v", m.Cfg)
			}
			found := false
			for p := range m.Params() {
				if p.Name == "transformer.h.0.attn.c_attn.weight" {
					found = true
					if p.Value.DType != tc.dtype {
						t.Errorf("%s kept as %v, want %v", p.Name, p.Value.DType, tc.dtype)
					}
				}
			}
			if !found {
				t.Error("no transformer.h.0.attn.c_attn.weight read back")
			}
		})
	}
}
