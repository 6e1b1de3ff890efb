package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// ggufGolden is what tools/gguf-check/families.mjs recorded for one
// family's small trained model: the greedy ids llama.cpp decoded from the
// f32 GGUF file llmlab exported, and that file's SHA-256.
type ggufGolden struct {
	Family        string   `json:"family"`
	MadeBy        []string `json:"made_by"`
	Prompt        string   `json:"prompt"`
	PromptIDs     []int32  `json:"prompt_ids"`
	MaxTokens     int      `json:"max_tokens"`
	SHA256        string   `json:"gguf_f32_sha256"`
	LlamaCppF32   []int32  `json:"llamacpp_f32_ids"`
	LlamaCppF16   []int32  `json:"llamacpp_f16_ids"`
	LlmlabIDs     []int32  `json:"llmlab_ids"`
	WithoutWindow bool     `json:"without_window"`
}

// TestGGUFFamiliesLlamaCpp checks, without llama.cpp, what `make
// gguf-check` established with it: for each family's small model in
// testdata/gguf, the f32 GGUF export is still byte for byte the file
// llama.cpp ran, and llmlab's greedy decoding still gives the ids llama.cpp
// gave for it. For Mistral, which llama.cpp runs without its sliding
// window, the ids are llmlab's with the window removed from config.json.
func TestGGUFFamiliesLlamaCpp(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join("testdata", "gguf", "tiny-*"))
	if len(dirs) < 8 {
		t.Fatalf("%d models in testdata/gguf, want one per family (run make gguf-check)", len(dirs))
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var g ggufGolden
			data, err := os.ReadFile(filepath.Join(dir, "golden.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &g); err != nil {
				t.Fatalf("%s: %v", filepath.Join(dir, "golden.json"), err)
			}
			tmp := t.TempDir()
			out := filepath.Join(tmp, g.Family+"-f32.gguf")
			if code, msg := run(t, "export", "--model", dir, "--format", "gguf", "--dtype", "f32", "--out", out, "--template", "plain"); code != 0 {
				t.Fatalf("export: %s", msg)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(b)
			if got := hex.EncodeToString(sum[:]); got != g.SHA256 {
				t.Errorf("the f32 export changed (sha256 %s, llama.cpp ran %s): run make gguf-check to check the new file in llama.cpp and record it", got, g.SHA256)
			}
			// The prompt still encodes to the ids llama.cpp was given.
			code, msg := run(t, "tokenize", "--model", dir, "--text", g.Prompt, "--special", "--json")
			var tok struct {
				IDs []int32 `json:"ids"`
			}
			if code != 0 || json.Unmarshal([]byte(strings.TrimSpace(msg)), &tok) != nil {
				t.Fatalf("tokenize: %s", msg)
			}
			if diff := cmp.Diff(g.PromptIDs, tok.IDs); diff != "" {
				t.Fatalf("the prompt's ids changed (-llama.cpp's +now):\n%s", diff)
			}
			model := dir
			if g.WithoutWindow {
				model = filepath.Join(tmp, "nowindow")
				if err := os.CopyFS(model, os.DirFS(dir)); err != nil {
					t.Fatal(err)
				}
				var cfg map[string]any
				data, err := os.ReadFile(filepath.Join(model, "config.json"))
				if err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal(data, &cfg); err != nil {
					t.Fatal(err)
				}
				if cfg["sliding_window"] == nil {
					t.Fatalf("%s: without_window, but config.json has no sliding_window", dir)
				}
				cfg["sliding_window"] = nil
				data, _ = json.Marshal(cfg)
				if err := os.WriteFile(filepath.Join(model, "config.json"), data, 0o644); err != nil {
					t.Fatal(err)
				}
				// With the window the model decodes differently.
				if got := greedyIDs(t, dir, g); cmp.Equal(got, g.LlamaCppF32) {
					t.Errorf("with its window the model decodes llama.cpp's ids %v: the window has no effect on this prompt", got)
				}
			}
			if diff := cmp.Diff(g.LlamaCppF32, greedyIDs(t, model, g)); diff != "" {
				t.Errorf("llmlab's greedy ids differ from llama.cpp's (-llama.cpp +llmlab):\n%s", diff)
			}
		})
	}
}

// greedyIDs runs llmlab generate at temperature 0 and returns the new ids
// up to the byte-level tokenizer's <|endoftext|>.
func greedyIDs(t *testing.T, model string, g ggufGolden) []int32 {
	t.Helper()
	code, msg := run(t, "generate", "--model", model, "--prompt", g.Prompt, "--temperature", "0",
		"--max-tokens", fmt.Sprint(g.MaxTokens), "--json")
	if code != 0 {
		t.Fatalf("generate: %s", msg)
	}
	for _, line := range strings.Split(msg, "\n") {
		var res struct {
			IDs []int32 `json:"ids"`
		}
		if json.Unmarshal([]byte(line), &res) != nil || res.IDs == nil {
			continue
		}
		for i, id := range res.IDs {
			if id == 256 {
				return res.IDs[:i]
			}
		}
		return res.IDs
	}
	t.Fatalf("generate printed no ids: %s", msg)
	return nil
}
