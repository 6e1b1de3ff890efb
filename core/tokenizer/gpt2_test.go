package tokenizer

import (
	"strings"
	"testing"
)

// BenchmarkEncodeGPT2 encodes about 1 MB made of the golden texts with
// GPT-2's vocabulary on one goroutine.
func BenchmarkEncodeGPT2(b *testing.B) {
	tk := loadGPT2(b)
	text := strings.Join(readTexts(b), "\n")
	text = strings.Repeat(text, (1<<20)/len(text)+1)
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for range b.N {
		tk.Encode(text, false)
	}
}
