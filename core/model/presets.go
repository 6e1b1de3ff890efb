package model

import (
	"fmt"
	"sort"
	"strings"
)

// Preset returns a named model shape for `llmlab init` and benchmarks.
// The tokenizer decides the real vocabulary size; the presets carry the
// sizes the originals use. A family preset (llama3.2-1b, qwen3-0.6b,
// gemma3-270m, ...) keeps its family for arch llama; for arch gpt2 only
// its shape is kept.
func Preset(arch Arch, name string) (Config, error) {
	p, ok := presets()[name]
	if !ok {
		return Config{}, fmt.Errorf("unknown preset %q (known: %s)", name, strings.Join(PresetNames(), ", "))
	}
	c := p
	if c.Arch != arch {
		// The shape is kept; the family changes. GPT-2 has no GQA.
		base := Config{Arch: arch, VocabSize: c.VocabSize, Hidden: c.Hidden, Layers: c.Layers, Heads: c.Heads,
			KVHeads: c.KVHeads, Intermediate: c.Intermediate, MaxPos: c.MaxPos, BOS: -1, EOS: -1}
		c = base
		if arch == GPT2 {
			c.ModelType, c.KVHeads, c.Intermediate = "gpt2", c.Heads, 4*c.Hidden
			c.AttentionBias, c.OutputBias, c.TieEmbeddings, c.NormEps, c.Activation = true, true, true, 1e-5, "gelu_new"
		} else {
			c.ModelType, c.Activation = "llama", "silu"
			c.RopeTheta, c.NormEps = 10000, 1e-5
		}
	}
	if c.HeadDim == 0 || c.Arch == GPT2 {
		c.HeadDim = c.Hidden / c.Heads
	}
	return c, c.Validate()
}

// PresetNames lists the presets in order.
func PresetNames() []string {
	var names []string
	for n := range presets() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func presets() map[string]Config {
	llama := func(v, c, l, h, kv, inter, pos int, tie bool) Config {
		return Config{Arch: Llama, ModelType: "llama", VocabSize: v, Hidden: c, Layers: l, Heads: h, KVHeads: kv,
			Intermediate: inter, MaxPos: pos, NormEps: 1e-5, RopeTheta: 10000, TieEmbeddings: tie,
			Activation: "silu", BOS: -1, EOS: -1}
	}
	gpt2 := func(v, c, l, h, pos int) Config {
		return Config{Arch: GPT2, ModelType: "gpt2", VocabSize: v, Hidden: c, Layers: l, Heads: h, KVHeads: h,
			Intermediate: 4 * c, MaxPos: pos, NormEps: 1e-5, TieEmbeddings: true, AttentionBias: true,
			OutputBias: true, Activation: "gelu_new", BOS: -1, EOS: -1}
	}
	// Llama 3.2: llama3 rope scaling from an 8k trained length.
	llama32 := func(c, l, h, d int) Config {
		x := llama(128256, c, l, h, 8, 8192, 131072, true)
		x.HeadDim, x.RopeTheta = d, 500000
		x.Rope = RopeScaling{Kind: RopeLlama3, Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OrigMaxPos: 8192}
		return x
	}
	qwen3 := func(c, l, inter int) Config {
		x := llama(151936, c, l, 16, 8, inter, 40960, true)
		x.ModelType, x.HeadDim, x.RopeTheta, x.NormEps = "qwen3", 128, 1000000, 1e-6
		return x
	}
	// Gemma 3: five windowed (512) layers to one global, 256-wide heads.
	gemma3 := func(c, l, inter int) Config {
		x := llama(262144, c, l, 4, 1, inter, 32768, true)
		x.ModelType, x.HeadDim, x.Activation, x.NormEps = "gemma3_text", 256, "gelu_pytorch_tanh", 1e-6
		x.RopeTheta, x.RopeLocalTheta, x.QueryPreAttnScalar, x.SlidingWindow = 1000000, 10000, 256, 512
		x.Sliding = make([]bool, l)
		for i := range x.Sliding {
			x.Sliding[i] = (i+1)%6 != 0
		}
		return x
	}
	// Phi-4-mini: fused projections, RoPE on 3/4 of each head, longrope
	// from a 4k trained length. The factors here are all 1 (the shape's,
	// not the released model's, which a loaded config.json supplies).
	phi4 := func() Config {
		x := llama(200064, 3072, 32, 24, 8, 8192, 131072, true)
		x.ModelType, x.PartialRotary, x.SlidingWindow = "phi3", 0.75, 262144
		ones := make([]float64, 48)
		for i := range ones {
			ones[i] = 1
		}
		x.Rope = RopeScaling{Kind: RopeLongRoPE, OrigMaxPos: 4096, ShortFactor: ones, LongFactor: ones}
		x.HeadDim = 128
		return x
	}
	smollm3 := func() Config {
		x := llama(128256, 2048, 36, 16, 4, 11008, 65536, true)
		x.ModelType, x.RopeTheta, x.NormEps = "smollm3", 5000000, 1e-6
		x.NoRope = make([]bool, 36)
		for i := range x.NoRope {
			x.NoRope[i] = (i+1)%4 == 0
		}
		return x
	}
	smollm2 := func(c, l, h, kv, inter int) Config {
		x := llama(49152, c, l, h, kv, inter, 8192, true)
		x.RopeTheta = 100000
		return x
	}
	return map[string]Config{
		"tiny":         llama(512, 128, 4, 4, 4, 352, 128, true),
		"stories15m":   llama(32000, 288, 6, 6, 6, 768, 256, true),
		"gpt2-124m":    gpt2(50257, 768, 12, 12, 1024),
		"smollm-135m":  llama(49152, 576, 30, 9, 3, 1536, 2048, true),
		"llama-1b":     llama(128256, 2048, 16, 32, 8, 8192, 2048, true),
		"llama3.2-1b":  llama32(2048, 16, 32, 64),
		"llama3.2-3b":  llama32(3072, 28, 24, 128),
		"qwen3-0.6b":   qwen3(1024, 28, 3072),
		"qwen3-1.7b":   qwen3(2048, 28, 6144),
		"gemma3-270m":  gemma3(640, 18, 2048),
		"gemma3-1b":    gemma3(1152, 26, 6912),
		"phi4-mini":    phi4(),
		"smollm2-135m": smollm2(576, 30, 9, 3, 1536),
		"smollm2-360m": smollm2(960, 32, 15, 5, 2560),
		"smollm3-3b":   smollm3(),
		"llama-88m":    llama(32000, 768, 9, 12, 12, 2048, 1024, true),
	}
}
