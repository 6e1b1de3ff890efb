package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type golden struct {
	Text string  `json:"text"`
	IDs  []int32 `json:"ids"`
}

func readGoldens(t *testing.T, name string) []golden {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("%v (regenerate with `make golden`)", err)
	}
	var g []golden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return g
}

func readTexts(t testing.TB) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "texts.json"))
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	if err := json.Unmarshal(data, &texts); err != nil {
		t.Fatal(err)
	}
	return texts
}

var gpt2Once = sync.OnceValues(func() (*Tokenizer, error) {
	return LoadGPT2(filepath.Join("testdata", "gpt2", "encoder.json"), filepath.Join("testdata", "gpt2", "vocab.bpe"))
})

func loadGPT2(t testing.TB) *Tokenizer {
	t.Helper()
	tok, err := gpt2Once()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestGPT2Golden matches js-tiktoken's gpt2 ids (cross-checked against
// gpt-3-encoder when written) on every test text.
func TestGPT2Golden(t *testing.T) {
	tok := loadGPT2(t)
	if got := tok.VocabSize(); got != 50257 {
		t.Errorf("VocabSize = %d, want 50257", got)
	}
	if tok.EOS() != 50256 || tok.BOS() != 50256 || tok.PAD() != -1 {
		t.Errorf("BOS, EOS, PAD = %d, %d, %d; want 50256, 50256, -1", tok.BOS(), tok.EOS(), tok.PAD())
	}
	for i, g := range readGoldens(t, "gpt2_ids.json") {
		got := tok.Encode(g.Text, false)
		if diff := cmp.Diff(g.IDs, got); diff != "" {
			t.Errorf("text %d %q: ids (-want +got):\n%s", i, g.Text, diff)
		}
		if back := tok.Decode(got); back != g.Text {
			t.Errorf("text %d: Decode = %q, want %q", i, back, g.Text)
		}
	}
}

// TestSplitGolden matches JavaScript's regexp engine on the three split
// patterns.
func TestSplitGolden(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "splits.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string][][]string
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	texts := readTexts(t)
	for name, p := range map[string]splitPattern{"gpt2": splitGPT2, "llama3": splitLlama3, "qwen2": splitQwen2} {
		for i, text := range texts {
			var got []string
			start := 0
			for _, end := range p.appendSplits(nil, text) {
				got = append(got, text[start:end])
				start = end
			}
			w := want[name][i]
			if len(w) == 0 {
				w = nil
			}
			if diff := cmp.Diff(w, got); diff != "" {
				t.Errorf("%s, text %d %q (-want +got):\n%s", name, i, text, diff)
			}
		}
	}
}

// TestSplitPatternGolden loads tokenizer.json documents built the way Llama 3
// and Qwen2 files are (a Split pre-tokenizer with the model's pattern, then
// ByteLevel without its own regex, ignore_merges) over GPT-2's vocabulary,
// and matches js-tiktoken run with the same ranks and pattern.
func TestSplitPatternGolden(t *testing.T) {
	gpt2 := loadGPT2(t)
	for _, tc := range []struct{ name, pattern string }{{"llama3", patLlama3}, {"qwen2", patQwen2}} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := FromJSON(splitDoc(t, gpt2, tc.pattern))
			if err != nil {
				t.Fatal(err)
			}
			for i, g := range readGoldens(t, tc.name+"_ids.json") {
				got := tok.Encode(g.Text, false)
				if diff := cmp.Diff(g.IDs, got); diff != "" {
					t.Errorf("text %d %q: ids (-want +got):\n%s", i, g.Text, diff)
				}
				if back := tok.Decode(got); back != g.Text {
					t.Errorf("text %d: Decode = %q, want %q", i, back, g.Text)
				}
			}
		})
	}
}

// splitDoc rewrites GPT-2's tokenizer.json with a Llama 3 style pipeline.
func splitDoc(t *testing.T, base *Tokenizer, pattern string) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(base.JSON(), &doc); err != nil {
		t.Fatal(err)
	}
	doc["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{
		map[string]any{"type": "Split", "pattern": map[string]any{"Regex": pattern}, "behavior": "Isolated", "invert": false},
		map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
	}}
	doc["model"].(map[string]any)["ignore_merges"] = true
	js, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// patO200k is gpt-oss's (o200k) split pattern, which has no hand-written
// splitter: it runs on the backtracking engine.
const patO200k = `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// TestRegexSplitGolden runs the Split patterns of Llama 3 and gpt-oss on
// the general regular-expression path (not the hand-written splitters) and
// matches JavaScript's engine, which has the lookahead.
func TestRegexSplitGolden(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "splits.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string][][]string
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	texts := readTexts(t)
	for name, src := range map[string]string{"llama3": patLlama3, "qwen2": patQwen2, "gpt2": patGPT2, "o200k": patO200k} {
		re, err := compilePattern("Split", src)
		if err != nil {
			t.Fatal(err)
		}
		if re.bt == nil {
			t.Fatalf("%s: compiled for Go's regexp, which lacks the lookahead", name)
		}
		split := &preSplit{re: re, beh: behIsolated}
		for i, text := range texts {
			var got []string
			for _, p := range split.apply(nil, piece{text, true}) {
				got = append(got, p.s)
			}
			w := want[name][i]
			if len(w) == 0 {
				w = nil
			}
			if diff := cmp.Diff(w, got); diff != "" {
				t.Errorf("%s, text %d %q (-want +got):\n%s", name, i, text, diff)
			}
		}
	}
}

// BenchmarkSplit compares the hand-written Llama 3 splitter with the same
// pattern on the backtracking engine, over the test texts.
func BenchmarkSplit(b *testing.B) {
	texts := readTexts(b)
	total := 0
	for _, s := range texts {
		total += len(s)
	}
	re, err := compilePattern("Split", patLlama3)
	if err != nil {
		b.Fatal(err)
	}
	for _, x := range []struct {
		name string
		p    *preSplit
	}{{"hand", &preSplit{known: splitLlama3, beh: behIsolated}}, {"regexp2", &preSplit{re: re, beh: behIsolated}}} {
		b.Run(x.name, func(b *testing.B) {
			b.SetBytes(int64(total))
			var dst []piece
			for range b.N {
				for _, s := range texts {
					dst = x.p.apply(dst[:0], piece{s, true})
				}
			}
		})
	}
}
