package chat

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// show renders segments with trained text in ⟦ ⟧, so a golden file shows
// both the exact text and the loss mask.
func show(segs []Segment) string {
	var b strings.Builder
	for _, s := range segs {
		if s.Train {
			b.WriteString("⟦" + s.Text + "⟧")
		} else {
			b.WriteString(s.Text)
		}
	}
	return b.String()
}

var multiTurn = []Message{
	{RoleSystem, "You are a helpful assistant."},
	{RoleUser, "What is 2 + 3?"},
	{RoleAssistant, "5"},
	{RoleUser, "Reverse: cat dog"},
	{RoleAssistant, "dog cat"},
}

// TestGolden renders, for every template, a multi-turn conversation with a
// system prompt, and a prompt with the generation prompt added. Run with
// -update to rewrite testdata/<template>.golden (then read the diff).
func TestGolden(t *testing.T) {
	for _, tpl := range Templates() {
		t.Run(tpl.String(), func(t *testing.T) {
			conv, err := tpl.Render(multiTurn, false)
			if err != nil {
				t.Fatal(err)
			}
			gen, err := tpl.Render([]Message{{RoleSystem, "Be brief."}, {RoleUser, "Hi"}}, true)
			if err != nil {
				t.Fatal(err)
			}
			noSys, err := tpl.Render([]Message{{RoleUser, "Hi"}, {RoleAssistant, "Hello!"}}, false)
			if err != nil {
				t.Fatal(err)
			}
			got := "== conversation\n" + show(conv) + "\n== generation prompt\n" + show(gen) + "\n== no system\n" + show(noSys) + "\n"
			path := filepath.Join("testdata", tpl.String()+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if d := cmp.Diff(string(want), got); d != "" {
				t.Errorf("%s mismatch (-want +got):\n%s", path, d)
			}
		})
	}
}

// Every assistant turn is exactly one trained segment, and nothing else is.
func TestTrainedSegmentsAreAssistantTurns(t *testing.T) {
	for _, tpl := range Templates() {
		segs, err := tpl.Render(multiTurn, false)
		if err != nil {
			t.Fatal(err)
		}
		var trained []string
		for _, s := range segs {
			if s.Train {
				trained = append(trained, s.Text)
			}
		}
		if len(trained) != 2 || !strings.HasPrefix(trained[0], "5") || !strings.HasPrefix(trained[1], "dog cat") {
			t.Errorf("%s: trained segments %q, want the two answers", tpl, trained)
		}
	}
}

func TestRoleErrors(t *testing.T) {
	tests := []struct {
		name string
		tpl  Template
		msgs []Message
		idx  int // -1: no error
	}{
		{"llama2 two users", Llama2, []Message{{RoleUser, "a"}, {RoleUser, "b"}}, 1},
		{"mistral starts with assistant", Mistral, []Message{{RoleAssistant, "a"}}, 0},
		{"gemma system late", Gemma, []Message{{RoleUser, "a"}, {RoleSystem, "b"}}, 1},
		{"alpaca two assistants", Alpaca, []Message{{RoleSystem, "s"}, {RoleUser, "a"}, {RoleAssistant, "b"}, {RoleAssistant, "c"}}, 3},
		{"chatml allows anything", ChatML, []Message{{RoleUser, "a"}, {RoleUser, "b"}, {RoleSystem, "c"}}, -1},
		{"llama3 allows two users", Llama3, []Message{{RoleUser, "a"}, {RoleUser, "b"}}, -1},
		{"unknown role", ChatML, []Message{{RoleUser, "a"}, {"tool", "b"}}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.tpl.Render(tc.msgs, false)
			if tc.idx < 0 {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			var re *RoleError
			if !errors.As(err, &re) {
				t.Fatalf("got %v, want a *RoleError", err)
			}
			if re.Index != tc.idx {
				t.Errorf("error at message %d, want %d: %v", re.Index, tc.idx, err)
			}
			if !strings.Contains(err.Error(), tc.tpl.String()) {
				t.Errorf("error %q does not name the template", err)
			}
		})
	}
	if _, err := ChatML.Render(nil, true); err == nil {
		t.Error("empty conversation: no error")
	}
}

func TestParse(t *testing.T) {
	for _, tpl := range Templates() {
		got, err := Parse(strings.ToUpper(tpl.String()))
		if err != nil || got != tpl {
			t.Errorf("Parse(%q) = %v, %v", tpl, got, err)
		}
	}
	if got, err := Parse("llama-3"); err != nil || got != Llama3 {
		t.Errorf("Parse(llama-3) = %v, %v", got, err)
	}
	if _, err := Parse("vicuna"); err == nil || !strings.Contains(err.Error(), "chatml") {
		t.Errorf("Parse(vicuna) error %v should list the known names", err)
	}
	var tpl Template
	if err := tpl.UnmarshalText([]byte("zephyr")); err != nil || tpl != Zephyr {
		t.Errorf("UnmarshalText: %v %v", tpl, err)
	}
}

// Sketches of the Jinja sources HF model repositories ship, reduced to the
// parts that carry each family's markers.
var jinjaSources = map[string]Template{
	`{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}`:                                                                                                                                                                               ChatML,
	`{% if messages[0]['role'] == 'system' %}{% set system_message = '<<SYS>>\n' + messages[0]['content'] | trim + '\n<</SYS>>\n\n' %}{% endif %}{% for message in loop_messages %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content | trim + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + content | trim + ' ' + eos_token }}{% endif %}{% endfor %}`: Llama2,
	`{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}`:                                                                                                          Llama3,
	`{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}`:                                                                                                                                                   Mistral,
	`{{ bos_token }}{% for message in messages %}{% if message['role'] == 'assistant' %}{% set role = 'model' %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}`:                                                                                          Gemma,
	`{% for message in messages %}{% if message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + eos_token }}{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\n' + message['content'] + eos_token }}{% endif %}{% if loop.last and add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}{% endfor %}`:                                                                Zephyr,
	`{{ messages[0]['content'] }}\n\n{% for m in messages %}{% if m['role'] == 'user' %}### Instruction:\n{{ m['content'] }}\n\n### Response:\n{% else %}{{ m['content'] }}\n\n{% endif %}{% endfor %}`:                                                                                                                                                                                     Alpaca,
}

func TestDetect(t *testing.T) {
	for src, want := range jinjaSources {
		t.Run(want.String(), func(t *testing.T) {
			got, err := Detect(src)
			if err != nil || got != want {
				t.Errorf("Detect = %v, %v; want %v", got, err, want)
			}
		})
	}
	for _, src := range []string{
		"",
		`{% for message in messages %}{{ message['content'] }}{% endfor %}`,
		`{{ '<|user|>\n' + message['content'] + '<|end|>\n' }}{{ '<|assistant|>\n' }}`, // Phi-3, not Zephyr
	} {
		_, err := Detect(src)
		if !errors.Is(err, ErrUnknownTemplate) || !strings.Contains(err.Error(), "--template") {
			t.Errorf("Detect(%.30q): %v, want ErrUnknownTemplate mentioning --template", src, err)
		}
	}
}

func TestDetectConfig(t *testing.T) {
	cfg := `{"bos_token":"<s>","chat_template":[{"name":"tool_use","template":"x"},{"name":"default","template":"<|im_start|><|im_end|>"}]}`
	got, err := DetectConfig([]byte(cfg), "tokenizer_config.json")
	if err != nil || got != ChatML {
		t.Errorf("list form: %v, %v", got, err)
	}
	got, err = DetectConfig([]byte(`{"chat_template":"<start_of_turn><end_of_turn>"}`), "tc.json")
	if err != nil || got != Gemma {
		t.Errorf("string form: %v, %v", got, err)
	}
	_, err = DetectConfig([]byte(`{"bos_token":"<s>"}`), "tc.json")
	if err == nil || !strings.Contains(err.Error(), "tc.json") || !strings.Contains(err.Error(), "--template") {
		t.Errorf("no template: %v", err)
	}
}

func TestText(t *testing.T) {
	got, err := ChatML.Text([]Message{{RoleUser, "Hi"}}, true)
	want := "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
	if err != nil || got != want {
		t.Errorf("Text = %q, %v; want %q", got, err, want)
	}
}

func TestJinjaDetectsItself(t *testing.T) {
	for _, tm := range []Template{ChatML} {
		src, err := tm.Jinja()
		if err != nil {
			t.Fatal(err)
		}
		got, err := Detect(src)
		if err != nil || got != tm {
			t.Errorf("Detect(%s.Jinja()) = %v, %v", tm, got, err)
		}
	}
}
