package chat_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"llmlab/core/chat"
	"llmlab/core/data"
	"llmlab/core/tokenizer"
)

// modelDir holds the real models' tokenizer files that the tokenizer
// package's tests use too (tools/golden/tokenizer/models.mjs writes them).
func modelDir(name string) string {
	return filepath.Join("..", "tokenizer", "testdata", "models", name)
}

type jinjaGolden struct {
	Model               string         `json:"model"`
	Messages            []chat.Message `json:"messages"`
	AddGenerationPrompt bool           `json:"add_generation_prompt"`
	Text                string         `json:"text"`
	IDs                 []int32        `json:"ids"`
}

func readJinjaGoldens(t *testing.T) []jinjaGolden {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "jinja_golden.json"))
	if err != nil {
		t.Fatalf("%v (regenerate with `make golden`)", err)
	}
	var gs []jinjaGolden
	if err := json.Unmarshal(data, &gs); err != nil {
		t.Fatal(err)
	}
	return gs
}

func loadTokenizer(t testing.TB, name string) *tokenizer.Tokenizer {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(modelDir(name), "tokenizer.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.FromJSON(doc)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestModelTemplatesRender renders the real chat templates of Llama 3.1,
// Qwen3, Gemma 3 and DeepSeek V3 and matches @huggingface/jinja's text.
func TestModelTemplatesRender(t *testing.T) {
	models := map[string]*chat.Model{}
	for i, g := range readJinjaGoldens(t) {
		m := models[g.Model]
		if m == nil {
			var err error
			if m, err = chat.Load(modelDir(g.Model)); err != nil {
				t.Fatal(err)
			}
			models[g.Model] = m
		}
		got, err := m.Text(g.Messages, g.AddGenerationPrompt)
		if err != nil {
			t.Fatalf("%s case %d: %v", g.Model, i, err)
		}
		if diff := cmp.Diff(g.Text, got); diff != "" {
			t.Errorf("%s case %d (gen %v): text (-want +got):\n%s", g.Model, i, g.AddGenerationPrompt, diff)
		}
		segs, err := m.Render(g.Messages, g.AddGenerationPrompt)
		if err != nil {
			t.Fatalf("%s case %d: Render: %v", g.Model, i, err)
		}
		var joined strings.Builder
		var trained []string
		for _, s := range segs {
			joined.WriteString(s.Text)
			if s.Train {
				trained = append(trained, s.Text)
			}
		}
		if joined.String() != got {
			t.Errorf("%s case %d: segments do not join to the text", g.Model, i)
		}
		var answers []chat.Message
		for _, msg := range g.Messages {
			if msg.Role == chat.RoleAssistant {
				answers = append(answers, msg)
			}
		}
		if len(trained) != len(answers) {
			t.Fatalf("%s case %d: %d trained segments for %d assistant messages: %q", g.Model, i, len(trained), len(answers), trained)
		}
		for k, a := range answers {
			if !strings.HasPrefix(trained[k], a.Content) && !strings.HasPrefix(trained[k], strings.TrimSpace(a.Content)) {
				t.Errorf("%s case %d: trained segment %q does not start with the answer %q", g.Model, i, trained[k], a.Content)
			}
			if strings.TrimSpace(trained[k]) == strings.TrimSpace(a.Content) {
				t.Errorf("%s case %d: trained segment %q lacks the end-of-turn marker", g.Model, i, trained[k])
			}
		}
	}
}

// TestModelTemplatesTokenize encodes the rendered texts with the models'
// own tokenizers (special tokens parsed, none added) and matches
// transformers.js's ids.
func TestModelTemplatesTokenize(t *testing.T) {
	if testing.Short() {
		t.Skip("loads four full-size tokenizers (-short)")
	}
	toks := map[string]*tokenizer.Tokenizer{}
	models := map[string]*chat.Model{}
	for i, g := range readJinjaGoldens(t) {
		tok := toks[g.Model]
		if tok == nil {
			tok = loadTokenizer(t, g.Model)
			toks[g.Model] = tok
		}
		if diff := cmp.Diff(g.IDs, tok.Encode(g.Text, false)); diff != "" {
			t.Errorf("%s case %d: ids (-want +got):\n%s", g.Model, i, diff)
		}
		// The training view: the same ids, and the trained runs decode to
		// the trained segments.
		m := models[g.Model]
		if m == nil {
			var err error
			if m, err = chat.Load(modelDir(g.Model)); err != nil {
				t.Fatal(err)
			}
			models[g.Model] = m
		}
		segs, err := m.Render(g.Messages, g.AddGenerationPrompt)
		if err != nil {
			t.Fatal(err)
		}
		ids, train := data.EncodeJoined(tok, segs)
		if diff := cmp.Diff(g.IDs, ids); diff != "" {
			t.Errorf("%s case %d: EncodeJoined ids (-want +got):\n%s", g.Model, i, diff)
		}
		var wantRuns, gotRuns []string
		for _, s := range segs {
			if s.Train {
				wantRuns = append(wantRuns, strings.TrimSpace(s.Text))
			}
		}
		for k := 0; k < len(ids); {
			if !train[k] {
				k++
				continue
			}
			j := k
			for j < len(ids) && train[j] {
				j++
			}
			gotRuns = append(gotRuns, strings.TrimSpace(tok.Decode(ids[k:j])))
			k = j
		}
		if diff := cmp.Diff(wantRuns, gotRuns); diff != "" {
			t.Errorf("%s case %d: trained runs (-want +got):\n%s", g.Model, i, diff)
		}
	}
}

// TestModelRenderSegments pins the trained spans on real templates: each
// answer with its end-of-turn marker, never the headers, the generation
// prompt or the newline after the marker.
func TestModelRenderSegments(t *testing.T) {
	conv := []chat.Message{
		{Role: chat.RoleSystem, Content: "Be brief."},
		{Role: chat.RoleUser, Content: "2+2?"},
		{Role: chat.RoleAssistant, Content: "4"},
		{Role: chat.RoleUser, Content: "3+3?"},
		{Role: chat.RoleAssistant, Content: " 6 "},
	}
	for _, tc := range []struct {
		model string
		want  []chat.Segment
	}{
		{"llama3_1", []chat.Segment{
			{Text: "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
			{Text: "4<|eot_id|>", Train: true},
			{Text: "<|start_header_id|>user<|end_header_id|>\n\n3+3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
			{Text: "6<|eot_id|>", Train: true},
		}},
		{"qwen3", []chat.Segment{
			{Text: "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"},
			{Text: "4<|im_end|>", Train: true},
			{Text: "\n<|im_start|>user\n3+3?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"},
			{Text: " 6 <|im_end|>", Train: true},
			{Text: "\n"},
		}},
		{"gemma3", []chat.Segment{
			{Text: "<bos><start_of_turn>user\nBe brief.\n\n2+2?<end_of_turn>\n<start_of_turn>model\n"},
			{Text: "4<end_of_turn>", Train: true},
			{Text: "\n<start_of_turn>user\n3+3?<end_of_turn>\n<start_of_turn>model\n"},
			{Text: "6<end_of_turn>", Train: true},
			{Text: "\n"},
		}},
		{"deepseek_v3", []chat.Segment{
			{Text: "<｜begin▁of▁sentence｜>Be brief.<｜User｜>2+2?<｜Assistant｜>"},
			{Text: "4<｜end▁of▁sentence｜>", Train: true},
			{Text: "<｜User｜>3+3?<｜Assistant｜>"},
			{Text: " 6 <｜end▁of▁sentence｜>", Train: true},
		}},
	} {
		t.Run(tc.model, func(t *testing.T) {
			m, err := chat.Load(modelDir(tc.model))
			if err != nil {
				t.Fatal(err)
			}
			got, err := m.Render(conv, false)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("segments (-want +got):\n%s", diff)
			}
		})
	}
}

func TestModelTemplateErrors(t *testing.T) {
	m, err := chat.Load(modelDir("gemma3"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Text([]chat.Message{{Role: chat.RoleUser, Content: "a"}, {Role: chat.RoleUser, Content: "b"}}, false)
	if err == nil || !strings.Contains(err.Error(), "must alternate") {
		t.Errorf("two user turns through Gemma's template: err = %v, want its raise_exception message", err)
	}
	if _, err := chat.FromConfig([]byte(`{"bos_token": "<s>"}`), "tokenizer_config.json", ""); !errors.Is(err, chat.ErrNoTemplate) {
		t.Errorf("no chat_template: err = %v, want ErrNoTemplate", err)
	}
	if _, err := chat.FromConfig([]byte(`{"chat_template": 3}`), "tokenizer_config.json", ""); err == nil || !strings.Contains(err.Error(), "tokenizer_config.json") {
		t.Errorf("chat_template 3: err = %v, want one naming the file", err)
	}
	if _, err := chat.Compile("{% for %}", chat.Specials{}); err == nil {
		t.Error("Compile accepted a broken template")
	}
}

func TestModelFromConfig(t *testing.T) {
	cfg := []byte(`{"bos_token": {"content": "<s>", "__type": "AddedToken"}, "eos_token": "</s>",
		"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content | trim }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}"}]}`)
	m, err := chat.FromConfig(cfg, "tokenizer_config.json", "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Text([]chat.Message{{Role: "user", Content: " hi "}}, true)
	if err != nil {
		t.Fatal(err)
	}
	if want := "<s>[user]hi</s>[assistant]"; got != want {
		t.Errorf("Text = %q, want %q", got, want)
	}
	// chat_template.jinja takes the place of the config's template.
	m, err = chat.FromConfig(cfg, "tokenizer_config.json", "{{ messages[0].content | tojson }}")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Text([]chat.Message{{Role: "user", Content: `<a & "b">`}}, false); got != `"<a & \"b\">"` {
		t.Errorf("tojson = %s, want the string unescaped for HTML", got)
	}
}

// TestJinjaFeatures renders small templates that use the Jinja features
// chat templates rely on and matches @huggingface/jinja.
func TestJinjaFeatures(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "jinja_features.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Name     string         `json:"name"`
		Template string         `json:"template"`
		Messages []chat.Message `json:"messages"`
		Text     *string        `json:"text"`
		Error    *string        `json:"error"`
	}
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			m, err := chat.Compile(tc.Template, chat.Specials{BOS: "<s>", EOS: "</s>"})
			if err != nil {
				t.Fatal(err)
			}
			got, err := m.Text(tc.Messages, false)
			if tc.Error != nil {
				if err == nil || !strings.Contains(err.Error(), *tc.Error) {
					t.Errorf("err = %v, want one containing %q", err, *tc.Error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(*tc.Text, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// BenchmarkEncodeJoined compares the training view of a conversation
// (render, find the spans, encode with the mask) with plain rendering and
// encoding, on the longest test conversation of each model.
func BenchmarkEncodeJoined(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join("testdata", "jinja_golden.json"))
	if err != nil {
		b.Fatal(err)
	}
	var gs []jinjaGolden
	if err := json.Unmarshal(raw, &gs); err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"llama3_1", "qwen3", "gemma3", "deepseek_v3"} {
		var conv []chat.Message
		for _, g := range gs {
			if g.Model == name && len(g.Messages) > len(conv) {
				conv = g.Messages
			}
		}
		m, err := chat.Load(modelDir(name))
		if err != nil {
			b.Fatal(err)
		}
		tok := loadTokenizer(b, name)
		b.Run(name+"/text+encode", func(b *testing.B) {
			for range b.N {
				s, _ := m.Text(conv, false)
				tok.Encode(s, false)
			}
		})
		b.Run(name+"/render+joined", func(b *testing.B) {
			for range b.N {
				segs, _ := m.Render(conv, false)
				data.EncodeJoined(tok, segs)
			}
		})
	}
}
