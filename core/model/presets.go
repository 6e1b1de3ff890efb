package model

import (
	"fmt"
	"sort"
	"strings"
)

// Preset returns a named model shape for `llmlab init` and benchmarks.
// The tokenizer decides the real vocabulary size; the presets carry the
// sizes the originals use.
func Preset(arch Arch, name string) (Config, error) {
	p, ok := presets()[name]
	if !ok {
		return Config{}, fmt.Errorf("unknown preset %q (known: %s)", name, strings.Join(PresetNames(), ", "))
	}
	c := p
	if c.Arch != arch {
		// The shape is kept; the family changes. GPT-2 has no GQA.
		c.Arch = arch
		if arch == GPT2 {
			c.ModelType, c.KVHeads, c.Intermediate = "gpt2", c.Heads, 4*c.Hidden
			c.AttentionBias, c.OutputBias, c.TieEmbeddings, c.NormEps, c.Activation = true, true, true, 1e-5, "gelu_new"
		} else {
			c.ModelType, c.AttentionBias, c.OutputBias, c.Activation = "llama", false, false, "silu"
			c.RopeTheta, c.NormEps = 10000, 1e-5
		}
	}
	c.HeadDim = c.Hidden / c.Heads
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
	return map[string]Config{
		"tiny":        llama(512, 128, 4, 4, 4, 352, 128, true),
		"stories15m":  llama(32000, 288, 6, 6, 6, 768, 256, true),
		"gpt2-124m":   gpt2(50257, 768, 12, 12, 1024),
		"smollm-135m": llama(49152, 576, 30, 9, 3, 1536, 2048, true),
		// 88.3M parameters: a small Llama for serving figures.
		"llama-88m": llama(32000, 768, 9, 12, 12, 2048, 1024, true),
		"llama-1b":  llama(128256, 2048, 16, 32, 8, 8192, 2048, true),
	}
}
