package tokenizer

import (
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestSplitGPT2(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"Hello world", []string{"Hello", " world"}},
		{"I'm  ok\n", []string{"I", "'m", " ", " ok", "\n"}},
		{"a\n\nb", []string{"a", "\n", "\n", "b"}},
		{"x   ", []string{"x", "   "}},
		{"it's 42.5!!", []string{"it", "'s", " 42", ".", "5", "!!"}},
		{"we'll they've I'd", []string{"we", "'ll", " they", "'ve", " I", "'d"}},
		{" 's", []string{" '", "s"}},
		{"日本語 テスト", []string{"日本語", " テスト"}},
		{"\t\tfoo", []string{"\t", "\t", "foo"}},
	} {
		var got []string
		for i := 0; i < len(tc.in); {
			j := matchGPT2(tc.in, i)
			got = append(got, tc.in[i:j])
			i = j
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("split %q (-want +got):\n%s", tc.in, d)
		}
	}
}

var texts = []string{
	"Once upon a time, a little fox named Tom found a red ball.",
	"\"Can I play?\" asked Mia. \"Yes!\" said Tom.\n\nThe end.",
	"numbers 12345 and 3.14, emoji 🦊🎈, CJK 你好世界, Arabic مرحبا, combining é.",
	"  leading spaces\tand\ttabs\r\n",
	"<|endoftext|>special<|im_start|>user\nhi<|im_end|>",
}

func trainSmall(t testing.TB) *Tokenizer {
	t.Helper()
	corpus := strings.Repeat(strings.Join(texts, " "), 20)
	tk, err := Train(func(yield func(string) bool) {
		for _, line := range strings.Split(corpus, ".") {
			if !yield(line) {
				return
			}
		}
	}, TrainOptions{VocabSize: 400, SpecialTokens: []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"}})
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestTrainRoundTrip(t *testing.T) {
	tk := trainSmall(t)
	if tk.VocabSize() != 400 {
		t.Errorf("vocab size %d, want 400", tk.VocabSize())
	}
	for _, s := range texts {
		ids := tk.Encode(s, false)
		if got := tk.Decode(ids); got != s {
			t.Errorf("round trip of %q gave %q", s, got)
		}
		if len(ids) >= len(s) && !strings.Contains(s, "<|") {
			t.Errorf("%q: %d tokens for %d bytes: merges are not used", s, len(ids), len(s))
		}
	}
	im, _ := tk.TokenID("<|im_start|>")
	ids := tk.Encode("<|im_start|>user", false)
	if ids[0] != im {
		t.Errorf("special token not matched: %v", ids)
	}
	// Save and load give the same ids.
	dir := t.TempDir()
	tk.SetSpecial(-1, im+1, -1)
	tk.SetChatTemplate("{% for m in messages %}<|im_start|>{{m.role}}<|im_end|>{% endfor %}")
	if err := tk.Save(dir); err != nil {
		t.Fatal(err)
	}
	tk2, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range texts {
		if d := cmp.Diff(tk.Encode(s, true), tk2.Encode(s, true)); d != "" {
			t.Errorf("saved tokenizer encodes %q differently:\n%s", s, d)
		}
	}
	if tk2.EOS() != im+1 || tk2.ChatTemplate() == "" {
		t.Errorf("config not restored: eos %d, template %q", tk2.EOS(), tk2.ChatTemplate())
	}
}

func TestByteLevelJSON(t *testing.T) {
	tk, err := FromJSON(ByteLevelJSON())
	if err != nil {
		t.Fatal(err)
	}
	if tk.VocabSize() != 257 {
		t.Fatalf("vocab %d", tk.VocabSize())
	}
	s := "héllo\x00 wörld"
	ids := tk.Encode(s, false)
	if len(ids) != len(s) || tk.Decode(ids) != s {
		t.Fatalf("byte-level round trip: %v -> %q", ids, tk.Decode(ids))
	}
}

func TestStreamDecoderByteLevel(t *testing.T) {
	tk, _ := FromJSON(ByteLevelJSON())
	d := NewStreamDecoder(tk)
	var out strings.Builder
	for _, id := range tk.Encode("ab🦊c", false) {
		piece := d.Push(id)
		if !utf8.ValidString(piece) {
			t.Fatalf("partial rune streamed: %q", piece)
		}
		out.WriteString(piece)
	}
	out.WriteString(d.Flush())
	if out.String() != "ab🦊c" {
		t.Fatalf("streamed %q", out.String())
	}
}

func TestUnsupported(t *testing.T) {
	for _, doc := range []string{
		`{"model":{"type":"Unigram"}}`,
		`{"model":{"type":"Unigram","vocab":[["a",0]]}}`,                                                        // no unk_id
		`{"model":{"type":"WordPiece","vocab":{"a":0}}}`,                                                        // no unk_token
		`{"model":{"type":"SomethingElse","vocab":{}}}`,                                                         // unknown model
		`{"model":{"type":"BPE","vocab":{}},"normalizer":{"type":"Precompiled","precompiled_charsmap":"AAAA"}}`, // empty trie
		`{"model":{"type":"BPE","vocab":{}},"normalizer":{"type":"NmtThing"}}`,
		`not json`,
	} {
		if _, err := FromJSON([]byte(doc)); err == nil {
			t.Errorf("%s: no error", doc)
		}
	}
}

// FuzzRoundTrip: decode(encode(x)) == x for valid UTF-8 with a byte-level
// tokenizer without merges, GPT-2's, one trained here and a SentencePiece
// model with byte fallback.
func FuzzRoundTrip(f *testing.F) {
	bl, err := FromJSON(ByteLevelJSON())
	if err != nil {
		f.Fatal(err)
	}
	sp, err := LoadSentencePiece(filepath.Join("testdata", "sp", "llama.model"))
	if err != nil {
		f.Fatal(err)
	}
	trained := trainSmall(f)
	toks := []*Tokenizer{bl, loadGPT2(f), trained, sp}
	for _, s := range readTexts(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		for i, tk := range toks {
			if containsSpecial(tk, s) {
				// Text after a special token is a new segment (SentencePiece
				// models give it its own "▁" prefix, as HF and Meta's code do).
				continue
			}
			if got := tk.Decode(tk.Encode(s, false)); got != s {
				t.Fatalf("tokenizer %d: round trip %q -> %q", i, s, got)
			}
		}
	})
}

func containsSpecial(tk *Tokenizer, s string) bool {
	for _, a := range tk.added.toks {
		if a.special && strings.Contains(s, a.content) {
			return true
		}
	}
	return false
}
