package model

import (
	"fmt"
	"math"
	"strings"

	"llmlab/core/checkpoint"
	"llmlab/core/tensor"
)

// Vocab is what a GGUF file needs of the tokenizer (llama.cpp's "gpt2"
// BPE model): the token strings in id order, their types (1 normal, 3
// control), the merges as "a b" and the special ids (-1: none).
type Vocab struct {
	Tokens       []string
	Types        []int32
	Merges       []string
	BOS, EOS     int32
	PAD          int32
	ChatTemplate string
}

// ggufArch is the llama.cpp architecture of the model (Mistral's dense
// models are llama there).
func (c Config) ggufArch() string {
	switch {
	case c.Arch == GPT2:
		return "gpt2"
	case c.ModelType == "gemma3_text":
		return "gemma3"
	case c.ModelType == "qwen2", c.ModelType == "qwen3", c.ModelType == "gemma2", c.ModelType == "phi3", c.ModelType == "smollm3":
		return c.ModelType
	}
	return "llama"
}

// ggufPermutes reports whether llama.cpp runs the architecture with
// interleaved ("normal") RoPE, so HF's q/k rows are permuted on export;
// the others run rotate-half ("neox") RoPE as HF does.
func ggufPermutes(arch string) bool { return arch == "llama" || arch == "smollm3" }

// permuteQK reorders the rows of a q or k projection (heads·D, in) from
// HF's rotate-half RoPE layout to GGUF's interleaved one, as llama.cpp's
// converter does: row h·D + s·D/2 + i moves to h·D + 2i + s. inverse undoes it.
func permuteQK(w *tensor.Tensor, heads int, inverse bool) *tensor.Tensor {
	w = w.Host() // a copy when it lives on a device (exporting a model trained there)
	rows, cols := w.Shape[0], w.Shape[1]
	D := rows / heads
	out := tensor.NewOf(w.DType, rows, cols)
	for h := 0; h < heads; h++ {
		for s := 0; s < 2; s++ {
			for i := 0; i < D/2; i++ {
				hf, gg := h*D+s*D/2+i, h*D+2*i+s
				src, dst := hf, gg
				if inverse {
					src, dst = gg, hf
				}
				if w.DType == tensor.F32 {
					copy(out.F32[dst*cols:(dst+1)*cols], w.F32[src*cols:(src+1)*cols])
				} else {
					copy(out.Half[dst*cols:(dst+1)*cols], w.Half[src*cols:(src+1)*cols])
				}
			}
		}
	}
	return out
}

// gpt2GGUFTopNames and gpt2GGUFLayerNames map GPT-2's HF names (without
// "transformer.", and under h.N.) to llama.cpp's "gpt2" tensor names. The
// matrices are (out, in) in both: the model keeps nn.Linear's layout, and
// HF's Conv1D transpose happens only at the safetensors edge.
var (
	gpt2GGUFTopNames = map[string]string{
		"wte.weight": "token_embd.weight", "wpe.weight": "position_embd.weight",
		"ln_f.weight": "output_norm.weight", "ln_f.bias": "output_norm.bias", "lm_head.weight": "output.weight",
	}
	gpt2GGUFLayerNames = map[string]string{
		"ln_1.weight": "attn_norm.weight", "ln_1.bias": "attn_norm.bias",
		"attn.c_attn.weight": "attn_qkv.weight", "attn.c_attn.bias": "attn_qkv.bias",
		"attn.c_proj.weight": "attn_output.weight", "attn.c_proj.bias": "attn_output.bias",
		"ln_2.weight": "ffn_norm.weight", "ln_2.bias": "ffn_norm.bias",
		"mlp.c_fc.weight": "ffn_up.weight", "mlp.c_fc.bias": "ffn_up.bias",
		"mlp.c_proj.weight": "ffn_down.weight", "mlp.c_proj.bias": "ffn_down.bias",
	}
)

// ggufName maps an HF parameter name to its GGUF tensor name.
func ggufName(c Config, hf string) (string, bool) {
	if c.Arch == GPT2 {
		hf = strings.TrimPrefix(hf, "transformer.")
		if n, ok := gpt2GGUFTopNames[hf]; ok {
			return n, true
		}
		var l int
		var rest string
		if n, _ := fmt.Sscanf(hf, "h.%d.%s", &l, &rest); n != 2 {
			return "", false
		}
		m := gpt2GGUFLayerNames[rest]
		return fmt.Sprintf("blk.%d.%s", l, m), m != ""
	}
	switch hf {
	case "model.embed_tokens.weight":
		return "token_embd.weight", true
	case "model.norm.weight":
		return "output_norm.weight", true
	case "lm_head.weight":
		return "output.weight", true
	}
	var l int
	var rest string
	if n, _ := fmt.Sscanf(hf, "model.layers.%d.%s", &l, &rest); n != 2 {
		return "", false
	}
	if rest == "post_attention_layernorm.weight" && c.ggufArch() != "gemma2" && c.ggufArch() != "gemma3" {
		return fmt.Sprintf("blk.%d.ffn_norm.weight", l), true // the norm before the MLP
	}
	m := map[string]string{
		"input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "post_attention_norm.weight",
		"pre_feedforward_layernorm.weight": "ffn_norm.weight", "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
		"self_attn.q_norm.weight": "attn_q_norm.weight", "self_attn.k_norm.weight": "attn_k_norm.weight",
		"self_attn.qkv_proj.weight": "attn_qkv.weight", "mlp.gate_up_proj.weight": "ffn_up.weight",
		"self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
		"self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
		"self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias",
		"self_attn.v_proj.bias": "attn_v.bias", "self_attn.o_proj.bias": "attn_output.bias",
		"mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight",
	}[rest]
	return fmt.Sprintf("blk.%d.%s", l, m), m != ""
}

// GGUF converts the model and its vocabulary to a GGUF file for llama.cpp
// and ollama: matrices in dt (F32 or F16), norms and biases in F32, HF
// Llama's q/k rows permuted for GGUF's RoPE layout.
func (m *Transformer) GGUF(v Vocab, name string, dt tensor.DType) (*checkpoint.GGUFFile, error) {
	if dt != tensor.F32 && dt != tensor.F16 {
		return nil, fmt.Errorf("gguf: dtype %v (want F32 or F16)", dt)
	}
	c := m.Cfg
	arch := c.ggufArch()
	if err := ggufSupported(c, arch); err != nil {
		return nil, err
	}
	if len(v.Tokens) > c.VocabSize {
		return nil, fmt.Errorf("gguf: %d tokens for a vocabulary of %d", len(v.Tokens), c.VocabSize)
	}
	tokens, types := append([]string(nil), v.Tokens...), append([]int32(nil), v.Types...)
	for len(tokens) < c.VocabSize { // llama.cpp wants one entry per embedding row
		tokens = append(tokens, fmt.Sprintf("[PAD%d]", len(tokens)))
		types = append(types, 5) // unused
	}
	ft := uint32(0)
	if dt == tensor.F16 {
		ft = 1
	}
	kv := map[string]any{
		"general.architecture": arch, "general.name": ggufModelName(name, tokens), "general.file_type": ft,
		"general.alignment":      uint32(32),
		arch + ".context_length": uint32(c.MaxPos), arch + ".embedding_length": uint32(c.Hidden),
		arch + ".block_count": uint32(c.Layers), arch + ".feed_forward_length": uint32(c.Intermediate),
		arch + ".attention.head_count": uint32(c.Heads),
		"tokenizer.ggml.model":         "gpt2", "tokenizer.ggml.pre": "gpt-2",
		"tokenizer.ggml.tokens": tokens, "tokenizer.ggml.token_type": types, "tokenizer.ggml.merges": v.Merges,
	}
	if c.Arch == GPT2 {
		kv[arch+".attention.layer_norm_epsilon"] = c.NormEps
	} else {
		kv[arch+".attention.head_count_kv"] = uint32(c.KVHeads)
		kv[arch+".attention.layer_norm_rms_epsilon"] = c.NormEps
		kv[arch+".rope.freq_base"] = float32(c.RopeTheta)
		kv[arch+".rope.dimension_count"] = uint32(c.RotaryDim())
		kv[arch+".vocab_size"] = uint32(c.VocabSize)
		kv[arch+".attention.key_length"] = uint32(c.HeadDim)
		kv[arch+".attention.value_length"] = uint32(c.HeadDim)
		if c.SlidingWindow > 0 {
			kv[arch+".attention.sliding_window"] = uint32(c.SlidingWindow)
		}
		if c.AttnSoftcap > 0 {
			kv[arch+".attn_logit_softcapping"] = float32(c.AttnSoftcap)
		}
		if c.FinalSoftcap > 0 {
			kv[arch+".final_logit_softcapping"] = float32(c.FinalSoftcap)
		}
	}
	extra := ggufRope(c, kv, arch)
	for key, id := range map[string]int32{"tokenizer.ggml.bos_token_id": v.BOS, "tokenizer.ggml.eos_token_id": v.EOS, "tokenizer.ggml.padding_token_id": v.PAD} {
		if id >= 0 {
			kv[key] = uint32(id)
		}
	}
	if v.ChatTemplate != "" {
		kv["tokenizer.chat_template"] = v.ChatTemplate
	}
	f := &checkpoint.GGUFFile{KV: kv}
	for _, p := range m.params {
		gn, ok := ggufName(c, p.Name)
		if !ok {
			return nil, fmt.Errorf("gguf: no GGUF name for tensor %q", p.Name)
		}
		t := p.Value
		if m.fam.norm == normRMSOffset && len(t.Shape) == 1 {
			t = offsetOne(t) // llama.cpp's Gemma norms multiply by the stored weight
		}
		if ggufPermutes(arch) {
			if strings.HasSuffix(p.Name, "q_proj.weight") {
				t = permuteQK(t, c.Heads, false)
			} else if strings.HasSuffix(p.Name, "k_proj.weight") {
				t = permuteQK(t, c.KVHeads, false)
			}
		}
		want := dt
		if len(t.Shape) == 1 {
			want = tensor.F32
		}
		if t.DType != want {
			t = t.Convert(want)
		}
		f.Tensors = append(f.Tensors, checkpoint.Named{Name: gn, T: t})
	}
	f.Tensors = append(f.Tensors, extra...)
	return f, nil
}

// ggufModelName returns the general.name to write. llama.cpp gives Phi-3's
// own tokens (<unk>, <s>, </s>, <|endoftext|>) special attributes when the
// name contains "phi3" or "phi-3", and fails to load a file whose
// vocabulary lacks one of them (a Phi-3 retrained with another tokenizer),
// so there such a name is written with "phi 3".
func ggufModelName(name string, tokens []string) string {
	lower := strings.ToLower(name)
	if !strings.Contains(lower, "phi3") && !strings.Contains(lower, "phi-3") {
		return name
	}
	have := map[string]bool{}
	for _, t := range tokens {
		have[t] = true
	}
	if have["<unk>"] && have["<s>"] && have["</s>"] && have["<|endoftext|>"] {
		return name
	}
	var b strings.Builder
	for i := 0; i < len(name); {
		l := strings.ToLower(name[i:])
		switch {
		case strings.HasPrefix(l, "phi3"):
			b.WriteString(name[i:i+3] + " 3")
			i += 4
		case strings.HasPrefix(l, "phi-3"):
			b.WriteString(name[i:i+3] + " 3")
			i += 5
		default:
			b.WriteByte(name[i])
			i++
		}
	}
	return b.String()
}

// ggufSupported reports what llama.cpp would compute differently from the
// model, for settings it fixes per architecture rather than reading from
// the file: SmolLM3 skips RoPE on every fourth layer, and Gemma 2 and 3
// scale attention by head_dim^-1/2 (hidden/heads for the 27B shapes), not
// by query_pre_attn_scalar.
func ggufSupported(c Config, arch string) error {
	switch arch {
	case "smollm3":
		for i, no := range c.NoRope {
			if no != ((i+1)%4 == 0) {
				return fmt.Errorf("gguf: llama.cpp runs SmolLM3 without RoPE on every fourth layer only; this model's layer %d %s RoPE (no_rope_layers)", i, map[bool]string{true: "skips", false: "applies"}[no])
			}
		}
	case "gemma2", "gemma3":
		want := float64(c.HeadDim)
		if (arch == "gemma2" && c.Layers == 46) || (arch == "gemma3" && c.Layers == 62) { // the 27B shapes
			want = float64(c.Hidden / c.Heads)
		}
		if c.QueryPreAttnScalar != want {
			return fmt.Errorf("gguf: llama.cpp scales %s attention by %g^-1/2 for this shape; this model's query_pre_attn_scalar is %g", arch, want, c.QueryPreAttnScalar)
		}
	}
	return nil
}

// GGUFCaveats lists where llama.cpp will run the exported file differently
// from the model without the file being able to say otherwise: of these
// architectures only Gemma's have sliding windows there (Mistral runs as
// llama; Qwen's and Phi-3's windows are not applied), so elsewhere
// windowed layers attend to every earlier token.
func (c Config) GGUFCaveats() []string {
	arch := c.ggufArch()
	if arch == "gemma2" || arch == "gemma3" || c.Arch == GPT2 {
		return nil
	}
	for l := range c.Layers {
		if w := c.Window(l); w > 0 {
			return []string{fmt.Sprintf("llama.cpp runs %s (architecture %s) without its sliding window of %d tokens: past it, its outputs differ from this model's", c.ModelType, arch, w)}
		}
	}
	return nil
}

// offsetOne returns 1 + w in F32 (Gemma's (1+w) norms, as llama.cpp's
// converter writes them).
func offsetOne(w *tensor.Tensor) *tensor.Tensor {
	out := w.Convert(tensor.F32)
	if out == w {
		out = w.Clone()
	}
	for i := range out.F32 {
		out.F32[i]++
	}
	return out
}

// ggufRope writes the RoPE scaling as llama.cpp reads it: metadata keys
// for linear and YaRN scaling; for Llama 3's band-wise scaling the
// per-frequency divisors as the tensor rope_freqs.weight; for longrope the
// short and long factors as rope_factors_short/long.weight with the
// attention factor and trained length. It returns the extra tensors.
func ggufRope(c Config, kv map[string]any, arch string) []checkpoint.Named {
	r := c.Rope
	switch r.Kind {
	case RopeLinear:
		kv[arch+".rope.scaling.type"] = "linear"
		kv[arch+".rope.scaling.factor"] = float32(r.Factor)
	case RopeYaRN:
		kv[arch+".rope.scaling.type"] = "yarn"
		kv[arch+".rope.scaling.factor"] = float32(r.Factor)
		if r.OrigMaxPos > 0 {
			kv[arch+".rope.scaling.original_context_length"] = uint32(r.OrigMaxPos)
		}
		// llama.cpp's YaRN multiplies the attention factor by
		// 1 + 0.1·ln(factor) itself: the file holds what is left of it.
		_, attn := yarnFreqs(c)
		kv[arch+".rope.scaling.attn_factor"] = attn / float32(0.1*math.Log(r.Factor)+1)
	case RopeLlama3:
		base := defaultInvFreq(c.RopeTheta, c.RotaryDim())
		scaled, _ := ropeFreqs(c, 0)
		div := tensor.New(len(base))
		for i := range base {
			div.F32[i] = base[i] / scaled[i]
		}
		return []checkpoint.Named{{Name: "rope_freqs.weight", T: div}}
	case RopeLongRoPE:
		_, attn := ropeFreqs(c, 0)
		kv[arch+".rope.scaling.attn_factor"] = attn
		kv[arch+".rope.scaling.original_context_length"] = uint32(longropeOrig(c))
		long, short := tensor.New(len(r.LongFactor)), tensor.New(len(r.ShortFactor))
		for i := range r.LongFactor {
			long.F32[i], short.F32[i] = float32(r.LongFactor[i]), float32(r.ShortFactor[i])
		}
		return []checkpoint.Named{{Name: "rope_factors_long.weight", T: long}, {Name: "rope_factors_short.weight", T: short}}
	}
	return nil
}

// FromGGUF rebuilds a Llama-family model from a GGUF file that GGUF wrote
// (used to check exports in memory; files on disk, GPT-2 ones included,
// are read by LoadGGUF). GPT-2 images are not rebuilt here.
func FromGGUF(f *checkpoint.GGUFFile) (*Transformer, error) {
	arch, _ := f.KV["general.architecture"].(string)
	if arch != "llama" && arch != "qwen2" {
		return nil, fmt.Errorf("gguf: reading architecture %q back is not supported", arch)
	}
	u := func(k string) int { v, _ := f.KV[arch+"."+k].(uint32); return int(v) }
	c := Config{Arch: Llama, ModelType: arch, Hidden: u("embedding_length"), Layers: u("block_count"),
		Heads: u("attention.head_count"), KVHeads: u("attention.head_count_kv"), Intermediate: u("feed_forward_length"),
		MaxPos: u("context_length"), VocabSize: u("vocab_size"), BOS: -1, EOS: -1, Activation: "silu"}
	c.NormEps, _ = f.KV[arch+".attention.layer_norm_rms_epsilon"].(float32)
	theta, _ := f.KV[arch+".rope.freq_base"].(float32)
	c.RopeTheta = float64(theta)
	c.HeadDim = u("rope.dimension_count")
	byName := map[string]*tensor.Tensor{}
	for _, t := range f.Tensors {
		byName[t.Name] = t.T
	}
	_, hasOut := byName["output.weight"]
	c.TieEmbeddings = !hasOut
	_, c.AttentionBias = byName["blk.0.attn_q.bias"]
	if err := c.Validate(); err != nil {
		return nil, err
	}
	m := newShell(c, false)
	for _, p := range m.params {
		gn, _ := ggufName(c, p.Name)
		t, ok := byName[gn]
		if !ok {
			return nil, fmt.Errorf("gguf: missing tensor %q", gn)
		}
		if !t.Shape.Equal(p.Value.Shape) {
			return nil, fmt.Errorf("gguf: tensor %q has shape %v, want %v", gn, t.Shape, p.Value.Shape)
		}
		if arch == "llama" {
			if strings.HasSuffix(p.Name, "q_proj.weight") {
				t = permuteQK(t, c.Heads, true)
			} else if strings.HasSuffix(p.Name, "k_proj.weight") {
				t = permuteQK(t, c.KVHeads, true)
			}
		}
		p.Value = t.Convert(tensor.F32)
	}
	return m, nil
}

// LoRAPair is one LoRA update for GGUFAdapter: the HF module it adapts
// (e.g. model.layers.0.self_attn.q_proj) and its factors A (r, in) and
// B (out, r), so that W' = W + scale·B·A.
type LoRAPair struct {
	Module string
	A, B   *tensor.Tensor
}

// GGUFAdapter writes LoRA updates as a GGUF adapter file, the layout
// llama.cpp's --lora and ollama's ADAPTER read: general.type "adapter",
// adapter.type "lora", adapter.lora.alpha, and for each adapted weight
// <GGUF name>.lora_a (A) and .lora_b (B). llama.cpp scales by alpha/r,
// so alpha is written as scale·r. For Llama, B's rows (the q/k outputs)
// get the same permutation as the base's q/k weights.
func (m *Transformer) GGUFAdapter(pairs []LoRAPair, scale float32, name string, dt tensor.DType) (*checkpoint.GGUFFile, error) {
	if dt != tensor.F32 && dt != tensor.F16 {
		return nil, fmt.Errorf("gguf: dtype %v (want F32 or F16)", dt)
	}
	if len(pairs) == 0 {
		return nil, fmt.Errorf("gguf: an adapter with no LoRA layers")
	}
	c := m.Cfg
	arch := c.ggufArch()
	r := pairs[0].A.Shape[0]
	f := &checkpoint.GGUFFile{KV: map[string]any{
		"general.architecture": arch, "general.type": "adapter", "general.name": name,
		"general.alignment": uint32(32), "adapter.type": "lora", "adapter.lora.alpha": scale * float32(r),
	}}
	for _, p := range pairs {
		if p.A.Shape[0] != r {
			return nil, fmt.Errorf("gguf: %s has rank %d, the adapter %d (llama.cpp takes one rank per file)", p.Module, p.A.Shape[0], r)
		}
		gn, ok := ggufName(c, p.Module+".weight")
		if !ok {
			return nil, fmt.Errorf("gguf: no GGUF name for module %q", p.Module)
		}
		b := p.B
		if ggufPermutes(arch) {
			if strings.HasSuffix(p.Module, "q_proj") {
				b = permuteQK(b, c.Heads, false)
			} else if strings.HasSuffix(p.Module, "k_proj") {
				b = permuteQK(b, c.KVHeads, false)
			}
		}
		f.Tensors = append(f.Tensors,
			checkpoint.Named{Name: gn + ".lora_a", T: p.A.Convert(dt)},
			checkpoint.Named{Name: gn + ".lora_b", T: b.Convert(dt)})
	}
	return f, nil
}
