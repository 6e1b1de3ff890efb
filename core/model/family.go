package model

import "sort"

// A family is what sets one model_type apart from the others; the decoder
// in transformer.go reads these fields and nothing else. Each family's
// value and config keys live in its own family_*.go file.
type family struct {
	modelType    string // HF model_type
	architecture string // HF architectures[0] written on save
	act          string // the MLP activation (hidden_act / hidden_activation)
	actKey       string // the config key it is written under

	norm       normKind
	sandwich   bool // post-attention and post-MLP norms too (four per block)
	mlp        mlpKind
	qkNorm     bool // RMSNorm over each head of q and k before RoPE
	embedScale bool // embeddings times sqrt(hidden), in the embedding dtype

	tieDefault    bool // tie_word_embeddings when the key is absent
	noAttnBiasKey bool // the family has no attention_bias key
	alwaysHeadDim bool // head_dim is always written

	names blockNames

	// defaults are the values of the family's HF config class for keys a
	// config.json may leave out.
	defaults map[string]any

	// parse reads the family's own keys after the shared ones; write puts
	// them back (for configs built from presets, which have no file).
	parse func(h *hfConfig, c *Config) error
	write func(c Config, m map[string]any)
}

// normKind is how a norm computes.
type normKind int

const (
	normLayer     normKind = iota // LayerNorm with bias (GPT-2)
	normRMS                       // x·rstd·w
	normRMSOffset                 // x·rstd·(1+w): Gemma stores w - 1
)

// mlpKind is the feed-forward block.
type mlpKind int

const (
	mlpGELU   mlpKind = iota // proj(gelu(fc(x))) (GPT-2)
	mlpSwiGLU                // down(silu(gate(x)) · up(x))
	mlpGeGLU                 // down(gelu_tanh(gate(x)) · up(x))
)

// blockNames are the module names inside "model.layers.N."; empty means
// the family has no such module. qkv and gateUp name fused projections
// that replace q/k/v and gate/up.
type blockNames struct {
	norm1, norm2, postAttn, postMLP string
	q, k, v, o, qkv, qNorm, kNorm   string
	gate, up, down, gateUp          string
}

// llamaNames are the names of the Llama layout, which most families keep.
var llamaNames = blockNames{
	norm1: "input_layernorm", norm2: "post_attention_layernorm",
	q: "self_attn.q_proj", k: "self_attn.k_proj", v: "self_attn.v_proj", o: "self_attn.o_proj",
	gate: "mlp.gate_proj", up: "mlp.up_proj", down: "mlp.down_proj",
}

// gpt2Family describes GPT-2 for the decoder (its names and config are
// handled apart, in hf.go and config.go).
var gpt2Family = family{modelType: "gpt2", architecture: "GPT2LMHeadModel", act: "gelu_new", norm: normLayer, mlp: mlpGELU}

// familyOf returns the family of a model_type, or nil.
func familyOf(modelType string) *family {
	switch modelType {
	case "gpt2":
		return &gpt2Family
	case "llama":
		return &llamaFamily
	case "mistral":
		return &mistralFamily
	case "qwen2":
		return &qwen2Family
	case "qwen3":
		return &qwen3Family
	case "gemma2":
		return &gemma2Family
	case "gemma3_text":
		return &gemma3Family
	case "phi3":
		return &phi3Family
	case "smollm3":
		return &smollm3Family
	}
	return nil
}

// familyNames lists the model_types of the Llama-style families.
func familyNames() []string {
	names := []string{"llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3_text", "gemma3 (text_config)", "phi3", "smollm3"}
	sort.Strings(names)
	return names
}
