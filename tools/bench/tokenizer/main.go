// Command tokenizer measures llmlab's GPT-2 encoding throughput on one
// core: tokenizer -file F -reps N prints one JSON line like bench.mjs.
// Run through tokenizer.sh, which alternates it with js-tiktoken.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"llmlab/core/tokenizer"
)

func main() {
	file := flag.String("file", "", "text file to encode")
	reps := flag.Int("reps", 3, "repetitions (the best is reported)")
	gpt2 := flag.String("gpt2", filepath.Join("core", "tokenizer", "testdata", "gpt2"), "folder with encoder.json and vocab.bpe")
	flag.Parse()
	runtime.GOMAXPROCS(1)
	data, err := os.ReadFile(*file)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tok, err := tokenizer.LoadGPT2(filepath.Join(*gpt2, "encoder.json"), filepath.Join(*gpt2, "vocab.bpe"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	text := string(data)
	tok.Encode(text[:min(len(text), 100000)], false)
	best, tokens := time.Duration(1<<62), 0
	for range *reps {
		t0 := time.Now()
		tokens = len(tok.Encode(text, false))
		best = min(best, time.Since(t0))
	}
	out, _ := json.Marshal(map[string]any{"impl": "llmlab", "mbps": float64(len(data)) / best.Seconds() / 1e6, "tokens": tokens, "bytes": len(data)})
	fmt.Println(string(out))
}
