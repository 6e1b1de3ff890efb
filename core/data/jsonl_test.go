package data

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"llmlab/core/chat"
)

func u(s string) chat.Message { return chat.Message{Role: chat.RoleUser, Content: s} }
func a(s string) chat.Message { return chat.Message{Role: chat.RoleAssistant, Content: s} }
func sys(s string) chat.Message {
	return chat.Message{Role: chat.RoleSystem, Content: s}
}

func TestReadJSONLShapes(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		shape Shape
		want  Record
	}{
		{"text", `{"text":"hello"}`, ShapeText, Record{Line: 1, Text: "hello"}},
		{"prompt completion", `{"prompt":"2+2=","completion":"4"}`, ShapePromptCompletion,
			Record{Line: 1, Prompt: []chat.Message{u("2+2=")}, Completion: []chat.Message{a("4")}}},
		{"conversational prompt completion", `{"prompt":[{"role":"system","content":"s"},{"role":"user","content":"q"}],"completion":[{"role":"assistant","content":"r"}]}`, ShapePromptCompletion,
			Record{Line: 1, Prompt: []chat.Message{sys("s"), u("q")}, Completion: []chat.Message{a("r")}}},
		{"alpaca", `{"instruction":"Add","input":"2 3","output":"5"}`, ShapeAlpaca,
			Record{Line: 1, Prompt: []chat.Message{u("Add\n\n2 3")}, Completion: []chat.Message{a("5")}}},
		{"alpaca no input", `{"instruction":"Say hi","input":"","output":"hi"}`, ShapeAlpaca,
			Record{Line: 1, Prompt: []chat.Message{u("Say hi")}, Completion: []chat.Message{a("hi")}}},
		{"chat", `{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}`, ShapeChat,
			Record{Line: 1, Prompt: []chat.Message{u("hi"), a("yo")}}},
		{"preference strings", `{"prompt":"p","chosen":"good","rejected":"bad"}`, ShapePreference,
			Record{Line: 1, Prompt: []chat.Message{u("p")}, Completion: []chat.Message{a("good")}, Rejected: []chat.Message{a("bad")}}},
		{"preference messages", `{"prompt":[{"role":"user","content":"p"}],"chosen":[{"role":"assistant","content":"good"}],"rejected":[{"role":"assistant","content":"bad"}]}`, ShapePreference,
			Record{Line: 1, Prompt: []chat.Message{u("p")}, Completion: []chat.Message{a("good")}, Rejected: []chat.Message{a("bad")}}},
		{"preference implicit prompt", `{"chosen":[{"role":"user","content":"p"},{"role":"assistant","content":"good"}],"rejected":[{"role":"user","content":"p"},{"role":"assistant","content":"bad"}]}`, ShapePreference,
			Record{Line: 1, Prompt: []chat.Message{u("p")}, Completion: []chat.Message{a("good")}, Rejected: []chat.Message{a("bad")}}},
		{"kto", `{"prompt":"p","completion":"c","label":false}`, ShapeKTO,
			Record{Line: 1, Prompt: []chat.Message{u("p")}, Completion: []chat.Message{a("c")}, Label: false}},
		{"kto numeric label", `{"prompt":"p","completion":"c","label":1}`, ShapeKTO,
			Record{Line: 1, Prompt: []chat.Message{u("p")}, Completion: []chat.Message{a("c")}, Label: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds, err := ReadJSONL(strings.NewReader(tc.in+"\n"), "x.jsonl")
			if err != nil {
				t.Fatal(err)
			}
			if ds.Shape != tc.shape {
				t.Errorf("shape %v, want %v", ds.Shape, tc.shape)
			}
			if d := cmp.Diff([]Record{tc.want}, ds.Records); d != "" {
				t.Errorf("records (-want +got):\n%s", d)
			}
		})
	}
}

func TestReadJSONLExtraAndBlankLines(t *testing.T) {
	in := "\xef\xbb\xbf{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"answer\":\"42\"}\n\n   \n{\"messages\":[{\"role\":\"user\",\"content\":\"r\"}]}"
	ds, err := ReadJSONL(strings.NewReader(in), "x.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Records) != 2 || ds.Records[1].Line != 4 {
		t.Fatalf("got %d records, second at line %d; want 2, line 4", len(ds.Records), ds.Records[1].Line)
	}
	if got := string(ds.Records[0].Extra["answer"]); got != `"42"` {
		t.Errorf("extra answer %s", got)
	}
}

// Bad input: every error names file and line and says what is wrong.
func TestReadJSONLErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"not an object", "{\"text\":\"a\"}\n[1,2]\n", "data.jsonl:2: not a JSON object"},
		{"string line", "\"hello\"\n", "data.jsonl:1: not a JSON object"},
		{"broken JSON", "{\"text\":\"a\"}\n{\"text\": \n", "data.jsonl:2: invalid JSON"},
		{"unknown keys", "{\"foo\":1,\"bar\":2}\n", "data.jsonl:1: keys [bar foo] match no dataset shape"},
		{"prompt without completion", "{\"prompt\":\"x\"}\n", "data.jsonl:1: a prompt-completion record needs both"},
		{"chosen without rejected", "{\"prompt\":\"x\",\"chosen\":\"y\"}\n", "data.jsonl:1: a preference record needs both"},
		{"kto without completion", "{\"prompt\":\"x\",\"label\":true}\n", "data.jsonl:1: a KTO record needs"},
		{"kto bad label", "{\"prompt\":\"x\",\"completion\":\"y\",\"label\":\"yes\"}\n", `data.jsonl:1: kto record: "label" must be`},
		{"alpaca without output", "{\"instruction\":\"x\"}\n", "data.jsonl:1: an Alpaca record needs"},
		{"text not string", "{\"text\":5}\n", `data.jsonl:1: text record: field "text" must be a string`},
		{"messages not list", "{\"messages\":\"hi\"}\n", `data.jsonl:1: chat record: "messages" must be a list`},
		{"message lacks content", "{\"messages\":[{\"role\":\"user\"}]}\n", `data.jsonl:1: chat record: messages[0] has no "content"`},
		{"message bad role", "{\"messages\":[{\"role\":\"bot\",\"content\":\"x\"}]}\n", `data.jsonl:1: chat record: messages[0] has role "bot"`},
		{"empty messages", "{\"messages\":[]}\n", `data.jsonl:1: chat record: "messages" is empty`},
		{"mixed shapes", "{\"text\":\"a\"}\n{\"prompt\":\"p\",\"completion\":\"c\"}\n", "data.jsonl:2: a prompt-completion record, but line 1 was text"},
		{"empty file", "", "data.jsonl: no records (empty file)"},
		{"only blank lines", "\n  \n\n", "data.jsonl: no records (empty file)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadJSONL(strings.NewReader(tc.in), "data.jsonl")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
	_, err := ReadJSONL(strings.NewReader(""), "e.jsonl")
	if !errors.Is(err, ErrEmpty) {
		t.Errorf("empty file: %v is not ErrEmpty", err)
	}
	_, err = ReadJSONL(strings.NewReader("[]\n"), "e.jsonl")
	var le *LineError
	if !errors.As(err, &le) || le.Line != 1 || le.File != "e.jsonl" {
		t.Errorf("want a *LineError at e.jsonl:1, got %v", err)
	}
}

// Invalid UTF-8 inside a JSON string is replaced, not a crash.
func TestReadJSONLInvalidUTF8(t *testing.T) {
	ds, err := ReadJSONL(strings.NewReader("{\"text\":\"a\xffb\"}\n"), "x.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if got := ds.Records[0].Text; got != "a\uFFFDb" {
		t.Errorf("text %q", got)
	}
}
