package data

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"llmlab/core/tokenizer"
)

// BenchmarkEncodeCorpus encodes 4 MB of varied text (the tokenizer's golden
// texts, shuffled into documents) into a shard with GPT-2's vocabulary at 1
// and 2 workers; the ratio of the two is the scaling across cores.
func BenchmarkEncodeCorpus(b *testing.B) {
	gpt2 := filepath.Join("..", "tokenizer", "testdata", "gpt2")
	tok, err := tokenizer.LoadGPT2(filepath.Join(gpt2, "encoder.json"), filepath.Join(gpt2, "vocab.bpe"))
	if err != nil {
		b.Skipf("GPT-2 files absent: %v", err)
	}
	raw, err := os.ReadFile(filepath.Join("..", "tokenizer", "testdata", "texts.json"))
	if err != nil {
		b.Fatal(err)
	}
	var sb strings.Builder
	for i := 0; sb.Len() < 4<<20; i++ {
		fmt.Fprintf(&sb, "Document %d. %s\n\n", i, raw[i%len(raw):])
	}
	dir := b.TempDir()
	in := filepath.Join(dir, "corpus.txt")
	if err := os.WriteFile(in, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			b.SetBytes(int64(sb.Len()))
			for range b.N {
				_, err := EncodeCorpus(context.Background(), tok, []string{in}, filepath.Join(dir, "train.bin"), "",
					CorpusOpts{Vocab: tok.VocabSize(), DocSep: "\n\n", Workers: workers})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
