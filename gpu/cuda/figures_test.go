//go:build linux && !android

package cuda

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

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

// TestDeviceFigures measures training and generation speed on the device
// for tools/gpu-check.sh (which sets LLMLAB_CUDA_BENCH=1): full fine-tune
// and LoRA steps in tokens/s with model FLOPs utilisation (6·N·tokens/s
// over the device's peak), and greedy generation in tokens/s, for the
// presets in LLMLAB_CUDA_BENCH_PRESETS (default gpt2-124m,llama-1b).
func TestDeviceFigures(t *testing.T) {
	if os.Getenv("LLMLAB_CUDA_BENCH") == "" {
		t.Skip("set LLMLAB_CUDA_BENCH=1 to measure (tools/gpu-check.sh does)")
	}
	b := openOrSkip(t)
	presets := "gpt2-124m,llama-1b"
	if p := os.Getenv("LLMLAB_CUDA_BENCH_PRESETS"); p != "" {
		presets = p
	}
	peak, known := peakOf(b.Name())
	var summary []string
	say := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		summary = append(summary, line)
		fmt.Println(line)
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
	for _, name := range strings.Split(presets, ",") {
		arch := model.Llama
		if strings.HasPrefix(name, "gpt2") {
			arch = model.GPT2
		}
		cfg, err := model.Preset(arch, name)
		if err != nil {
			t.Fatal(err)
		}
		batch, seq := 4, min(256, cfg.MaxPos)
		if cfg.Hidden >= 2048 {
			batch = 2
		}
		// One model per preset (initialising llama-1b takes a while):
		// generation first, then full fine-tuning in fp32 and tf32, then
		// LoRA adapters on the same model.
		m, err := model.New(cfg, 1)
		if err != nil {
			t.Fatal(err)
		}
		n := m.NumParams()
		// peak reports the device memory device tensors held at most
		// since the last call: the weights, gradients, moments, arena
		// and KV cache of the figure just measured (not cuBLAS's
		// workspace or the op's scratch buffers).
		b.ResetPeak()
		// fig records one figure: a "figure PRESET KEY TOKENS/S PEAK_GIB"
		// line (tools/gpu-check.sh divides it by the PyTorch anchor's
		// line of the same key) and the peak for the readable line.
		fig := func(key string, tps float64) string {
			st := b.Stats()
			b.ResetPeak()
			g := float64(st.PeakBytes) / (1 << 30)
			line := fmt.Sprintf("figure %s %s %.1f %.3f", name, key, tps, g)
			summary = append(summary, line)
			fmt.Println(line)
			return fmt.Sprintf("  peak %.2f GiB", g)
		}
		tps, err := figureGenerate(m, b, 16)
		if err != nil {
			t.Fatalf("%s generate: %v", name, err)
		}
		say("%-10s generate batch 1, 16 tokens  %8.1f tokens/s%s", name, tps, fig("generate", tps))
		full := optim.NewAdamW(figureAdamW, m.ParamList())
		for _, mode := range []string{"fp32", "tf32", "bf16"} {
			setMode(mode)
			tps, err := figureTrain(m, full, b, batch, seq, 2)
			if err != nil {
				t.Fatalf("%s full fine-tune: %v", name, err)
			}
			say("%-10s full fine-tune %s batch %dx%d  N=%.0fM  %8.0f tokens/s%s%s", name, mode, batch, seq, float64(n)/1e6, tps, mfu(n, tps, mode), fig("full-"+mode, tps))
		}
		setMode("fp32")
		targets := []string{"q_proj", "v_proj"}
		if cfg.Arch == model.GPT2 {
			targets = []string{"c_attn"}
		}
		a, err := lora.Apply(m, lora.Config{Rank: 8, Alpha: 16, Targets: targets, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		lopt := optim.NewAdamW(figureAdamW, a.Params())
		for _, mode := range []string{"fp32", "bf16"} {
			setMode(mode)
			tps, err = figureTrain(m, lopt, b, batch, seq, 2)
			if err != nil {
				t.Fatalf("%s lora: %v", name, err)
			}
			say("%-10s LoRA r=8      %s batch %dx%d  N=%.0fM  %8.0f tokens/s%s (6N convention)%s", name, mode, batch, seq, float64(n)/1e6, tps, mfu(n, tps, mode), fig("lora-"+mode, tps))
		}
		setMode("fp32")
		if err := b.Err(); err != nil {
			t.Fatalf("a device error sent ops to the CPU: %v", err)
		}
	}
	if out := os.Getenv("LLMLAB_CUDA_BENCH_OUT"); out != "" {
		os.WriteFile(out, []byte(strings.Join(summary, "\n")+"\n"), 0o644)
	}
}

var figureAdamW = optim.AdamWConfig{LR: 1e-4, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}

// figureTrain times steps training steps of m (after one warm-up) with
// opt, which holds the trained parameters, and returns tokens/s.
func figureTrain(m *model.Transformer, opt *optim.AdamW, b tensor.Backend, batch, seq, steps int) (float64, error) {
	step := train.FixedStep(m, b, opt, batch, seq, 1e-4, nil)
	if err := step(); err != nil {
		return 0, err
	}
	start := time.Now()
	for range steps {
		if err := step(); err != nil {
			return 0, err
		}
	}
	return float64(batch*seq*steps) / time.Since(start).Seconds(), nil
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
