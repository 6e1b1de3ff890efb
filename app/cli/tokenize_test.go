package cli

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestTokenizeChat runs `tokenize --chat` on Llama 3.1's and Qwen3's real
// tokenizer files and matches the text and ids that @huggingface/jinja and
// transformers.js give for the same conversations (core/chat's goldens);
// the train mask covers each answer and its end-of-turn marker.
func TestTokenizeChat(t *testing.T) {
	if testing.Short() {
		t.Skip("loads full-size tokenizers (-short)")
	}
	data, err := os.ReadFile(filepath.Join("..", "..", "core", "chat", "testdata", "jinja_golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var goldens []struct {
		Model               string            `json:"model"`
		Messages            []json.RawMessage `json:"messages"`
		AddGenerationPrompt bool              `json:"add_generation_prompt"`
		Text                string            `json:"text"`
		IDs                 []int32           `json:"ids"`
	}
	if err := json.Unmarshal(data, &goldens); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"llama3_1", "qwen3"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join("..", "..", "core", "tokenizer", "testdata", "models", name)
			gunzipTo(t, filepath.Join(src, "tokenizer.json.gz"), filepath.Join(dir, "tokenizer.json"))
			cfg, err := os.ReadFile(filepath.Join(src, "tokenizer_config.json"))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), cfg, 0o644)
			for _, gen := range []bool{false, true} {
				var lines []string
				var want []string
				var wantIDs [][]int32
				for _, g := range goldens {
					if g.Model != name || g.AddGenerationPrompt != gen {
						continue
					}
					js, _ := json.Marshal(map[string]any{"messages": g.Messages})
					lines = append(lines, string(js))
					want = append(want, g.Text)
					wantIDs = append(wantIDs, g.IDs)
				}
				convs := filepath.Join(dir, "convs.jsonl")
				os.WriteFile(convs, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
				args := []string{"tokenize", "--tokenizer", dir, "--chat", convs, "--json"}
				if gen {
					args = append(args, "--add-generation-prompt")
				}
				code, out := run(t, args...)
				if code != 0 {
					t.Fatalf("exit %d: %s", code, out)
				}
				got := strings.Split(strings.TrimSpace(out), "\n")
				if len(got) != len(want) {
					t.Fatalf("%d lines for %d conversations:\n%s", len(got), len(want), out)
				}
				for i, l := range got {
					var r struct {
						Text      string  `json:"text"`
						IDs       []int32 `json:"ids"`
						TrainMask []int   `json:"train_mask"`
					}
					if err := json.Unmarshal([]byte(l), &r); err != nil {
						t.Fatalf("line %d: %v: %s", i, err, l)
					}
					if diff := cmp.Diff(want[i], r.Text); diff != "" {
						t.Errorf("gen %v, conversation %d: text (-want +got):\n%s", gen, i, diff)
					}
					if diff := cmp.Diff(wantIDs[i], r.IDs); diff != "" {
						t.Errorf("gen %v, conversation %d: ids (-want +got):\n%s", gen, i, diff)
					}
					if len(r.TrainMask) != len(r.IDs) {
						t.Fatalf("conversation %d: %d mask entries for %d ids", i, len(r.TrainMask), len(r.IDs))
					}
					trained := 0
					for _, m := range r.TrainMask {
						trained += m
					}
					if trained == 0 {
						t.Errorf("gen %v, conversation %d: nothing trained", gen, i)
					}
				}
			}
		})
	}
}

func TestTokenizeChatUsage(t *testing.T) {
	dir := t.TempDir()
	convs := filepath.Join(dir, "c.jsonl")
	os.WriteFile(convs, []byte(`{"messages":[{"role":"user","content":"hi"}]}`+"\n"), 0o644)
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"tokenize", "--model", "demo", "--chat", convs, "--text", "x"}, "exactly one of --text, --file or --chat"},
		{[]string{"tokenize", "--model", "demo", "--text", "x", "--add-generation-prompt"}, "go with --chat"},
	} {
		if code, out := run(t, tc.args...); code != 2 || !strings.Contains(out, tc.msg) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", tc.args, code, out, tc.msg)
		}
	}
	code, out := run(t, "tokenize", "--model", "demo", "--chat", convs, "--add-generation-prompt", "--json")
	if code != 0 || !strings.Contains(out, `"train_mask":[`) {
		t.Errorf("demo model: exit %d, %q", code, out)
	}
}

func gunzipTo(t *testing.T, src, dst string) {
	t.Helper()
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
