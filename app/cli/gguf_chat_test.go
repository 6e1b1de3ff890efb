package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestGGUFChat: `generate --chat` on a GGUF file renders the prompt with
// the file's own chat template (tokenizer.chat_template) and gives the
// demo model's chat answer, token for token, at f16 and q8_0.
func TestGGUFChat(t *testing.T) {
	gen := func(m string) []int32 {
		t.Helper()
		code, msg := run(t, "generate", "--model", m, "--chat", "--prompt", "What is 2+3?", "--max-tokens", "24", "--temperature", "0", "--json")
		if code != 0 {
			t.Fatalf("generate --chat --model %s: %d %s", m, code, msg)
		}
		lines := strings.Split(strings.TrimSpace(msg), "\n")
		var res struct {
			IDs []int32 `json:"ids"`
		}
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil || len(res.IDs) == 0 {
			t.Fatalf("generate --chat --model %s: %v\n%s", m, err, msg)
		}
		return res.IDs
	}
	want := gen("demo")
	for _, q := range []string{"f16", "q8_0"} {
		out := filepath.Join(t.TempDir(), "demo-"+q+".gguf")
		if code, msg := run(t, "export", "--model", "demo", "--quant", q, "--out", out); code != 0 {
			t.Fatalf("export: %d %s", code, msg)
		}
		if diff := cmp.Diff(want, gen(out)); diff != "" {
			t.Errorf("%s: chat ids (-folder +gguf):\n%s", q, diff)
		}
	}
}
