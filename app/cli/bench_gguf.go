package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"llmlab/core/checkpoint"
	"llmlab/core/generate"
	"llmlab/core/model"
	"llmlab/core/tensor"
)

// benchGGUF measures decoding from GGUF files of each --quant type: a
// random Llama model whose rows are whole 256-blocks (so the K-quants
// apply), exported in process, loaded back with its weights kept as
// blocks, greedy tokens after a 4-token prompt. When node and
// tools/gguf-check (node-llama-cpp) are installed, llama.cpp decodes the
// same files with the same threads and the ratio is reported: the two
// run alternately, three times each, and the medians are compared (the
// host may be shared; llama.cpp's threads spin while they wait, so on a
// busy machine compare at --threads 1).
func benchGGUF(ctx context.Context, threads int, quick bool, emit func(benchResult) error) error {
	cfg, err := model.ParseConfig([]byte(`{"model_type":"llama","vocab_size":2048,"hidden_size":768,"num_hidden_layers":6,"num_attention_heads":12,"num_key_value_heads":4,"intermediate_size":2048,"max_position_embeddings":512,"tie_word_embeddings":false}`))
	ntok, rounds, types := 32, 3, []model.GGUFQuant{model.QuantF16, model.QuantQ8_0, model.QuantQ6_K, model.QuantQ4_0, model.QuantQ4_K_M}
	if quick {
		cfg, _ = model.ParseConfig([]byte(`{"model_type":"llama","vocab_size":300,"hidden_size":256,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":512,"max_position_embeddings":64}`))
		ntok, rounds, types = 4, 1, []model.GGUFQuant{model.QuantQ8_0, model.QuantQ4_K_M}
	}
	if err != nil {
		return err
	}
	m, err := model.New(cfg, 1)
	if err != nil {
		return err
	}
	voc := benchVocab(cfg.VocabSize)
	dir, err := os.MkdirTemp("", "llmlab-bench-gguf")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	checker := llamaCppBench()
	for _, q := range types {
		f, st, err := m.GGUFQuantized(voc, "bench", q)
		if err != nil {
			return err
		}
		path := filepath.Join(dir, "bench-"+q.String()+".gguf")
		if err := checkpoint.WriteGGUF(path, f); err != nil {
			return err
		}
		lm, err := model.LoadGGUF(path, model.LoadOptions{KeepStored: true})
		if err != nil {
			return err
		}
		g := generate.New(lm, tensor.NewCPU(threads), nil)
		prompt := []int32{1, 2, 3, 4}
		if _, err := g.Generate(ctx, generate.Request{Prompts: [][]int32{prompt}, MaxTokens: 2}); err != nil {
			return err
		}
		var ours, refs, oursCPU, refsCPU []float64
		var refErr error
		for range rounds {
			c0 := cpuTime()
			res, err := g.Generate(ctx, generate.Request{Prompts: [][]int32{prompt}, MaxTokens: ntok})
			if err != nil {
				return err
			}
			ours = append(ours, res.TokensPerSecond())
			if c := cpuTime() - c0; c > 0 {
				oursCPU = append(oursCPU, float64(res.Tokens)/c.Seconds())
			}
			if checker != nil && refErr == nil {
				var ref, refCPU float64
				if ref, refCPU, refErr = checker(path, threads, ntok); refErr == nil {
					refs, refsCPU = append(refs, ref), append(refsCPU, refCPU)
				}
			}
		}
		fi, _ := os.Stat(path)
		bpw, _ := st.BitsPerWeight()
		r := benchResult{"bench": "gguf", "quant": q.String(), "threads": threads, "tokens_per_s": median(ours),
			"file_mb": float64(fi.Size()) / (1 << 20), "bits_per_weight": bpw}
		if len(oursCPU) > 0 {
			r["cpu_tokens_per_s"] = median(oursCPU) // tokens per second of processor time: steadier on a shared host
		}
		if len(refs) > 0 {
			r["ref"], r["ref_tokens_per_s"], r["ratio"] = "llama.cpp", median(refs), median(ours)/median(refs)
			if len(oursCPU) > 0 && median(refsCPU) > 0 {
				r["ref_cpu_tokens_per_s"], r["cpu_ratio"] = median(refsCPU), median(oursCPU)/median(refsCPU)
			}
		} else if refErr != nil {
			r["ref_error"] = refErr.Error()
		}
		if err := emit(r); err != nil {
			return err
		}
	}
	return nil
}

// benchVocab is a byte-level vocabulary of n tokens: the 256 byte
// symbols of GPT-2's alphabet (llama.cpp wants them), then fillers.
func benchVocab(n int) model.Vocab {
	v := model.Vocab{BOS: 1, EOS: 2, PAD: -1}
	for b := 0; b < 256 && len(v.Tokens) < n; b++ {
		v.Tokens = append(v.Tokens, byteSymbol(byte(b)))
		v.Types = append(v.Types, 1)
	}
	for len(v.Tokens) < n {
		v.Tokens = append(v.Tokens, fmt.Sprintf("tok%d", len(v.Tokens)))
		v.Types = append(v.Types, 1)
	}
	v.Merges = []string{}
	return v
}

// byteSymbol is GPT-2's printable stand-in for a byte.
func byteSymbol(b byte) string {
	if b >= '!' && b <= '~' || b >= 0xa1 && b <= 0xac || b >= 0xae {
		return string(rune(b))
	}
	n := 0
	for c := 0; c < int(b); c++ {
		if !(c >= '!' && c <= '~' || c >= 0xa1 && c <= 0xac || c >= 0xae) {
			n++
		}
	}
	return string(rune(256 + n))
}

// llamaCppBench returns a runner of tools/gguf-check/bench.mjs, or nil
// when node or the package is missing.
func llamaCppBench() func(path string, threads, n int) (tps, cpuTPS float64, err error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil
	}
	var dir string
	for _, d := range []string{"tools/gguf-check", os.Getenv("LLMLAB_GGUF_CHECK")} {
		if d == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "node_modules", "node-llama-cpp")); err == nil {
			dir = d
			break
		}
	}
	if dir == "" {
		return nil
	}
	return func(path string, threads, n int) (float64, float64, error) {
		cmd := exec.Command(node, "bench.mjs", path, fmt.Sprint(threads), fmt.Sprint(n))
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			return 0, 0, fmt.Errorf("llama.cpp: %w", err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		var r struct {
			TokensPerS    float64 `json:"tokens_per_s"`
			CPUTokensPerS float64 `json:"cpu_tokens_per_s"`
		}
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
			return 0, 0, err
		}
		return r.TokensPerS, r.CPUTokensPerS, nil
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
