package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"llmlab/assets"
	"llmlab/core/data"
	"llmlab/core/generate"
	"llmlab/core/model"
	"llmlab/core/optim"
	"llmlab/core/tensor"
	"llmlab/core/tokenizer"
	"llmlab/core/train"
	"llmlab/gpu"
	"llmlab/gpu/blas"
	"llmlab/lora"
)

// benchResult is one line of `llmlab bench --json`.
type benchResult map[string]any

// runBench prints the headline speed figures: GEMM GFLOP/s, tokenizer
// MB/s, training tokens/s and generation tokens/s.
func runBench(e *Env) error {
	fs := newFlags(e, "bench")
	threads := fs.Int("threads", 0, "threads (0: all cores)")
	only := fs.String("only", "", "run only one group: gemm, tokenize, train, lora, generate, gguf (decoding GGUF files, against llama.cpp when tools/gguf-check is installed) or serve (serve runs only when asked)")
	loraBase := fs.String("base", "f32", "lora group: how the frozen base is held (f32, f16 or nf4)")
	ckpt := fs.Bool("checkpoint-activations", false, "lora group: activation checkpointing")
	presets := fs.String("presets", "tiny,stories15m,gpt2-124m", "comma-separated presets for train and generate")
	quick := fs.Bool("quick", false, "fewer repetitions (for tests)")
	jsonOut := fs.Bool("json", false, "one JSON object per line")
	device := fs.String("device", "cpu", "backend for the gemm, train, lora, generate and serve groups: cpu, cuda, vulkan, blas or auto")
	servePreset := fs.String("serve-preset", "llama-88m", "serve group: the model shape (random weights)")
	serveClients := fs.Int("serve-clients", 8, "serve group: concurrent streaming clients (and --parallel slots)")
	if err := parse(fs, e.Args); err != nil {
		return err
	}
	switch *only {
	case "", "gemm", "tokenize", "train", "lora", "generate", "gguf", "serve":
	default:
		return Usagef("--only must be gemm, tokenize, train, lora, generate, gguf or serve, got %q", *only)
	}
	if *serveClients < 1 {
		return Usagef("--serve-clients must be at least 1, got %d", *serveClients)
	}
	n := *threads
	if n <= 0 {
		n = runtime.NumCPU()
	}
	dev, closeDev, err := gpu.Open(*device, n, e.Stderr)
	if err != nil {
		return Usagef("%v", err)
	}
	defer closeDev()
	onCPU := dev.Name() == "cpu"
	// backend is the device for the model groups; each gets a fresh CPU
	// backend when that is the device.
	backend := func() tensor.Backend {
		if onCPU {
			return tensor.NewCPU(n)
		}
		return dev
	}
	emit := func(r benchResult) error {
		if !onCPU {
			r["device"] = dev.Name()
		}
		if *jsonOut {
			return json.NewEncoder(e.Stdout).Encode(r)
		}
		switch r["bench"] {
		case "gemm":
			fmt.Fprintf(e.Stdout, "gemm     m=%-5v n=%-5v k=%-5v threads=%d  %7.1f GFLOP/s", r["m"], r["n"], r["k"], r["threads"], r["gflops"])
			if d, ok := r["device"]; ok {
				fmt.Fprintf(e.Stdout, "  on %v", d)
			}
			if ref, ok := r["ref"]; ok {
				fmt.Fprintf(e.Stdout, "   %s %7.1f GFLOP/s   ratio %.2f", ref, r["ref_gflops"], r["ratio"])
			}
			fmt.Fprintln(e.Stdout)
		case "train":
			fmt.Fprintf(e.Stdout, "train    %-12v batch=%vx%v threads=%d  %9.0f tokens/s", r["preset"], r["batch"], r["ctx"], r["threads"], r["tokens_per_s"])
			if d, ok := r["device"]; ok {
				fmt.Fprintf(e.Stdout, "  on %v", d)
			}
			fmt.Fprintln(e.Stdout)
		case "generate":
			fmt.Fprintf(e.Stdout, "generate %-12v threads=%d  %9.1f tokens/s", r["preset"], r["threads"], r["tokens_per_s"])
			if d, ok := r["device"]; ok {
				fmt.Fprintf(e.Stdout, "  on %v", d)
			}
			fmt.Fprintln(e.Stdout)
		case "lora":
			fmt.Fprintf(e.Stdout, "lora     %-12v batch=%vx%v threads=%d  %9.0f tokens/s  base %v, peak heap %.0f MB",
				r["preset"], r["batch"], r["ctx"], r["threads"], r["tokens_per_s"], r["base"], r["heap_mb"])
			if ratio, ok := r["ratio"]; ok {
				fmt.Fprintf(e.Stdout, "   full fine-tune %.0f tokens/s, ratio %.2f", r["full_tokens_per_s"], ratio)
			}
			fmt.Fprintln(e.Stdout)
		case "tokenize":
			fmt.Fprintf(e.Stdout, "tokenize %-12v threads=%d  %9.1f MB/s\n", r["what"], r["threads"], r["mb_per_s"])
		case "serve":
			fmt.Fprintf(e.Stdout, "serve    %-12v threads=%d  1 client %7.1f tokens/s, TTFT %6.0f ms   %v clients %7.1f tokens/s (%.1f with ramp-up and tail), TTFT %6.0f ms   tokens/s ratio %.2f (goal >= 3), TTFT ratio %.2f (goal <= 2)",
				r["preset"], r["threads"], r["tokens_per_s_1"], r["ttft_ms_1"], r["clients"], r["tokens_per_s_n"], r["tokens_per_s_n_overall"], r["ttft_ms_n"], r["tokens_per_s_ratio"], r["ttft_ratio"])
			if d, ok := r["device"]; ok {
				fmt.Fprintf(e.Stdout, "  on %v", d)
			}
			fmt.Fprintln(e.Stdout)
		case "gguf":
			fmt.Fprintf(e.Stdout, "gguf     %-12v threads=%d  %9.1f tokens/s  %.0f MB, %.2f bits/weight", r["quant"], r["threads"], r["tokens_per_s"], r["file_mb"], r["bits_per_weight"])
			if ref, ok := r["ref"]; ok {
				fmt.Fprintf(e.Stdout, "   %s %7.1f tokens/s   ratio %.2f", ref, r["ref_tokens_per_s"], r["ratio"])
			}
			if cr, ok := r["cpu_ratio"]; ok {
				fmt.Fprintf(e.Stdout, "   per CPU second %.1f vs %.1f, ratio %.2f", r["cpu_tokens_per_s"], r["ref_cpu_tokens_per_s"], cr)
			}
			fmt.Fprintf(e.Stdout, "\n         prefill of %v tokens %9.1f tokens/s", r["prefill_tokens"], r["prefill_tokens_per_s"])
			if ratio, ok := r["prefill_ratio"]; ok {
				fmt.Fprintf(e.Stdout, "   llama.cpp %7.1f tokens/s   ratio %.2f (goal >= 0.8)", r["ref_prefill_tokens_per_s"], ratio)
			}
			if cr, ok := r["prefill_cpu_ratio"]; ok {
				fmt.Fprintf(e.Stdout, "   per CPU second %.1f vs %.1f, ratio %.2f", r["prefill_cpu_tokens_per_s"], r["ref_prefill_cpu_tokens_per_s"], cr)
			}
			if peak, ok := r["peak_rss_mb"]; ok {
				fmt.Fprintf(e.Stdout, "\n         decoding in a child process: peak RSS %.1f MB, %.2fx the file", peak, r["rss_ratio"])
				if base, ok := r["tiny_peak_rss_mb"]; ok {
					fmt.Fprintf(e.Stdout, "; a %.2f MB model %.1f MB: each byte of the file costs %.2f bytes (goal <= 1.2)", r["tiny_file_mb"], base, r["model_rss_ratio"])
				}
			}
			if re, ok := r["ref_error"]; ok {
				fmt.Fprintf(e.Stdout, "\n         llama.cpp: %v", re)
			}
			fmt.Fprintln(e.Stdout)
		}
		return nil
	}
	reps := 3
	if *quick {
		reps = 1
	}
	if *only == "serve" {
		cfg, err := model.Preset(model.Llama, *servePreset)
		if err != nil {
			return BadInput(err)
		}
		ntok, perClient, rounds := 64, 2, 2
		if *quick {
			ntok, perClient, rounds = 6, 1, 1
		}
		one, many, err := benchServe(e.Ctx, cfg, backend(), *serveClients, *serveClients, perClient, ntok, rounds)
		if err != nil {
			return err
		}
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		return emit(benchResult{"bench": "serve", "preset": *servePreset, "threads": n, "clients": *serveClients,
			"max_tokens": ntok, "requests_per_client": perClient, "rounds": rounds,
			"tokens_per_s_1": one.tokensPerS, "ttft_ms_1": ms(one.ttft),
			"tokens_per_s_n": many.tokensPerS, "ttft_ms_n": ms(many.ttft), "tokens_per_s_n_overall": many.overall,
			"tokens_per_s_ratio": many.tokensPerS / one.tokensPerS, "ttft_ratio": ms(many.ttft) / ms(one.ttft)})
	}
	if *only == "" || *only == "gemm" {
		shapes := [][3]int{{1024, 768, 768}, {1024, 3072, 768}, {1024, 768, 3072}, {256, 288, 288}}
		if *quick {
			shapes = shapes[3:]
		}
		ref, refErr := blas.Open()
		ths := uniqueInts(1, n)
		if !onCPU {
			ths = []int{n}
		}
		for _, th := range ths {
			for _, s := range shapes {
				var gb tensor.Backend = tensor.NewCPU(th)
				if !onCPU {
					gb = dev
				}
				gf := benchGEMM(gb, s[0], s[1], s[2], reps)
				r := benchResult{"bench": "gemm", "m": s[0], "n": s[1], "k": s[2], "threads": th, "gflops": gf}
				if refErr == nil {
					ref.SetThreads(th)
					rg := benchBLAS(ref, s[0], s[1], s[2], reps)
					r["ref"], r["ref_gflops"], r["ratio"] = ref.Name(), rg, gf/rg
				}
				if err := emit(r); err != nil {
					return err
				}
			}
		}
	}
	if *only == "gguf" {
		return benchGGUF(e.Ctx, n, *quick, emit)
	}
	if *only == "" || *only == "tokenize" {
		rs, err := benchTokenize(e.Ctx, n, *quick)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if err := emit(r); err != nil {
				return err
			}
		}
	}
	for _, p := range splitList(*presets) {
		shape, ok := trainShapes[p]
		if !ok {
			shape = [2]int{4, 128}
		}
		cfg, err := model.Preset(model.Llama, p)
		if p == "gpt2-124m" {
			cfg, err = model.Preset(model.GPT2, p)
		}
		if err != nil {
			return BadInput(err)
		}
		if *only == "" || *only == "train" {
			steps := 3
			if *quick {
				steps = 1
				shape = [2]int{2, 32}
			}
			tps, allocs, allocBytes, err := benchTrain(e.Ctx, cfg, backend(), shape[0], shape[1], steps)
			if err != nil {
				return err
			}
			if err := emit(benchResult{"bench": "train", "preset": p, "batch": shape[0], "ctx": shape[1], "threads": n, "tokens_per_s": tps, "allocs_per_step": allocs, "alloc_bytes_per_step": allocBytes}); err != nil {
				return err
			}
		}
		if *only == "lora" {
			steps := 3
			if *quick {
				steps = 1
				shape = [2]int{2, 32}
			}
			full := 0.0
			if *loraBase == "f32" {
				if full, _, _, err = benchTrain(e.Ctx, cfg, backend(), shape[0], shape[1], steps); err != nil {
					return err
				}
			}
			tps, heap, err := benchLoRA(e.Ctx, cfg, backend(), shape[0], shape[1], steps, *loraBase, *ckpt)
			if err != nil {
				return err
			}
			r := benchResult{"bench": "lora", "preset": p, "batch": shape[0], "ctx": shape[1], "threads": n, "tokens_per_s": tps,
				"full_tokens_per_s": full, "base": *loraBase, "heap_mb": heap, "checkpoint_activations": *ckpt}
			if full > 0 {
				r["ratio"] = tps / full
			}
			if err := emit(r); err != nil {
				return err
			}
		}
		if *only == "" || *only == "generate" {
			ntok := 64
			if *quick {
				ntok = 4
			}
			tps, err := benchGenerate(e.Ctx, cfg, backend(), ntok)
			if err != nil {
				return err
			}
			if err := emit(benchResult{"bench": "generate", "preset": p, "threads": n, "tokens_per_s": tps}); err != nil {
				return err
			}
		}
	}
	return nil
}

// trainShapes are the batch x context per preset.
var trainShapes = map[string][2]int{"tiny": {16, 128}, "stories15m": {8, 256}, "gpt2-124m": {4, 256}, "smollm-135m": {4, 256}}

func uniqueInts(a, b int) []int {
	if a == b {
		return []int{a}
	}
	return []int{a, b}
}

// benchGEMM returns the best GFLOP/s of reps runs of an (m,k)·(n,k)ᵀ product.
func benchGEMM(b tensor.Backend, m, n, k, reps int) float64 {
	x := tensor.FromF32(randFloats(m*k, 1), m, k)
	w := tensor.FromF32(randFloats(n*k, 2), n, k)
	y := tensor.New(m, n)
	b.MatMul(y, x, w, tensor.MatMulOpts{TransB: true}) // warm up
	best := 0.0
	for range reps {
		iters := 0
		start := time.Now()
		for time.Since(start) < 300*time.Millisecond || iters == 0 {
			b.MatMul(y, x, w, tensor.MatMulOpts{TransB: true})
			iters++
		}
		gf := 2 * float64(m) * float64(n) * float64(k) * float64(iters) / time.Since(start).Seconds() / 1e9
		best = max(best, gf)
	}
	return best
}

// benchBLAS times the reference library's sgemm on the same product.
func benchBLAS(l *blas.Lib, m, n, k, reps int) float64 {
	x, w, y := randFloats(m*k, 1), randFloats(n*k, 2), make([]float32, m*n)
	l.Sgemm(false, true, m, n, k, 1, x, k, w, k, 0, y, n)
	best := 0.0
	for range reps {
		iters := 0
		start := time.Now()
		for time.Since(start) < 300*time.Millisecond || iters == 0 {
			l.Sgemm(false, true, m, n, k, 1, x, k, w, k, 0, y, n)
			iters++
		}
		best = max(best, 2*float64(m)*float64(n)*float64(k)*float64(iters)/time.Since(start).Seconds()/1e9)
	}
	return best
}

func randFloats(n int, seed uint64) []float32 {
	out := make([]float32, n)
	x := seed*0x9e3779b97f4a7c15 + 1
	for i := range out {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		out[i] = float32(int64(x>>40)-(1<<23)) / float32(1<<23)
	}
	return out
}

// benchTrain times full training steps (forward, backward, AdamW) on
// random tokens and reports tokens/s and heap allocations per step.
// benchTrain returns tokens/s and the heap allocations and bytes of a
// steady-state step.
func benchTrain(ctx context.Context, cfg model.Config, b tensor.Backend, batch, seq, steps int) (tps, allocs, bytes float64, err error) {
	seq = min(seq, cfg.MaxPos)
	m, err := model.New(cfg, 1)
	if err != nil {
		return 0, 0, 0, err
	}
	opt := optim.NewAdamW(benchAdamW, m.ParamList())
	step := train.FixedStep(m, b, opt, batch, seq, 1e-4, nil)
	// Two warm-up steps: the first sizes the arena (its slab is re-made at
	// the second step's reset) and creates the optimizer state.
	for range 2 {
		if err := step(); err != nil {
			return 0, 0, 0, err
		}
	}
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	start := time.Now()
	for range steps {
		if err := ctx.Err(); err != nil {
			return 0, 0, 0, err
		}
		if err := step(); err != nil {
			return 0, 0, 0, err
		}
	}
	el := time.Since(start)
	runtime.ReadMemStats(&ms1)
	return float64(batch*seq*steps) / el.Seconds(), float64(ms1.Mallocs-ms0.Mallocs) / float64(steps),
		float64(ms1.TotalAlloc-ms0.TotalAlloc) / float64(steps), nil
}

// benchGenerate times greedy decoding of ntok tokens at batch 1.
func benchGenerate(ctx context.Context, cfg model.Config, b tensor.Backend, ntok int) (float64, error) {
	m, err := model.New(cfg, 1)
	if err != nil {
		return 0, err
	}
	g := generate.New(m, b, nil)
	prompt := []int32{1, 2, 3, 4}
	if _, err := g.Generate(ctx, generate.Request{Prompts: [][]int32{prompt}, MaxTokens: 2}); err != nil {
		return 0, err
	}
	res, err := g.Generate(ctx, generate.Request{Prompts: [][]int32{prompt}, MaxTokens: ntok})
	if err != nil {
		return 0, err
	}
	return res.TokensPerSecond(), nil
}

// benchTokenize encodes the demo stories with the demo model's tokenizer on
// one goroutine, then as a corpus into a token shard with all threads.
func benchTokenize(ctx context.Context, threads int, quick bool) ([]benchResult, error) {
	dir, err := demoModelDir()
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil, err
	}
	text, err := assets.Stories()
	if err != nil {
		return nil, err
	}
	if quick {
		text = text[:1<<18]
	}
	start := time.Now()
	tok.Encode(text, false)
	one := float64(len(text)) / time.Since(start).Seconds() / 1e6
	tmp, err := os.MkdirTemp("", "llmlab-bench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	in := filepath.Join(tmp, "stories.txt")
	if err := os.WriteFile(in, []byte(text), 0o644); err != nil {
		return nil, err
	}
	start = time.Now()
	if _, err := data.EncodeCorpus(ctx, tok, []string{in}, filepath.Join(tmp, "train.bin"), "",
		data.CorpusOpts{Vocab: tok.VocabSize(), DocSep: "\n\n", Workers: threads}); err != nil {
		return nil, err
	}
	all := float64(len(text)) / time.Since(start).Seconds() / 1e6
	return []benchResult{
		{"bench": "tokenize", "what": "encode", "threads": 1, "mb_per_s": one},
		{"bench": "tokenize", "what": "corpus", "threads": threads, "mb_per_s": all},
	}, nil
}

// benchLoRA times LoRA steps (rank 8 on the query and value projections,
// as PEFT's defaults) with the frozen base held as f32, f16 or NF4, and
// reports tokens/s and the peak Go heap in MB.
func benchLoRA(ctx context.Context, cfg model.Config, b tensor.Backend, batch, seq, steps int, base string, ckpt bool) (tps, heapMB float64, err error) {
	seq = min(seq, cfg.MaxPos)
	m, err := model.New(cfg, 1)
	if err != nil {
		return 0, 0, err
	}
	m.CheckpointBlocks = ckpt
	switch base {
	case "f32":
	case "f16", "nf4":
		for p := range m.Params() {
			p.Value = p.Value.Convert(tensor.F16)
		}
		if base == "nf4" {
			if _, err := m.Quantize(tensor.NF4); err != nil {
				return 0, 0, err
			}
		}
	default:
		return 0, 0, Usagef("--base must be f32, f16 or nf4, got %q", base)
	}
	runtime.GC()
	targets := []string{"q_proj", "v_proj"}
	if cfg.Arch == model.GPT2 {
		targets = []string{"c_attn"}
	}
	a, err := lora.Apply(m, lora.Config{Rank: 8, Alpha: 16, Targets: targets, Seed: 1})
	if err != nil {
		return 0, 0, err
	}
	opt := optim.NewAdamW(benchAdamW, a.Params())
	var peak uint64
	// The peak heap is read after backward, when activations and
	// gradients are all alive.
	step := train.FixedStep(m, b, opt, batch, seq, 1e-4, func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapAlloc)
	})
	for range 2 {
		if err := step(); err != nil {
			return 0, 0, err
		}
	}
	start := time.Now()
	for range steps {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		if err := step(); err != nil {
			return 0, 0, err
		}
	}
	return float64(batch*seq*steps) / time.Since(start).Seconds(), float64(peak) / (1 << 20), nil
}

// benchAdamW is the optimizer of the training benchmarks.
var benchAdamW = optim.AdamWConfig{LR: 1e-4, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}
