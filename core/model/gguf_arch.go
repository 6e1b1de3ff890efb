package model

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"llmlab/core/checkpoint"
	"llmlab/core/tensor"
)

// Reading a GGUF file as a model. A GGUF architecture maps to an HF family
// through ggufArchs: the HF model_type, the config keys that differ, the
// tensor names that differ, and the quirks of llama.cpp's converter to
// undo. The metadata becomes an HF config.json (ParseConfig validates it as
// for a folder) and the tensors are renamed to HF names, so a GGUF file
// loads through the same path (fromTensors) as a safetensors folder. A new
// family needs one entry here.

// ggufArch is what llmlab needs to know of one llama.cpp architecture.
// Whether llama.cpp's converter permuted the q/k rows (for its
// interleaved RoPE) is ggufPermutes, shared with the exporter.
type ggufArch struct {
	modelType string // HF model_type
	// normPlusOne: the converter stored 1+w for norms that compute x·(1+w)
	// (Gemma); undone on load.
	normPlusOne bool
	// names overrides the per-layer GGUF suffix -> HF suffix table below.
	names map[string]string
}

var gemmaGGUFNames = map[string]string{
	"post_attention_norm.weight": "post_attention_layernorm.weight",
	"ffn_norm.weight":            "pre_feedforward_layernorm.weight",
	"post_ffw_norm.weight":       "post_feedforward_layernorm.weight",
}

var ggufArchs = map[string]ggufArch{
	"llama":   {modelType: "llama"}, // also Mistral's dense models
	"qwen2":   {modelType: "qwen2"},
	"qwen3":   {modelType: "qwen3"},
	"smollm3": {modelType: "smollm3"},
	"phi3": {modelType: "phi3", names: map[string]string{
		"attn_qkv.weight": "self_attn.qkv_proj.weight", "ffn_up.weight": "mlp.gate_up_proj.weight",
	}},
	"gemma2": {modelType: "gemma2", normPlusOne: true, names: gemmaGGUFNames},
	"gemma3": {modelType: "gemma3_text", normPlusOne: true, names: gemmaGGUFNames},
	"gpt2":   {modelType: "gpt2"}, // names: gpt2GGUFTopNames, gpt2GGUFLayerNames (gguf.go), read backwards
}

// ggufLayerNames maps llama.cpp's per-layer tensor suffixes to HF's
// (under model.layers.N.).
var ggufLayerNames = map[string]string{
	"attn_norm.weight":   "input_layernorm.weight",
	"ffn_norm.weight":    "post_attention_layernorm.weight",
	"attn_q.weight":      "self_attn.q_proj.weight",
	"attn_k.weight":      "self_attn.k_proj.weight",
	"attn_v.weight":      "self_attn.v_proj.weight",
	"attn_output.weight": "self_attn.o_proj.weight",
	"attn_q.bias":        "self_attn.q_proj.bias",
	"attn_k.bias":        "self_attn.k_proj.bias",
	"attn_v.bias":        "self_attn.v_proj.bias",
	"attn_output.bias":   "self_attn.o_proj.bias",
	"attn_q_norm.weight": "self_attn.q_norm.weight",
	"attn_k_norm.weight": "self_attn.k_norm.weight",
	"ffn_gate.weight":    "mlp.gate_proj.weight",
	"ffn_up.weight":      "mlp.up_proj.weight",
	"ffn_down.weight":    "mlp.down_proj.weight",
}

var ggufTopNames = map[string]string{
	"token_embd.weight":  "model.embed_tokens.weight",
	"output_norm.weight": "model.norm.weight",
	"output.weight":      "lm_head.weight",
}

// hfName maps a GGUF tensor name to its HF name.
func (a ggufArch) hfName(gg string) (string, bool) {
	if a.modelType == "gpt2" {
		return gpt2HFName(gg)
	}
	if n, ok := ggufTopNames[gg]; ok {
		return n, true
	}
	l, suffix, ok := ggufLayer(gg)
	if !ok {
		return "", false
	}
	n, ok := a.names[suffix]
	if !ok {
		n, ok = ggufLayerNames[suffix]
	}
	return fmt.Sprintf("model.layers.%d.%s", l, n), ok
}

// ggufLayer splits "blk.N.suffix" into N and suffix.
func ggufLayer(gg string) (int, string, bool) {
	rest, ok := strings.CutPrefix(gg, "blk.")
	if !ok {
		return 0, "", false
	}
	ls, suffix, ok := strings.Cut(rest, ".")
	l, err := strconv.Atoi(ls)
	if !ok || err != nil || l < 0 {
		return 0, "", false
	}
	return l, suffix, true
}

// gpt2HFName maps a llama.cpp "gpt2" tensor name to GPT-2's HF name (the
// inverse of ggufName's GPT-2 tables).
func gpt2HFName(gg string) (string, bool) {
	for hf, n := range gpt2GGUFTopNames {
		if n == gg {
			if hf == "lm_head.weight" {
				return hf, true
			}
			return "transformer." + hf, true
		}
	}
	l, suffix, ok := ggufLayer(gg)
	if !ok {
		return "", false
	}
	for hf, n := range gpt2GGUFLayerNames {
		if n == suffix {
			return fmt.Sprintf("transformer.h.%d.%s", l, hf), true
		}
	}
	return "", false
}

// ggufGPT2Config turns llama.cpp's "gpt2" metadata into GPT-2's
// config.json (n_embd, n_layer, ...): LayerNorm with biases, learned
// positions, the tanh GELU.
func ggufGPT2Config(g *checkpoint.GGUF) (Config, error) {
	hf := map[string]any{"model_type": "gpt2", "activation_function": "gelu_new"}
	for _, k := range [][2]string{
		{"n_embd", "embedding_length"}, {"n_layer", "block_count"}, {"n_head", "attention.head_count"},
		{"n_inner", "feed_forward_length"}, {"n_positions", "context_length"},
	} {
		v, ok := g.Uint("gpt2." + k[1])
		if !ok {
			return Config{}, fmt.Errorf("metadata key gpt2.%s is missing or not an integer", k[1])
		}
		hf[k[0]] = v
	}
	if kv, ok := g.Uint("gpt2.attention.head_count_kv"); ok && kv != hf["n_head"].(uint64) {
		return Config{}, fmt.Errorf("gpt2.attention.head_count_kv %d differs from head_count %d (GPT-2 has no grouped-query attention)", kv, hf["n_head"])
	}
	if v, ok := g.Float("gpt2.attention.layer_norm_epsilon"); ok {
		hf["layer_norm_epsilon"] = v
	}
	emb, ok := g.Info("token_embd.weight")
	if !ok || len(emb.Shape) != 2 {
		return Config{}, fmt.Errorf("no 2-D token_embd.weight tensor")
	}
	hf["vocab_size"] = emb.Shape[0]
	_, hasOut := g.Info("output.weight")
	hf["tie_word_embeddings"] = !hasOut
	if v, ok := g.Uint("tokenizer.ggml.bos_token_id"); ok {
		hf["bos_token_id"] = v
	}
	if v, ok := g.Uint("tokenizer.ggml.eos_token_id"); ok {
		hf["eos_token_id"] = v
	}
	js, err := json.Marshal(hf)
	if err != nil {
		return Config{}, err
	}
	c, err := ParseConfig(js)
	if err != nil {
		return c, fmt.Errorf("the gpt2 metadata as an HF config: %w", err)
	}
	return c, nil
}

// ggufHFConfig turns a GGUF file's metadata into the config.json an HF
// folder of the same model would have.
func ggufHFConfig(g *checkpoint.GGUF) (Config, ggufArch, error) {
	arch, _ := g.String("general.architecture")
	a, ok := ggufArchs[arch]
	if !ok {
		names := make([]string, 0, len(ggufArchs))
		for k := range ggufArchs {
			names = append(names, k)
		}
		sort.Strings(names)
		return Config{}, a, fmt.Errorf("general.architecture %q is not supported (llmlab reads %s)", arch, strings.Join(names, ", "))
	}
	if arch == "gpt2" {
		c, err := ggufGPT2Config(g)
		return c, a, err
	}
	hf := map[string]any{"model_type": a.modelType}
	need := func(hfKey, key string) error {
		v, ok := g.Uint(arch + "." + key)
		if !ok {
			return fmt.Errorf("metadata key %s.%s is missing or not an integer", arch, key)
		}
		hf[hfKey] = v
		return nil
	}
	for _, k := range [][2]string{
		{"hidden_size", "embedding_length"}, {"num_hidden_layers", "block_count"},
		{"num_attention_heads", "attention.head_count"}, {"intermediate_size", "feed_forward_length"},
		{"max_position_embeddings", "context_length"},
	} {
		if err := need(k[0], k[1]); err != nil {
			return Config{}, a, err
		}
	}
	opt := func(hfKey, key string) {
		if v, ok := g.Uint(arch + "." + key); ok {
			hf[hfKey] = v
		}
	}
	opt("num_key_value_heads", "attention.head_count_kv")
	opt("head_dim", "attention.key_length")
	opt("sliding_window", "attention.sliding_window")
	if v, ok := g.Float(arch + ".attention.layer_norm_rms_epsilon"); ok {
		hf["rms_norm_eps"] = v
	}
	if v, ok := g.Float(arch + ".rope.freq_base"); ok {
		hf["rope_theta"] = v
	}
	for hfKey, key := range map[string]string{"attn_logit_softcapping": "attn_logit_softcapping", "final_logit_softcapping": "final_logit_softcapping"} {
		if v, ok := g.Float(arch + "." + key); ok {
			hf[hfKey] = v
		}
	}
	kl, hasKL := g.Uint(arch + ".attention.key_length")
	if hasKL && a.normPlusOne {
		hf["query_pre_attn_scalar"] = kl // llama.cpp scales Gemma's scores by key_length^-1/2
	}
	if rd, ok := g.Uint(arch + ".rope.dimension_count"); ok {
		hd := kl
		if !hasKL {
			h, _ := g.Uint(arch + ".embedding_length")
			n, _ := g.Uint(arch + ".attention.head_count")
			hd = h / max(n, 1)
		}
		if rd != hd && hd > 0 {
			hf["partial_rotary_factor"] = float64(rd) / float64(hd)
		}
	}
	emb, ok := g.Info("token_embd.weight")
	if !ok || len(emb.Shape) != 2 {
		return Config{}, a, fmt.Errorf("no 2-D token_embd.weight tensor")
	}
	hf["vocab_size"] = emb.Shape[0]
	_, hasOut := g.Info("output.weight")
	hf["tie_word_embeddings"] = !hasOut
	if _, ok := g.Info("blk.0.attn_output.bias"); ok {
		hf["attention_bias"] = true
	}
	if v, ok := g.Uint("tokenizer.ggml.bos_token_id"); ok {
		hf["bos_token_id"] = v
	}
	if v, ok := g.Uint("tokenizer.ggml.eos_token_id"); ok {
		hf["eos_token_id"] = v
	}
	if err := ggufRopeScaling(g, arch, hf); err != nil {
		return Config{}, a, err
	}
	js, err := json.Marshal(hf)
	if err != nil {
		return Config{}, a, err
	}
	c, err := ParseConfig(js)
	if err != nil {
		return c, a, fmt.Errorf("the %s metadata as an HF config: %w", arch, err)
	}
	return c, a, nil
}

// ggufRopeTensors are tensors that carry RoPE scaling (read into the
// config by ggufRopeScaling), not parameters.
var ggufRopeTensors = map[string]bool{"rope_freqs.weight": true, "rope_factors_long.weight": true, "rope_factors_short.weight": true}

// ggufRopeScaling turns llama.cpp's RoPE scaling back into HF's
// rope_scaling: linear and YaRN from metadata keys; longrope from the
// rope_factors_long/short tensors; Llama 3's band-wise scaling from the
// per-frequency divisors in rope_freqs.weight, which llama.cpp keeps
// instead of the parameters: the factor is the largest divisor and the
// band edges are Llama 3.1's (1, 4, 8192), checked against every divisor.
func ggufRopeScaling(g *checkpoint.GGUF, arch string, hf map[string]any) error {
	rs := map[string]any{}
	orig, hasOrig := g.Uint(arch + ".rope.scaling.original_context_length")
	if hasOrig {
		rs["original_max_position_embeddings"] = orig
	}
	if f, ok := g.Float(arch + ".rope.scaling.attn_factor"); ok {
		rs["attention_factor"] = f
	}
	factor, _ := g.Float(arch + ".rope.scaling.factor")
	floats := func(name string) ([]float64, error) {
		t, err := g.Tensor(name)
		if err != nil {
			return nil, err
		}
		out := make([]float64, t.Numel())
		for i := range out {
			out[i] = float64(t.At(i))
		}
		return out, nil
	}
	switch typ, _ := g.String(arch + ".rope.scaling.type"); {
	case typ == "yarn":
		rs["rope_type"], rs["factor"] = typ, factor
		// llama.cpp multiplies a YaRN file's attention factor by
		// 1 + 0.1·ln(factor) itself (core/model/gguf.go writes it so): HF's
		// attention_factor is the product.
		if f, ok := rs["attention_factor"].(float64); ok && factor > 1 {
			rs["attention_factor"] = f * (0.1*math.Log(factor) + 1)
		}
	case typ == "linear":
		rs["rope_type"], rs["factor"] = typ, factor
	case typ != "" && typ != "none":
		return fmt.Errorf("%s.rope.scaling.type %q is not supported (linear, yarn)", arch, typ)
	}
	if _, ok := g.Info("rope_factors_long.weight"); ok {
		long, err := floats("rope_factors_long.weight")
		if err != nil {
			return err
		}
		short, err := floats("rope_factors_short.weight")
		if err != nil {
			return err
		}
		rs["rope_type"], rs["long_factor"], rs["short_factor"] = "longrope", long, short
		if hasOrig {
			hf["original_max_position_embeddings"] = orig // Phi-3 keeps it at the top level
		}
	}
	if _, ok := g.Info("rope_freqs.weight"); ok {
		div, err := floats("rope_freqs.weight")
		if err != nil {
			return err
		}
		theta, ok := g.Float(arch + ".rope.freq_base")
		if !ok {
			theta = 10000
		}
		o := 8192.0
		if hasOrig {
			o = float64(orig)
		}
		f := llama3Factor(div, theta, o)
		rs["rope_type"], rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"] = "llama3", f, 1.0, 4.0
		if !hasOrig {
			rs["original_max_position_embeddings"] = 8192
		}
		hf["rope_scaling"] = rs
		if err := checkLlama3Divisors(hf, div); err != nil {
			return err
		}
	}
	if rs["rope_type"] != nil {
		hf["rope_scaling"] = rs
	}
	return nil
}

// llama3Factor solves Llama 3's scaling factor from the first divisor
// above 1: a frequency whose wavelength is past the trained length is
// divided by the factor itself, one in the band between by a blend
// 1/((1-s)/factor + s), s its place in the band (frequency factors 1 and
// 4). 1 when no frequency is scaled.
func llama3Factor(div []float64, theta, orig float64) float64 {
	dim := 2 * len(div)
	for i, d := range div {
		if d <= 1+1e-6 {
			continue
		}
		wavelen := 2 * math.Pi * math.Pow(theta, float64(2*i)/float64(dim))
		if wavelen > orig {
			return d
		}
		s := (orig/wavelen - 1) / (4 - 1)
		return (1 - s) / (1/d - s)
	}
	return 1
}

// checkLlama3Divisors checks that the llama3 scaling in hf gives the
// divisors rope_freqs.weight holds.
func checkLlama3Divisors(hf map[string]any, div []float64) error {
	js, err := json.Marshal(hf)
	if err != nil {
		return err
	}
	c, err := ParseConfig(js)
	if err != nil {
		return fmt.Errorf("rope_freqs.weight as llama3 scaling: %w", err)
	}
	base := defaultInvFreq(c.RopeTheta, c.RotaryDim())
	scaled, _ := ropeFreqs(c, 0)
	if len(base) != len(div) {
		return fmt.Errorf("rope_freqs.weight has %d divisors for a rotary dimension of %d", len(div), c.RotaryDim())
	}
	for i := range div {
		if got := float64(base[i] / scaled[i]); math.Abs(got-div[i]) > 1e-3*div[i] {
			return fmt.Errorf("rope_freqs.weight[%d] = %g, but llama3 scaling with factor %g, frequency factors 1 and 4 and a trained length of 8192 gives %g", i, div[i], c.Rope.Factor, got)
		}
	}
	return nil
}

// ggufSource presents a GGUF file's tensors under their HF names, with
// the converter's quirks undone: the TensorSource fromTensors loads.
type ggufSource struct {
	g     *checkpoint.GGUF
	a     ggufArch
	c     Config
	names []string          // HF names, and GGUF names with no HF name
	gg    map[string]string // HF name -> GGUF name
}

func newGGUFSource(g *checkpoint.GGUF, a ggufArch, c Config) *ggufSource {
	s := &ggufSource{g: g, a: a, c: c, gg: map[string]string{}}
	for _, in := range g.Tensors {
		if ggufRopeTensors[in.Name] {
			continue // read into the config
		}
		if hf, ok := a.hfName(in.Name); ok {
			s.gg[hf] = in.Name
			s.names = append(s.names, hf)
		} else {
			s.names = append(s.names, in.Name) // fromTensors reports it as unexpected
		}
	}
	return s
}

func (s *ggufSource) Names() []string { return s.names }

// linearOutIn: GGUF keeps every matrix (out, in), GPT-2's included, so
// fromTensors does not undo HF's Conv1D layout.
func (s *ggufSource) linearOutIn() bool { return true }

func (s *ggufSource) Tensor(name string) (*tensor.Tensor, error) {
	gn, ok := s.gg[name]
	if !ok {
		gn = name
	}
	t, err := s.g.Tensor(gn)
	if err != nil {
		return nil, err
	}
	if len(t.Shape) == 1 {
		t = t.Convert(tensor.F32) // norms and biases: small, and float32 in every model
		if s.a.normPlusOne && strings.HasSuffix(name, "norm.weight") {
			for i := range t.F32 {
				t.F32[i] -= 1
			}
		}
	}
	if ggufPermutes(s.g.KV["general.architecture"].(string)) {
		heads := 0
		switch {
		case strings.HasSuffix(name, "self_attn.q_proj.weight"):
			heads = s.c.Heads
		case strings.HasSuffix(name, "self_attn.k_proj.weight"):
			heads = s.c.KVHeads
		}
		if heads > 0 {
			u, err := unpermuteRows(t, heads, gn)
			if err == nil {
				// The copy replaces the mapped rows: drop them from
				// resident memory (about a tenth of a Llama's weights).
				s.g.Release(t.Bytes())
			}
			return u, err
		}
	}
	return t, nil
}

// unpermuteRows undoes llama.cpp's q/k permutation (see permuteQK) on a
// tensor of any storage type: rows move whole, so blocks stay intact.
func unpermuteRows(t *tensor.Tensor, heads int, name string) (*tensor.Tensor, error) {
	rows := t.Rows()
	if len(t.Shape) != 2 || heads <= 0 || rows%heads != 0 || (rows/heads)%2 != 0 {
		return nil, fmt.Errorf("tensor %q: shape %v does not split into %d heads of an even size", name, t.Shape, heads)
	}
	D := rows / heads
	out := t.Clone()
	src, dst := t.Bytes(), out.Bytes()
	rb := len(src) / rows
	for h := 0; h < heads; h++ {
		for sHalf := 0; sHalf < 2; sHalf++ {
			for i := 0; i < D/2; i++ {
				hf, gg := h*D+sHalf*D/2+i, h*D+2*i+sHalf
				copy(dst[hf*rb:(hf+1)*rb], src[gg*rb:(gg+1)*rb])
			}
		}
	}
	return out, nil
}

// LoadGGUF reads a GGUF file as a model. With o.KeepStored the matrices
// stay in the file's types, and half-precision and quantized ones stay
// where they are, in the mapped file: the model takes about the file's size in memory, paged in
// as it is used, and the mapping stays for the life of the process.
// Otherwise they are converted to o.DType as a folder's would be.
func LoadGGUF(path string, o LoadOptions) (*Transformer, error) {
	g, err := checkpoint.OpenGGUF(path)
	if err != nil {
		return nil, err
	}
	o.mapped = o.KeepStored
	m, err := FromGGUFFile(g, o)
	if err != nil || !o.mapped {
		g.Close()
	}
	return m, err
}

// FromGGUFImage builds a model from a GGUF image held in memory (the
// browser build, which has no file system to map). With o.KeepStored the
// half-precision and quantized matrices stay views of the image, as they
// stay views of the mapping in LoadGGUF: the model takes about the image's
// size, and the image must live as long as the model.
func FromGGUFImage(g *checkpoint.GGUF, o LoadOptions) (*Transformer, error) {
	o.mapped = o.KeepStored
	return FromGGUFFile(g, o)
}

// FromGGUFFile builds a model from an open GGUF file. The tensors are
// copied out of it: the file may be closed afterwards.
func FromGGUFFile(g *checkpoint.GGUF, o LoadOptions) (*Transformer, error) {
	c, a, err := ggufHFConfig(g)
	if err != nil {
		return nil, &ConfigError{File: g.Path, Err: err}
	}
	return fromTensors(c, newGGUFSource(g, a, c), g.Path, o)
}
