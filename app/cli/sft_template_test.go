package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSFTModelTemplate: a model whose chat template is none of the
// built-in ones (a chat_template.jinja beside the tokenizer) fine-tunes
// with it, and the run records that the model's own template was used.
func TestSFTModelTemplate(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model (-short)")
	}
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	if code, msg := run(t, "init", "--preset", "tiny", "--out", base); code != 0 {
		t.Fatal(msg)
	}
	tpl := "{% for m in messages %}{% if m['role'] == 'user' %}[Q] {{ m['content'] }}\n{% else %}[A] {{ m['content'] | trim }}[END]\n{% endif %}{% endfor %}{% if add_generation_prompt %}[A] {% endif %}"
	if err := os.WriteFile(filepath.Join(base, "chat_template.jinja"), []byte(tpl), 0o644); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i := 0; i < 16; i++ {
		fmt.Fprintf(&b, "{\"messages\":[{\"role\":\"user\",\"content\":\"say %d\"},{\"role\":\"assistant\",\"content\":\" %d \"}]}\n", i, i)
	}
	dataPath := filepath.Join(dir, "sft.jsonl")
	os.WriteFile(dataPath, []byte(b.String()), 0o644)
	runDir := filepath.Join(dir, "run")
	code, msg := run(t, "sft", "--model", base, "--data", dataPath, "--out", runDir, "--steps", "2", "--batch", "2", "--ctx", "64", "--rank", "4", "--peft", "lora")
	if code != 0 {
		t.Fatal(msg)
	}
	if !strings.Contains(msg, "template model") {
		t.Errorf("the log does not say the model's own template was used:\n%s", msg)
	}
	rec, err := os.ReadFile(filepath.Join(runDir, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rec), `"template": "model"`) && !strings.Contains(string(rec), `"template":"model"`) {
		t.Errorf("run.json does not record the model's template:\n%s", rec)
	}
}
