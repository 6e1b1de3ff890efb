package cli

import (
	"strings"
	"testing"
	"text/template"

	"llmlab/core/chat"
)

// TestOllamaTemplates renders each Modelfile TEMPLATE with Go's
// text/template (what ollama uses) and compares it with our own rendering
// of the same conversation, with and without a system prompt (less the
// BOS token, which llama.cpp adds).
func TestOllamaTemplates(t *testing.T) {
	for _, tm := range chat.Templates() {
		t.Run(tm.String(), func(t *testing.T) {
			text, stops, err := ollamaTemplate(chat.Format{Builtin: tm}, nil)
			if err != nil {
				t.Fatal(err)
			}
			tpl, err := template.New("m").Parse(text)
			if err != nil {
				t.Fatalf("not a Go template: %v\n%s", err, text)
			}
			for _, sys := range []string{"", "Be brief."} {
				var got strings.Builder
				if err := tpl.Execute(&got, map[string]string{"System": sys, "Prompt": "What is 2 plus 2?", "Response": ""}); err != nil {
					t.Fatal(err)
				}
				msgs := []chat.Message{{Role: chat.RoleUser, Content: "What is 2 plus 2?"}}
				if sys != "" {
					msgs = append([]chat.Message{{Role: chat.RoleSystem, Content: sys}}, msgs...)
				}
				want, err := tm.Text(msgs, true)
				if err != nil {
					if sys != "" {
						continue // the template has no system turn
					}
					t.Fatal(err)
				}
				if tm.IncludesBOS() {
					want = stripBOS(want) // llama.cpp adds BOS itself
				}
				if got.String() != want {
					t.Errorf("system %q:\n got %q\nwant %q", sys, got.String(), want)
				}
			}
			if len(stops) == 0 && tm.String() != "plain" {
				t.Errorf("no stop strings")
			}
		})
	}
}
