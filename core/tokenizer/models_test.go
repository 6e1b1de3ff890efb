package tokenizer

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The real tokenizers of four model families, as their packages ship them
// (gzipped in testdata/models), with transformers.js's ids for every test
// text (tools/golden/tokenizer/models.mjs).
var modelNames = []string{"llama3_1", "qwen3", "gemma3", "deepseek_v3"}

var modelCache sync.Map // name -> func() (*Tokenizer, error)

// loadTestModel loads testdata/models/NAME (tokenizer.json.gz and
// tokenizer_config.json) once per test binary.
func loadTestModel(t testing.TB, name string) *Tokenizer {
	t.Helper()
	f, _ := modelCache.LoadOrStore(name, sync.OnceValues(func() (*Tokenizer, error) {
		return loadGzipDir(filepath.Join("testdata", "models", name))
	}))
	tok, err := f.(func() (*Tokenizer, error))()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// loadGzipDir is Load for a folder whose tokenizer.json is gzipped.
func loadGzipDir(dir string) (*Tokenizer, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "tokenizer.json.gz"))
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	tok, err := FromJSON(data)
	if err != nil {
		return nil, err
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil {
		return nil, err
	}
	return tok, tok.ApplyConfig(cfg)
}

func TestModelGoldens(t *testing.T) {
	if testing.Short() {
		t.Skip("loads four full-size tokenizers (-short)")
	}
	data, err := os.ReadFile(filepath.Join("testdata", "models_ids.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string][]golden
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	for _, name := range modelNames {
		t.Run(name, func(t *testing.T) {
			tok := loadTestModel(t, name)
			bad := 0
			for i, g := range want[name] {
				got := tok.Encode(g.Text, false)
				if diff := cmp.Diff(g.IDs, got); diff != "" {
					t.Errorf("text %d %q: ids (-want +got):\n%s", i, g.Text, diff)
					if bad++; bad > 3 {
						t.Fatal("too many differences")
					}
				}
			}
		})
	}
}

// TestOtherModelGoldens matches HF tokenizers (the Rust library) on the
// WordPiece (BERT uncased), WordLevel and Unigram (T5 style, with a
// SentencePiece precompiled charsmap) files of testdata.
func TestOtherModelGoldens(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "other_ids.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string][]struct {
		golden
		Decoded string `json:"decoded"`
	}
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"wordpiece", "wordlevel", "unigram"} {
		t.Run(name, func(t *testing.T) {
			tok, err := loadTokenizerFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			bad := 0
			for i, g := range want[name] {
				got := tok.Encode(g.Text, false)
				if diff := cmp.Diff(g.IDs, got); diff != "" {
					t.Errorf("text %d %q: ids (-want +got):\n%s", i, g.Text, diff)
					if bad++; bad > 5 {
						t.Fatal("too many differences")
					}
				}
				if back := tok.Decode(g.IDs); back != g.Decoded {
					t.Errorf("text %d: Decode = %q, want %q", i, back, g.Decoded)
					if bad++; bad > 5 {
						t.Fatal("too many differences")
					}
				}
			}
		})
	}
}

// loadTokenizerFile reads dir/tokenizer.json, or dir/tokenizer.json.gz.
func loadTokenizerFile(dir string) (*Tokenizer, error) {
	data, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		raw, err2 := os.ReadFile(filepath.Join(dir, "tokenizer.json.gz"))
		if err2 != nil {
			return nil, err
		}
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		if data, err = io.ReadAll(zr); err != nil {
			return nil, err
		}
	}
	return FromJSON(data)
}

func TestWordModelsSmall(t *testing.T) {
	for _, tc := range []struct {
		name, doc, text string
		want            []int32
	}{
		{"wordpiece longest first", `{"model":{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##","max_input_chars_per_word":9,
			"vocab":{"[UNK]":0,"un":1,"##aff":2,"##able":3,"u":4,"##n":5}},"pre_tokenizer":{"type":"WhitespaceSplit"}}`,
			"unaffable unx toolongword", []int32{1, 2, 3, 0, 0}},
		{"wordlevel", `{"model":{"type":"WordLevel","unk_token":"<unk>","vocab":{"<unk>":0,"hi":1,"!":2}},
			"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"WhitespaceSplit"},{"type":"Punctuation"}]}}`,
			"hi! yo hi", []int32{1, 2, 0, 1}},
		{"unigram best path, fused unknowns", `{"model":{"type":"Unigram","unk_id":0,
			"vocab":[["<unk>",0],["a",-1],["b",-1],["ab",-1.5],["abc",-4],["c",-2]]}}`,
			"abcxyab", []int32{3, 5, 0, 3}},
		{"unigram ties go to the earlier start", `{"model":{"type":"Unigram","unk_id":0,
			"vocab":[["<unk>",0],["a",-1],["b",-1],["ab",-2]]}}`,
			"ab", []int32{3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := FromJSON([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, tok.Encode(tc.text, false)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// BenchmarkModelEncode encodes the test texts with the real tokenizers:
// Llama 3.1 splits with the hand-written splitter, DeepSeek V3 with three
// Split patterns on the regular-expression engines, Gemma 3 without a
// split, T5-style Unigram and BERT WordPiece.
func BenchmarkModelEncode(b *testing.B) {
	texts := readTexts(b)
	total := 0
	for _, s := range texts {
		total += len(s)
	}
	for _, name := range []string{"llama3_1", "qwen3", "gemma3", "deepseek_v3", "unigram", "wordpiece"} {
		b.Run(name, func(b *testing.B) {
			var tok *Tokenizer
			if name == "unigram" || name == "wordpiece" {
				var err error
				if tok, err = loadTokenizerFile(filepath.Join("testdata", name)); err != nil {
					b.Fatal(err)
				}
			} else {
				tok = loadTestModel(b, name)
			}
			b.SetBytes(int64(total))
			b.ResetTimer()
			for range b.N {
				for _, s := range texts {
					tok.Encode(s, false)
				}
			}
		})
	}
}
