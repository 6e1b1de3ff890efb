package chat_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"llmlab/core/chat"
)

// mapVocab is a tokenizer's special tokens: text <-> id (ids as the real
// models' tokenizer.json files number them).
type mapVocab struct {
	ids map[string]int32
	eos int32
}

func (v mapVocab) EOS() int32 { return v.eos }
func (v mapVocab) TokenID(s string) (int32, bool) {
	id, ok := v.ids[s]
	return id, ok
}
func (v mapVocab) Decode(ids []int32) string {
	var b strings.Builder
	for _, id := range ids {
		for s, x := range v.ids {
			if x == id {
				b.WriteString(s)
			}
		}
	}
	return b.String()
}

// TestFormatStops: a model's own template stops at its end-of-turn token
// first (the marker its template writes after an answer), then its
// eos_token, generation_config.json's eos_token_id and the tokenizer's
// EOS; a built-in template keeps the tokenizer's EOS and its stop strings.
func TestFormatStops(t *testing.T) {
	llama := mapVocab{ids: map[string]int32{"<|begin_of_text|>": 128000, "<|end_of_text|>": 128001, "<|eom_id|>": 128008, "<|eot_id|>": 128009}, eos: 128009}
	qwen := mapVocab{ids: map[string]int32{"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}, eos: 151645}
	gemma := mapVocab{ids: map[string]int32{"<eos>": 1, "<bos>": 2, "<start_of_turn>": 105, "<end_of_turn>": 106}, eos: 1}
	deepseek := mapVocab{ids: map[string]int32{"<｜begin▁of▁sentence｜>": 0, "<｜end▁of▁sentence｜>": 1}, eos: 1}
	for _, tc := range []struct {
		model   string
		gen     string // generation_config.json, "" for none
		v       mapVocab
		ids     []int32
		texts   []string
		wantErr string
	}{
		{model: "llama3_1", gen: `{"bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]}`, v: llama,
			ids: []int32{128009, 128001, 128008}, texts: []string{"<|eot_id|>", "<|end_of_text|>", "<|eom_id|>"}},
		{model: "llama3_1", v: llama, ids: []int32{128009}, texts: []string{"<|eot_id|>"}},
		{model: "qwen3", gen: `{"eos_token_id": [151645, 151643]}`, v: qwen,
			ids: []int32{151645, 151643}, texts: []string{"<|im_end|>", "<|endoftext|>"}},
		// Gemma's tokenizer EOS is <eos>; its turns end at <end_of_turn>.
		{model: "gemma3", gen: `{"eos_token_id": 1}`, v: gemma, ids: []int32{106, 1}, texts: []string{"<end_of_turn>", "<eos>"}},
		{model: "deepseek_v3", v: deepseek, ids: []int32{1}, texts: []string{"<｜end▁of▁sentence｜>"}},
		{model: "qwen3", gen: `{"eos_token_id": "<|im_end|>"}`, v: qwen, wantErr: "generation_config.json: eos_token_id is"},
	} {
		t.Run(tc.model, func(t *testing.T) {
			dir := t.TempDir()
			cfg, err := os.ReadFile(filepath.Join(modelDir(tc.model), "tokenizer_config.json"))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), cfg, 0o644)
			if tc.gen != "" {
				os.WriteFile(filepath.Join(dir, "generation_config.json"), []byte(tc.gen), 0o644)
			}
			m, err := chat.Load(dir)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Load: %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ids, texts := chat.Format{Own: m}.Stops(tc.v)
			if diff := cmp.Diff(tc.ids, ids); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.texts, texts); diff != "" {
				t.Errorf("texts (-want +got):\n%s", diff)
			}
		})
	}
	ids, texts := chat.Format{Builtin: chat.ChatML}.Stops(qwen)
	if diff := cmp.Diff([]int32{151645}, ids); diff != "" {
		t.Errorf("chatml ids (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"<|im_end|>"}, texts); diff != "" {
		t.Errorf("chatml texts (-want +got):\n%s", diff)
	}
}

// TestFormatRendersLikeItsSource: a Format renders exactly what its model
// template or built-in template does.
func TestFormatRendersLikeItsSource(t *testing.T) {
	msgs := []chat.Message{{Role: chat.RoleSystem, Content: "Be brief."}, {Role: chat.RoleUser, Content: "Hi"}}
	m, err := chat.Load(modelDir("qwen3"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		f    chat.Format
		name string
		want func(bool) (string, error)
	}{
		{chat.Format{Own: m}, "model", func(g bool) (string, error) { return m.Text(msgs, g) }},
		{chat.Format{Builtin: chat.Llama3}, "llama3", func(g bool) (string, error) { return chat.Llama3.Text(msgs, g) }},
	} {
		if tc.f.String() != tc.name {
			t.Errorf("String() = %q, want %q", tc.f.String(), tc.name)
		}
		for _, gen := range []bool{false, true} {
			want, _ := tc.want(gen)
			got, err := tc.f.Text(msgs, gen)
			if err != nil || got != want {
				t.Errorf("%s gen %v: %q, %v; want %q", tc.name, gen, got, err, want)
			}
		}
	}
}
