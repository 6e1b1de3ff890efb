package data_test

import (
	"bytes"
	"compress/gzip"
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

// realModel loads the chat template and tokenizer of a real model whose
// files the tokenizer package's tests keep (Llama 3.1, Qwen3).
func realModel(t *testing.T, name string) (*chat.Model, *tokenizer.Tokenizer) {
	t.Helper()
	dir := filepath.Join("..", "tokenizer", "testdata", "models", name)
	m, err := chat.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "tokenizer.json.gz"))
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
	if err := tok.ApplyConfig(mustRead(t, filepath.Join(dir, "tokenizer_config.json"))); err != nil {
		t.Fatal(err)
	}
	return m, tok
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readDataset(t *testing.T, jsonl string) *data.Dataset {
	t.Helper()
	ds, err := data.ReadJSONL(strings.NewReader(jsonl), "test.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// TestPreferenceExamplesMatchSFT: through a model's own template, a DPO
// pair's chosen and rejected examples and a KTO example are, token for
// token and label for label, the SFT example of the same conversation;
// their prompt part starts with the generation prompt that EncodeChatPrompt
// gives (what the model is prompted with), and the answers' labels cover
// the answer and the template's end-of-turn token.
func TestPreferenceExamplesMatchSFT(t *testing.T) {
	if testing.Short() {
		t.Skip("loads full-size tokenizers (-short)")
	}
	const (
		sys    = `{"role":"system","content":"Answer in one word."}`
		user   = `{"role":"user","content":"What colour is the sky?"}`
		chosen = `{"role":"assistant","content":"Blue."}`
		reject = `{"role":"assistant","content":" Green, mostly. "}`
	)
	sftFile := `{"messages":[` + sys + `,` + user + `,` + chosen + `]}` + "\n" + `{"messages":[` + sys + `,` + user + `,` + reject + `]}` + "\n"
	prefFile := `{"prompt":[` + sys + `,` + user + `],"chosen":[` + chosen + `],"rejected":[` + reject + `]}` + "\n"
	ktoFile := `{"prompt":[` + sys + `,` + user + `],"completion":[` + reject + `],"label":false}` + "\n"
	prompt := []chat.Message{{Role: chat.RoleSystem, Content: "Answer in one word."}, {Role: chat.RoleUser, Content: "What colour is the sky?"}}
	for _, tc := range []struct {
		model, end string
	}{{"llama3_1", "<|eot_id|>"}, {"qwen3", "<|im_end|>"}} {
		t.Run(tc.model, func(t *testing.T) {
			m, tok := realModel(t, tc.model)
			o := data.BuildOpts{Ctx: 512}.With(chat.Format{Own: m})
			sft, _, err := data.BuildSFT(tok, readDataset(t, sftFile), o)
			if err != nil {
				t.Fatal(err)
			}
			pairs, _, err := data.BuildPairs(tok, readDataset(t, prefFile), o)
			if err != nil {
				t.Fatal(err)
			}
			kto, _, err := data.BuildKTO(tok, readDataset(t, ktoFile), o)
			if err != nil {
				t.Fatal(err)
			}
			if len(sft) != 2 || len(pairs) != 1 || len(kto) != 1 {
				t.Fatalf("%d SFT examples, %d pairs, %d KTO examples; want 2, 1, 1", len(sft), len(pairs), len(kto))
			}
			for _, c := range []struct {
				name      string
				got, want data.Example
			}{{"chosen", pairs[0].Chosen, sft[0]}, {"rejected", pairs[0].Rejected, sft[1]}, {"kto", kto[0].Example, sft[1]}} {
				if diff := cmp.Diff(c.want, c.got); diff != "" {
					t.Errorf("%s: example (-sft +got):\n%s", c.name, diff)
				}
			}
			gen, err := data.EncodeChatPrompt(tok, chat.Format{Own: m}, prompt)
			if err != nil {
				t.Fatal(err)
			}
			endID, ok := tok.TokenID(tc.end)
			if !ok {
				t.Fatalf("no token %s", tc.end)
			}
			for k, e := range []data.Example{pairs[0].Chosen, pairs[0].Rejected} {
				first := 0
				for first < len(e.Labels) && e.Labels[first] == data.IgnoreIndex {
					first++
				}
				if len(gen) > first || !cmp.Equal(gen, e.IDs[:len(gen)]) {
					t.Errorf("answer %d: the generation prompt %v is not the start of the prompt part %v", k, gen, e.IDs[:first])
				}
				var trained []int32
				for _, l := range e.Labels {
					if l != data.IgnoreIndex {
						trained = append(trained, l)
					}
				}
				if len(trained) == 0 || trained[len(trained)-1] != endID {
					t.Errorf("answer %d: trained tokens %q do not end with %s", k, tok.Decode(trained), tc.end)
				}
				want := []string{"Blue.", "Green, mostly."}[k]
				if got := strings.TrimSpace(strings.TrimSuffix(tok.Decode(trained), tc.end)); got != want {
					t.Errorf("answer %d: trained text %q, want %q and the end of turn", k, got, want)
				}
			}
		})
	}
}
