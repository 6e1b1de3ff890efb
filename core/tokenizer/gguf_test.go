package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestGGUFVocabBPE: GPT-2's vocabulary as a GGUF file carries it (tokens,
// types, merges) with each pre-tokenizer name gives the ids of the
// reference tokenizers (js-tiktoken with the model's split pattern).
func TestGGUFVocabBPE(t *testing.T) {
	gpt2 := loadGPT2(t)
	toks, special := gpt2.Vocabulary()
	types := make([]int32, len(toks))
	for i, s := range special {
		types[i] = 1
		if s {
			types[i] = 3
		}
	}
	for _, tc := range []struct{ pre, golden string }{
		{"gpt-2", "gpt2_ids.json"}, {"llama-bpe", "llama3_ids.json"}, {"qwen2", "qwen2_ids.json"},
	} {
		t.Run(tc.pre, func(t *testing.T) {
			tok, err := FromGGUFVocab(GGUFVocab{Model: "gpt2", Pre: tc.pre, Tokens: toks, Types: types, Merges: gpt2.MergeList(),
				BOS: 50256, EOS: 50256, PAD: -1, ChatTemplate: "{{ messages }}"})
			if err != nil {
				t.Fatal(err)
			}
			for i, g := range readGoldens(t, tc.golden) {
				if diff := cmp.Diff(g.IDs, tok.Encode(g.Text, false)); diff != "" {
					t.Errorf("text %d %q: ids (-want +got):\n%s", i, g.Text, diff)
				}
			}
			if tok.EOS() != 50256 || tok.ChatTemplate() != "{{ messages }}" {
				t.Errorf("EOS %d, template %q", tok.EOS(), tok.ChatTemplate())
			}
		})
	}
	if _, err := FromGGUFVocab(GGUFVocab{Model: "gpt2", Pre: "mystery", Tokens: toks}); err == nil {
		t.Error("an unknown pre-tokenizer was accepted")
	}
	if _, err := FromGGUFVocab(GGUFVocab{Model: "rwkv", Tokens: toks}); err == nil {
		t.Error("an unknown tokenizer model was accepted")
	}
}

// TestGGUFVocabSentencePiece: a SentencePiece model's pieces, scores and
// types as GGUF keeps them (tokenizer.ggml.model "llama") give
// sentencepiece's own ids.
func TestGGUFVocabSentencePiece(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "sp", "llama.model"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := parseSentencePiece(data)
	if err != nil {
		t.Fatal(err)
	}
	v := GGUFVocab{Model: "llama", BOS: m.bos, EOS: m.eos, PAD: m.pad, AddBOS: true, AddSpacePrefix: m.dummyPrefix}
	for _, p := range m.pieces {
		v.Tokens = append(v.Tokens, p.piece)
		v.Scores = append(v.Scores, p.score)
		v.Types = append(v.Types, int32(p.typ))
	}
	tok, err := FromGGUFVocab(v)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join("testdata", "sp", "llama_ids.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Text string  `json:"text"`
		IDs  []int32 `json:"ids"`
	}
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		if diff := cmp.Diff(c.IDs, tok.Encode(c.Text, false)); diff != "" {
			t.Errorf("text %d %q: ids (-want +got):\n%s", i, c.Text, diff)
		}
	}
	if tok.BOS() != 1 || tok.EOS() != 2 {
		t.Errorf("BOS %d EOS %d", tok.BOS(), tok.EOS())
	}
}
