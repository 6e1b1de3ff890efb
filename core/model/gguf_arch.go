package model

import (
	"encoding/json"
	"fmt"
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
type ggufArch struct {
	modelType string // HF model_type
	// permuteQK: llama.cpp's converter reordered q/k rows for its
	// interleaved RoPE (LLAMA_ROPE_TYPE_NORM); undone on load.
	permuteQK bool
	// normPlusOne: the converter stored 1+w for norms that compute x·(1+w)
	// (Gemma); undone on load.
	normPlusOne bool
	// names overrides the per-layer GGUF suffix -> HF suffix table below.
	names map[string]string
}

var ggufArchs = map[string]ggufArch{
	"llama":   {modelType: "llama", permuteQK: true}, // also Mistral's files
	"mistral": {modelType: "mistral", permuteQK: true},
	"qwen2":   {modelType: "qwen2"},
	"qwen3":   {modelType: "qwen3"},
	"smollm3": {modelType: "smollm3", permuteQK: true},
	"phi3": {modelType: "phi3", names: map[string]string{
		"attn_qkv.weight": "self_attn.qkv_proj.weight", "ffn_up.weight": "mlp.gate_up_proj.weight",
	}},
	"gemma3": {modelType: "gemma3_text", normPlusOne: true, names: map[string]string{
		"post_attention_norm.weight": "post_attention_layernorm.weight",
		"ffn_norm.weight":            "pre_feedforward_layernorm.weight",
		"post_ffw_norm.weight":       "post_feedforward_layernorm.weight",
	}},
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
	if n, ok := ggufTopNames[gg]; ok {
		return n, true
	}
	rest, ok := strings.CutPrefix(gg, "blk.")
	if !ok {
		return "", false
	}
	ls, suffix, ok := strings.Cut(rest, ".")
	l, err := strconv.Atoi(ls)
	if !ok || err != nil || l < 0 {
		return "", false
	}
	n, ok := a.names[suffix]
	if !ok {
		n, ok = ggufLayerNames[suffix]
	}
	return fmt.Sprintf("model.layers.%d.%s", l, n), ok
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
	if s, ok := g.String(arch + ".rope.scaling.type"); ok && s != "none" {
		f, _ := g.Float(arch + ".rope.scaling.factor")
		hf["rope_scaling"] = map[string]any{"rope_type": s, "factor": f}
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
	if s.a.permuteQK {
		switch {
		case strings.HasSuffix(name, "self_attn.q_proj.weight"):
			return unpermuteRows(t, s.c.Heads, gn)
		case strings.HasSuffix(name, "self_attn.k_proj.weight"):
			return unpermuteRows(t, s.c.KVHeads, gn)
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

// FromGGUFFile builds a model from an open GGUF file. The tensors are
// copied out of it: the file may be closed afterwards.
func FromGGUFFile(g *checkpoint.GGUF, o LoadOptions) (*Transformer, error) {
	c, a, err := ggufHFConfig(g)
	if err != nil {
		return nil, &ConfigError{File: g.Path, Err: err}
	}
	return fromTensors(c, newGGUFSource(g, a, c), g.Path, o)
}
