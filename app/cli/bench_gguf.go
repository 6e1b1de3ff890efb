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
	"testing"
	"time"

	"llmlab/core/checkpoint"
	"llmlab/core/generate"
	"llmlab/core/model"
	"llmlab/core/tensor"
)

// benchGGUF measures decoding and prompt reading from GGUF files of each
// --quant type: a random Llama model whose rows are whole 256-blocks (so
// the K-quants apply), exported in process, loaded back with its weights
// kept as blocks; greedy tokens after a 4-token prompt, timed after the
// first (decode), and one prompt of 512 tokens (prefill). When node and tools/gguf-check
// (node-llama-cpp) are installed, llama.cpp reads the same files with the
// same threads and the ratios are reported: the two run alternately,
// three times each, and the medians are compared (the host may be shared;
// llama.cpp's threads spin while they wait, so on a busy machine compare
// at --threads 1). Each file is also decoded by a child `llmlab generate`
// whose peak resident memory is reported beside the file's size, and
// beside that of a tiny model of the same type.
func benchGGUF(ctx context.Context, threads int, quick bool, emit func(benchResult) error) error {
	cfg, err := model.ParseConfig([]byte(`{"model_type":"llama","vocab_size":2048,"hidden_size":768,"num_hidden_layers":6,"num_attention_heads":12,"num_key_value_heads":4,"intermediate_size":2048,"max_position_embeddings":1024,"tie_word_embeddings":false}`))
	ntok, nprefill, rounds, types := 32, 512, 3, []model.GGUFQuant{model.QuantF16, model.QuantQ8_0, model.QuantQ6_K, model.QuantQ4_0, model.QuantQ4_K_M}
	if quick {
		cfg, _ = model.ParseConfig([]byte(`{"model_type":"llama","vocab_size":300,"hidden_size":256,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":512,"max_position_embeddings":128}`))
		ntok, nprefill, rounds, types = 4, 32, 1, []model.GGUFQuant{model.QuantQ8_0, model.QuantQ4_K_M}
	}
	if err != nil {
		return err
	}
	m, err := model.New(cfg, 1)
	if err != nil {
		return err
	}
	voc := benchVocab(cfg.VocabSize)
	tinyCfg, err := model.ParseConfig([]byte(`{"model_type":"llama","vocab_size":256,"hidden_size":256,"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":256,"max_position_embeddings":128}`))
	if err != nil {
		return err
	}
	tiny, err := model.New(tinyCfg, 1)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "llmlab-bench-gguf")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	checker := llamaCppBench()
	prompt := []int32{1, 2, 3, 4}
	long := make([]int32, nprefill) // the ids bench.mjs reads
	for i := range long {
		long[i] = int32(3 + i%250)
	}
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
		for _, p := range [][]int32{prompt, long} { // warm up both shapes
			if _, err := g.Generate(ctx, generate.Request{Prompts: [][]int32{p}, MaxTokens: 2}); err != nil {
				return err
			}
		}
		var ours, oursCPU, oursPre, oursPreCPU []float64
		var refs []llamaCppSpeed
		var refErr error
		for range rounds {
			// Decode: ntok tokens timed after the first (which comes
			// with the prompt), as bench.mjs times llama.cpp.
			tps, cps, err := decodeSpeed(g, prompt, ntok)
			if err != nil {
				return err
			}
			ours = append(ours, tps)
			if cps > 0 {
				oursCPU = append(oursCPU, cps)
			}
			// Prefill: the prompt's forward pass and the first token.
			c0 := cpuTime()
			res, err := g.Generate(ctx, generate.Request{Prompts: [][]int32{long}, MaxTokens: 1})
			if err != nil {
				return err
			}
			oursPre = append(oursPre, float64(len(long))/res.Elapsed.Seconds())
			if c := cpuTime() - c0; c > 0 {
				oursPreCPU = append(oursPreCPU, float64(len(long))/c.Seconds())
			}
			if checker != nil && refErr == nil {
				var ref llamaCppSpeed
				if ref, refErr = checker(path, threads, ntok, len(long)); refErr == nil {
					refs = append(refs, ref)
				}
			}
		}
		fi, _ := os.Stat(path)
		bpw, _ := st.BitsPerWeight()
		r := benchResult{"bench": "gguf", "quant": q.String(), "threads": threads, "tokens_per_s": median(ours),
			"prefill_tokens": len(long), "prefill_tokens_per_s": median(oursPre),
			"file_mb": float64(fi.Size()) / (1 << 20), "bits_per_weight": bpw}
		if len(oursCPU) > 0 {
			r["cpu_tokens_per_s"] = median(oursCPU) // tokens per second of processor time: steadier on a shared host
			r["prefill_cpu_tokens_per_s"] = median(oursPreCPU)
		}
		if len(refs) > 0 {
			pick := func(f func(llamaCppSpeed) float64) float64 {
				xs := make([]float64, len(refs))
				for i, s := range refs {
					xs[i] = f(s)
				}
				return median(xs)
			}
			r["ref"] = "llama.cpp"
			r["ref_tokens_per_s"] = pick(func(s llamaCppSpeed) float64 { return s.TokensPerS })
			r["ratio"] = median(ours) / r["ref_tokens_per_s"].(float64)
			r["ref_prefill_tokens_per_s"] = pick(func(s llamaCppSpeed) float64 { return s.PrefillTokensPerS })
			r["prefill_ratio"] = median(oursPre) / r["ref_prefill_tokens_per_s"].(float64)
			if len(oursCPU) > 0 {
				if c := pick(func(s llamaCppSpeed) float64 { return s.CPUTokensPerS }); c > 0 {
					r["ref_cpu_tokens_per_s"], r["cpu_ratio"] = c, median(oursCPU)/c
				}
				if c := pick(func(s llamaCppSpeed) float64 { return s.PrefillCPUTokensPerS }); c > 0 {
					r["ref_prefill_cpu_tokens_per_s"], r["prefill_cpu_ratio"] = c, median(oursPreCPU)/c
				}
			}
		} else if refErr != nil {
			r["ref_error"] = refErr.Error()
		}
		if peak := childDecodeRSS(ctx, path, threads, ntok); peak > 0 {
			r["peak_rss_mb"], r["rss_ratio"] = float64(peak)/(1<<20), float64(peak)/float64(fi.Size())
			// The same decode of a tiny model of the same type: the
			// runtime, the code and the buffers every model needs. The
			// difference over the difference in file sizes is what each
			// byte of a model costs in memory, the figure that holds for
			// a model of gigabytes.
			tf, _, err := tiny.GGUFQuantized(benchVocab(tiny.Cfg.VocabSize), "bench", q)
			if err != nil {
				return err
			}
			tpath := filepath.Join(dir, "tiny-"+q.String()+".gguf")
			if err := checkpoint.WriteGGUF(tpath, tf); err != nil {
				return err
			}
			tfi, _ := os.Stat(tpath)
			if base := childDecodeRSS(ctx, tpath, threads, ntok); base > 0 && fi.Size() > tfi.Size() {
				r["tiny_peak_rss_mb"], r["tiny_file_mb"] = float64(base)/(1<<20), float64(tfi.Size())/(1<<20)
				r["model_rss_ratio"] = float64(peak-base) / float64(fi.Size()-tfi.Size())
			}
		}
		if err := emit(r); err != nil {
			return err
		}
	}
	return nil
}

// decodeSpeed generates n+1 greedy tokens after prompt and returns the
// tokens per second, of wall time and of processor time (0 where it is
// not read), of the last n: the first comes with the prompt's pass.
func decodeSpeed(g *generate.Generator, prompt []int32, n int) (tps, cpuTPS float64, err error) {
	r, err := g.Begin(generate.Request{Prompts: [][]int32{prompt}, MaxTokens: n + 1})
	if err != nil {
		return 0, 0, err
	}
	done, err := r.Step()
	if err != nil {
		return 0, 0, err
	}
	t0, c0 := time.Now(), cpuTime()
	for !done {
		if done, err = r.Step(); err != nil {
			return 0, 0, err
		}
	}
	wall, cpu := time.Since(t0), cpuTime()-c0
	res := r.Finish()
	if res.Tokens != n+1 {
		return 0, 0, fmt.Errorf("bench: %d tokens generated, want %d", res.Tokens, n+1)
	}
	if cpu > 0 {
		cpuTPS = float64(n) / cpu.Seconds()
	}
	return float64(n) / wall.Seconds(), cpuTPS, nil
}

// childDecodeRSS runs `llmlab generate` on the file in a child process
// and returns its peak resident memory in bytes; 0 where the executable or
// the measure is not available (under go test).
func childDecodeRSS(ctx context.Context, path string, threads, ntok int) int64 {
	exe, err := os.Executable()
	if err != nil || testing.Testing() { // a test binary is not llmlab: it would run the tests again
		return 0
	}
	peak, err := runPeakRSS(exec.CommandContext(ctx, exe, "generate", "--model", path, "--device", "cpu",
		"--threads", fmt.Sprint(threads), "--prompt", "Once upon a time", "--max-tokens", fmt.Sprint(ntok), "--temperature", "0"))
	if err != nil {
		return 0
	}
	return peak
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

// llamaCppSpeed is what tools/gguf-check/bench.mjs prints.
type llamaCppSpeed struct {
	TokensPerS           float64 `json:"tokens_per_s"`
	CPUTokensPerS        float64 `json:"cpu_tokens_per_s"`
	PrefillTokensPerS    float64 `json:"prefill_tokens_per_s"`
	PrefillCPUTokensPerS float64 `json:"prefill_cpu_tokens_per_s"`
}

// llamaCppBench returns a runner of tools/gguf-check/bench.mjs (n decoded
// tokens, then a prompt of prefill tokens), or nil when node or the
// package is missing.
func llamaCppBench() func(path string, threads, n, prefill int) (llamaCppSpeed, error) {
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
	return func(path string, threads, n, prefill int) (llamaCppSpeed, error) {
		var r llamaCppSpeed
		cmd := exec.Command(node, "bench.mjs", path, fmt.Sprint(threads), fmt.Sprint(n), fmt.Sprint(prefill))
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			return r, fmt.Errorf("llama.cpp: %w", err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
			return r, fmt.Errorf("llama.cpp: %w", err)
		}
		if r.TokensPerS <= 0 || r.PrefillTokensPerS <= 0 {
			return r, fmt.Errorf("llama.cpp: bench.mjs printed %q, not both speeds", lines[len(lines)-1])
		}
		return r, nil
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
