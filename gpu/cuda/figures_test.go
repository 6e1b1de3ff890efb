//go:build linux && !android

package cuda

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"llmlab/core/autograd"
	"llmlab/core/generate"
	"llmlab/core/model"
	"llmlab/core/optim"
	"llmlab/core/tensor"
	"llmlab/core/train"
	"llmlab/lora"
)

// devicePeak is a device's dense peak in TFLOP/s for bf16 (tensor cores),
// tf32 (tensor cores) and plain fp32, from the vendors' data sheets (SXM
// parts where there are several).
type devicePeak struct {
	match            string
	bf16, tf32, fp32 float64
}

// devicePeaks is searched in order, so longer names come first.
var devicePeaks = []devicePeak{
	{"H200", 989, 495, 67},
	{"H100", 989, 495, 67},
	{"GH200", 989, 495, 67},
	{"B200", 2250, 1100, 80},
	{"A100", 312, 156, 19.5},
	{"A800", 312, 156, 19.5},
	{"L40S", 362, 183, 91.6},
	{"L40", 181, 90.5, 90.5},
	{"L4", 121, 60, 30.3},
	{"A10G", 70, 35, 31.2},
	{"A10", 125, 62.5, 31.2},
	{"RTX 4090", 165, 82.6, 82.6},
	{"RTX 3090", 71, 35.6, 35.6},
	{"V100", 125, 0, 15.7}, // fp16 tensor cores; no bf16 or tf32
	{"T4", 65, 0, 8.1},
}

func peakOf(name string) (devicePeak, bool) {
	for _, p := range devicePeaks {
		if strings.Contains(name, p.match) {
			return p, true
		}
	}
	return devicePeak{}, false
}

// figureRow is one measured figure: its key (the "figure" line's and the
// PyTorch anchor's), what runs (generate, full or lora), the products'
// precision and the batch shape.
type figureRow struct {
	Key   string `json:"key"`
	Kind  string `json:"kind"`
	Mode  string `json:"mode"`
	Batch int    `json:"batch"`
	Seq   int    `json:"seq"`
	// Targets are the LoRA targets (PEFT's module names).
	Targets []string `json:"targets,omitempty"`
}

// figurePlan is the work for one preset, written for the anchor
// (tools/bench/torch_cuda.py) so that both sides measure the same shapes:
// Config is the preset's HF config.json.
type figurePlan struct {
	Preset string          `json:"preset"`
	Config json.RawMessage `json:"config"`
	Rows   []figureRow     `json:"rows"`
}

// planFigures lays out the rows for one preset: generation at batch 1;
// full fine-tuning in fp32, tf32 and bf16; LoRA r=8 on the query and
// value projections (GPT-2: c_attn) in fp32 and bf16, at 4x256 (2x256
// from hidden 2048 up); and for models of hidden 2048 and more a LoRA
// bf16 row at 8x512, the size people fine-tune at.
func planFigures(name string, cfg model.Config) (figurePlan, error) {
	js, err := cfg.JSON()
	if err != nil {
		return figurePlan{}, err
	}
	batch, seq := 4, min(256, cfg.MaxPos)
	if cfg.Hidden >= 2048 {
		batch = 2
	}
	targets := []string{"q_proj", "v_proj"}
	if cfg.Arch == model.GPT2 {
		targets = []string{"c_attn"}
	}
	rows := []figureRow{{Key: "generate", Kind: "generate", Mode: "fp32", Batch: 1, Seq: 16}}
	for _, mode := range []string{"fp32", "tf32", "bf16"} {
		rows = append(rows, figureRow{Key: "full-" + mode, Kind: "full", Mode: mode, Batch: batch, Seq: seq})
	}
	for _, mode := range []string{"fp32", "bf16"} {
		rows = append(rows, figureRow{Key: "lora-" + mode, Kind: "lora", Mode: mode, Batch: batch, Seq: seq, Targets: targets})
	}
	if cfg.Hidden >= 2048 {
		rows = append(rows, figureRow{Key: "lora-bf16-8x512", Kind: "lora", Mode: "bf16", Batch: 8, Seq: min(512, cfg.MaxPos), Targets: targets})
	}
	return figurePlan{Preset: name, Config: js, Rows: rows}, nil
}

// TestDeviceFigures measures training and generation speed on the device
// for tools/gpu-check.sh (which sets LLMLAB_CUDA_BENCH=1): full fine-tune
// and LoRA steps in tokens/s with model FLOPs utilisation (6·N·tokens/s
// over the device's peak), and greedy generation in tokens/s, for the
// presets in LLMLAB_CUDA_BENCH_PRESETS (default gpt2-124m,llama-1b,
// gemma3-270m). LLMLAB_CUDA_BENCH_PLAN names a file where the plan (each
// preset's config.json and rows) is written before anything is measured,
// for the PyTorch anchor.
func TestDeviceFigures(t *testing.T) {
	if os.Getenv("LLMLAB_CUDA_BENCH") == "" {
		t.Skip("set LLMLAB_CUDA_BENCH=1 to measure (tools/gpu-check.sh does)")
	}
	presets := "gpt2-124m,llama-1b,gemma3-270m"
	if p := os.Getenv("LLMLAB_CUDA_BENCH_PRESETS"); p != "" {
		presets = p
	}
	var plans []figurePlan
	for _, name := range strings.Split(presets, ",") {
		arch := model.Llama
		if strings.HasPrefix(name, "gpt2") {
			arch = model.GPT2
		}
		cfg, err := model.Preset(arch, name)
		if err != nil {
			t.Fatal(err)
		}
		p, err := planFigures(name, cfg)
		if err != nil {
			t.Fatal(err)
		}
		plans = append(plans, p)
	}
	if out := os.Getenv("LLMLAB_CUDA_BENCH_PLAN"); out != "" {
		js, err := json.MarshalIndent(plans, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, js, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b := openOrSkip(t)
	// LLMLAB_CUDA_PROFILE=1 adds a profiled step after each training
	// figure: where its device time went, kernel by kernel.
	profiling := os.Getenv("LLMLAB_CUDA_PROFILE") != ""
	peak, known := peakOf(b.Name())
	var summary []string
	flush := func() {
		if out := os.Getenv("LLMLAB_CUDA_BENCH_OUT"); out != "" {
			os.WriteFile(out, []byte(strings.Join(summary, "\n")+"\n"), 0o644)
		}
	}
	// The figures measured so far are kept when a later one fails.
	defer flush()
	say := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		summary = append(summary, line)
		fmt.Println(line)
		flush()
	}
	say("device: %s", b.Name())
	if known {
		say("peak (dense TFLOP/s): bf16 %.0f, tf32 %.0f, fp32 %.1f", peak.bf16, peak.tf32, peak.fp32)
	} else {
		say("peak: device not in the table; MFU not computed")
	}
	mfu := func(n int, tps float64, mode string) string {
		if !known {
			return ""
		}
		fl := 6 * float64(n) * tps / 1e12
		used := map[string]float64{"fp32": peak.fp32, "tf32": peak.tf32, "bf16": peak.bf16}[mode]
		return fmt.Sprintf("  %.2f TFLOP/s: MFU %.2f%% of bf16 peak, %.1f%% of %s peak", fl, 100*fl/peak.bf16, 100*fl/used, mode)
	}
	// setMode picks the products' precision: float32, TF32 or bfloat16.
	setMode := func(mode string) {
		b.SetTF32(mode == "tf32")
		b.SetBF16(mode == "bf16")
	}
	for _, p := range plans {
		name := p.Preset
		cfg, err := model.ParseConfig(p.Config)
		if err != nil {
			t.Fatal(err)
		}
		// One model per preset (initialising llama-1b takes a while):
		// generation first, then full fine-tuning, then LoRA adapters
		// on the same model.
		m, err := model.New(cfg, 1)
		if err != nil {
			t.Fatal(err)
		}
		n := m.NumParams()
		// peak reports the device memory held at most since the last
		// call: the weights, gradients, moments, arena, KV cache and each
		// op's scratch of the figure just measured (not cuBLAS's
		// workspace or the pool's idle buffers).
		b.ResetPeak()
		// Device memory still held from earlier presets is not this
		// preset's: peaks are counted above it.
		base := b.Stats().LiveBytes
		// fig records one figure: a "figure PRESET KEY TOKENS/S PEAK_GIB"
		// line (tools/gpu-check.sh divides it by the PyTorch anchor's
		// line of the same key) and the peak for the readable line.
		fig := func(key string, tps float64) string {
			st := b.Stats()
			b.ResetPeak()
			g := float64(st.PeakBytes-base) / (1 << 30)
			line := fmt.Sprintf("figure %s %s %.1f %.3f", name, key, tps, g)
			summary = append(summary, line)
			fmt.Println(line)
			return fmt.Sprintf("  peak %.2f GiB", g)
		}
		var full, lopt *optim.AdamW
		var adapterParams []*autograd.Param
		var loraBase tensor.DType
		for _, r := range p.Rows {
			setMode(r.Mode)
			switch r.Kind {
			case "generate":
				tps, err := figureGenerate(m, b, r.Seq)
				if err != nil {
					t.Fatalf("%s generate: %v", name, err)
				}
				say("%-12s generate batch 1, %d tokens  %8.1f tokens/s%s", name, r.Seq, tps, fig(r.Key, tps))
			case "full":
				if full == nil {
					full = optim.NewAdamW(figureAdamW, m.ParamList())
				}
				tps, err := figureTrain(m, full, b, r.Batch, r.Seq, 2, profiling)
				if err != nil {
					t.Fatalf("%s %s: %v", name, r.Key, err)
				}
				say("%-12s full fine-tune %s batch %dx%d  N=%.0fM  %8.0f tokens/s%s%s", name, r.Mode, r.Batch, r.Seq, float64(n)/1e6, tps, mfu(n, tps, r.Mode), fig(r.Key, tps))
			case "lora":
				// bf16 rows train over a frozen base held in bf16
				// (sft --quant bf16), fp32 rows over the float32 one;
				// a row that needs the other base gets a fresh model.
				base := tensor.F32
				if r.Mode == "bf16" {
					base = tensor.BF16
				}
				if lopt != nil && loraBase != base {
					lopt.Release()
					lopt = nil
					freeModel(b, m, adapterParams)
					adapterParams = nil
					if m, err = model.New(cfg, 1); err != nil {
						t.Fatal(err)
					}
				}
				if lopt == nil {
					// The full fine-tune's moments and gradients are
					// freed first, as PyTorch's anchor drops its
					// optimizer and sets gradients to None.
					if full != nil {
						full.Release()
						full = nil
					}
					for _, p := range m.ParamList() {
						if p.Grad != nil {
							tensor.Free(p.Grad)
							p.Grad = nil
						}
					}
					if base == tensor.BF16 {
						if err := quantizeOnHost(m); err != nil {
							t.Fatal(err)
						}
					}
					b.ResetPeak()
					a, err := lora.Apply(m, lora.Config{Rank: 8, Alpha: 16, Targets: r.Targets, Seed: 1})
					if err != nil {
						t.Fatal(err)
					}
					lopt = optim.NewAdamW(figureAdamW, a.Params())
					adapterParams = a.Params()
					loraBase = base
				}
				tps, err := figureTrain(m, lopt, b, r.Batch, r.Seq, 2, profiling)
				if err != nil {
					t.Fatalf("%s %s: %v", name, r.Key, err)
				}
				say("%-12s LoRA r=8      %s batch %dx%d  N=%.0fM  %8.0f tokens/s%s (6N convention)%s", name, r.Mode, r.Batch, r.Seq, float64(n)/1e6, tps, mfu(n, tps, r.Mode), fig(r.Key, tps))
			default:
				t.Fatalf("figure row %q: unknown kind %q", r.Key, r.Kind)
			}
			if err := b.Err(); err != nil {
				t.Fatalf("%s %s: a device error sent ops to the CPU: %v", name, r.Key, err)
			}
		}
		setMode("fp32")
		// Give the preset's device memory back for the next one.
		if lopt != nil {
			lopt.Release()
		}
		if full != nil {
			full.Release()
		}
		freeModel(b, m, adapterParams)
	}
}

// freeModel frees m's device tensors (weights, gradients, adapters) and
// the backend's copies of its storage-only weights.
func freeModel(b *Backend, m *model.Transformer, adapter []*autograd.Param) {
	for _, p := range append(m.ParamList(), adapter...) {
		tensor.Free(p.Value)
		if p.Grad != nil {
			tensor.Free(p.Grad)
		}
	}
	b.DropWeights()
}

// quantizeOnHost holds m's projection weights in bf16, as sft --quant
// bf16 does: weights already on the device come back to the host first.
func quantizeOnHost(m *model.Transformer) error {
	for _, p := range m.ParamList() {
		tensor.ToHost(p.Value)
	}
	_, err := m.Quantize(tensor.BF16)
	return err
}

var figureAdamW = optim.AdamWConfig{LR: 1e-4, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}

// figureTrain times steps training steps of m (after one warm-up) with
// opt, which holds the trained parameters, and returns tokens/s. With
// profile set it then runs one more step under the backend's profile and
// prints where the device time went.
func figureTrain(m *model.Transformer, opt *optim.AdamW, b *Backend, batch, seq, steps int, profile bool) (float64, error) {
	f := train.NewFixed(m, b, opt, batch, seq, 1e-4, nil)
	defer f.Release()
	step := f.Step
	if err := step(); err != nil {
		return 0, err
	}
	start := time.Now()
	for range steps {
		if err := step(); err != nil {
			return 0, err
		}
	}
	tps := float64(batch*seq*steps) / time.Since(start).Seconds()
	if profile {
		b.SetProfile(true)
		t0 := time.Now()
		err := step()
		wall := time.Since(t0)
		entries := b.Profile()
		b.SetProfile(false)
		if err != nil {
			return 0, err
		}
		printProfile(entries, wall, 14)
	}
	return tps, nil
}

// printProfile prints the longest entries of a profiled step and the
// share of the step's wall time the device work took.
func printProfile(entries []ProfileEntry, wall time.Duration, top int) {
	var sum time.Duration
	calls := 0
	for _, e := range entries {
		sum += e.Time
		calls += e.Calls
	}
	fmt.Printf("  profile: %d launches and products, %.1f ms of %.1f ms wall (profiled, so serialised)\n", calls, float64(sum)/1e6, float64(wall)/1e6)
	for i, e := range entries {
		if i == top {
			break
		}
		fmt.Printf("  %6.2f ms %5.1f%% %5dx  %s\n", float64(e.Time)/1e6, 100*float64(e.Time)/float64(max(sum, 1)), e.Calls, e.Name)
	}
}

// figureGenerate times greedy decoding of ntok tokens at batch 1.
func figureGenerate(m *model.Transformer, b tensor.Backend, ntok int) (float64, error) {
	g := generate.New(m, b, nil)
	req := generate.Request{Prompts: [][]int32{{1, 2, 3, 4}}, MaxTokens: 2}
	if _, err := g.Generate(context.Background(), req); err != nil {
		return 0, err
	}
	req.MaxTokens = ntok
	res, err := g.Generate(context.Background(), req)
	if err != nil {
		return 0, err
	}
	return res.TokensPerSecond(), nil
}
