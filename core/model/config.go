// Package model is llmlab's one Transformer, configured by a Hugging Face
// config.json: the GPT-2 family (learned positions, LayerNorm with bias,
// GELU, fused c_attn) and the Llama family (Llama, Mistral, Qwen2, SmolLM:
// RMSNorm, RoPE, SwiGLU, grouped-query attention, optional q/k/v bias, tied
// or untied embeddings).
//
// Parameters carry their HF names, so loading and saving an HF folder is a
// name-for-name copy. The two format quirks live in hf.go: GPT-2's Conv1D
// weights are stored [in, out] and transposed on load into the (out, in)
// layout every projection here uses, and GPT-2 names are accepted with or
// without the "transformer." prefix. Every projection is a Projection slot
// that PEFT methods wrap without copying the frozen weight.
package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Arch is the model family.
type Arch int

const (
	GPT2  Arch = iota // gpt2
	Llama             // llama, mistral, qwen2, smollm (llama)
)

func (a Arch) String() string {
	if a == GPT2 {
		return "gpt2"
	}
	return "llama"
}

// ParseArch accepts "gpt2" and "llama".
func ParseArch(s string) (Arch, error) {
	switch strings.ToLower(s) {
	case "gpt2":
		return GPT2, nil
	case "llama":
		return Llama, nil
	}
	return 0, fmt.Errorf("unknown architecture %q (want gpt2 or llama)", s)
}

// Config is the resolved model configuration. It is read from and written
// to an HF config.json; field names follow the Llama spelling.
type Config struct {
	Arch          Arch
	ModelType     string  // HF model_type: gpt2, llama, mistral, qwen2
	VocabSize     int     // V
	Hidden        int     // C (n_embd / hidden_size)
	Layers        int     // L
	Heads         int     // H
	KVHeads       int     // KVH (= H for GPT-2)
	HeadDim       int     // D = C / H unless head_dim says otherwise
	Intermediate  int     // MLP inner size (n_inner or 4C for GPT-2)
	MaxPos        int     // n_positions / max_position_embeddings
	NormEps       float32 // layer_norm_epsilon / rms_norm_eps
	RopeTheta     float64 // Llama family
	TieEmbeddings bool    // lm_head shares the token embedding
	AttentionBias bool    // q/k/v (and o for Llama's attention_bias) biases
	OutputBias    bool    // o_proj bias (Llama attention_bias=true)
	BOS, EOS      int     // -1 when unknown
	TorchDType    string  // as stored ("float32", "float16", "bfloat16")
	SlidingWindow int     // Mistral; 0 = none (only accepted when >= MaxPos)
	Activation    string  // gelu_new / silu
	raw           map[string]any
}

// hfConfig is the union of the config.json keys we read.
type hfConfig struct {
	ModelType     string   `json:"model_type"`
	Architectures []string `json:"architectures"`
	VocabSize     *int     `json:"vocab_size"`
	// GPT-2 spelling
	NEmbd       *int     `json:"n_embd"`
	NLayer      *int     `json:"n_layer"`
	NHead       *int     `json:"n_head"`
	NPositions  *int     `json:"n_positions"`
	NInner      *int     `json:"n_inner"`
	LayerNormEp *float64 `json:"layer_norm_epsilon"`
	ActFn       string   `json:"activation_function"`
	// Llama spelling
	HiddenSize    *int     `json:"hidden_size"`
	NumLayers     *int     `json:"num_hidden_layers"`
	NumHeads      *int     `json:"num_attention_heads"`
	NumKVHeads    *int     `json:"num_key_value_heads"`
	HeadDim       *int     `json:"head_dim"`
	Intermediate  *int     `json:"intermediate_size"`
	MaxPos        *int     `json:"max_position_embeddings"`
	RMSNormEps    *float64 `json:"rms_norm_eps"`
	RopeTheta     *float64 `json:"rope_theta"`
	RopeScaling   any      `json:"rope_scaling"`
	TieEmb        *bool    `json:"tie_word_embeddings"`
	AttnBias      *bool    `json:"attention_bias"`
	MLPBias       *bool    `json:"mlp_bias"`
	HiddenAct     string   `json:"hidden_act"`
	SlidingWindow *int     `json:"sliding_window"`
	UseSliding    *bool    `json:"use_sliding_window"`
	BOS           *int     `json:"bos_token_id"`
	EOS           any      `json:"eos_token_id"`
	TorchDType    string   `json:"torch_dtype"`
}

// ConfigError names the config file and what is wrong with it.
type ConfigError struct {
	File string
	Err  error
}

func (e *ConfigError) Error() string { return e.File + ": " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// LoadConfig reads dir/config.json.
func LoadConfig(dir string) (Config, error) {
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	c, err := ParseConfig(data)
	if err != nil {
		return Config{}, &ConfigError{File: path, Err: err}
	}
	return c, nil
}

// ParseConfig decodes and validates an HF config.json document.
func ParseConfig(data []byte) (Config, error) {
	var h hfConfig
	if err := json.Unmarshal(data, &h); err != nil {
		return Config{}, fmt.Errorf("not valid JSON: %w", err)
	}
	var raw map[string]any
	_ = json.Unmarshal(data, &raw)
	c := Config{ModelType: h.ModelType, BOS: -1, EOS: -1, TorchDType: h.TorchDType, raw: raw}
	need := func(name string, p *int) (int, error) {
		if p == nil {
			return 0, fmt.Errorf("missing field %q", name)
		}
		return *p, nil
	}
	var err error
	switch h.ModelType {
	case "gpt2":
		c.Arch = GPT2
		if c.VocabSize, err = need("vocab_size", h.VocabSize); err != nil {
			return c, err
		}
		if c.Hidden, err = need("n_embd", h.NEmbd); err != nil {
			return c, err
		}
		if c.Layers, err = need("n_layer", h.NLayer); err != nil {
			return c, err
		}
		if c.Heads, err = need("n_head", h.NHead); err != nil {
			return c, err
		}
		if c.MaxPos, err = need("n_positions", h.NPositions); err != nil {
			return c, err
		}
		c.KVHeads = c.Heads
		c.Intermediate = 4 * c.Hidden
		if h.NInner != nil {
			c.Intermediate = *h.NInner
		}
		c.NormEps = 1e-5
		if h.LayerNormEp != nil {
			c.NormEps = float32(*h.LayerNormEp)
		}
		c.Activation = h.ActFn
		if c.Activation == "" {
			c.Activation = "gelu_new"
		}
		if c.Activation != "gelu_new" && c.Activation != "gelu_pytorch_tanh" {
			return c, fmt.Errorf("activation_function %q is not supported (want gelu_new)", c.Activation)
		}
		c.TieEmbeddings = h.TieEmb == nil || *h.TieEmb
		c.AttentionBias = true
		c.OutputBias = true
	case "llama", "mistral", "qwen2":
		c.Arch = Llama
		if c.VocabSize, err = need("vocab_size", h.VocabSize); err != nil {
			return c, err
		}
		if c.Hidden, err = need("hidden_size", h.HiddenSize); err != nil {
			return c, err
		}
		if c.Layers, err = need("num_hidden_layers", h.NumLayers); err != nil {
			return c, err
		}
		if c.Heads, err = need("num_attention_heads", h.NumHeads); err != nil {
			return c, err
		}
		if c.Intermediate, err = need("intermediate_size", h.Intermediate); err != nil {
			return c, err
		}
		if c.MaxPos, err = need("max_position_embeddings", h.MaxPos); err != nil {
			return c, err
		}
		c.KVHeads = c.Heads
		if h.NumKVHeads != nil {
			c.KVHeads = *h.NumKVHeads
		}
		if h.HeadDim != nil {
			c.HeadDim = *h.HeadDim
		}
		c.NormEps = 1e-6
		if h.RMSNormEps != nil {
			c.NormEps = float32(*h.RMSNormEps)
		}
		c.RopeTheta = 10000
		if h.RopeTheta != nil {
			c.RopeTheta = *h.RopeTheta
		}
		if h.RopeScaling != nil {
			return c, fmt.Errorf("rope_scaling is not supported yet (got %v)", h.RopeScaling)
		}
		c.TieEmbeddings = h.TieEmb != nil && *h.TieEmb
		if h.ModelType == "qwen2" {
			c.AttentionBias = true // Qwen2 always has q/k/v biases, no o bias
		} else if h.AttnBias != nil && *h.AttnBias {
			c.AttentionBias, c.OutputBias = true, true
		}
		if h.MLPBias != nil && *h.MLPBias {
			return c, errors.New("mlp_bias=true is not supported")
		}
		c.Activation = h.HiddenAct
		if c.Activation == "" {
			c.Activation = "silu"
		}
		if c.Activation != "silu" {
			return c, fmt.Errorf("hidden_act %q is not supported (want silu)", c.Activation)
		}
		if h.SlidingWindow != nil && (h.ModelType == "mistral" || (h.UseSliding != nil && *h.UseSliding)) {
			c.SlidingWindow = *h.SlidingWindow
		}
	case "":
		return c, errors.New("missing field \"model_type\"")
	default:
		return c, fmt.Errorf("unknown model_type %q (supported: gpt2, llama, mistral, qwen2)", h.ModelType)
	}
	if h.BOS != nil {
		c.BOS = *h.BOS
	}
	switch e := h.EOS.(type) {
	case float64:
		c.EOS = int(e)
	case []any:
		if len(e) > 0 {
			if f, ok := e[0].(float64); ok {
				c.EOS = int(f)
			}
		}
	}
	if c.HeadDim == 0 && c.Heads > 0 {
		c.HeadDim = c.Hidden / c.Heads
	}
	return c, c.Validate()
}

// Validate checks that the sizes fit together.
func (c Config) Validate() error {
	switch {
	case c.VocabSize <= 0 || c.Hidden <= 0 || c.Layers <= 0 || c.Heads <= 0 || c.MaxPos <= 0 || c.Intermediate <= 0:
		return fmt.Errorf("sizes must be positive: vocab %d, hidden %d, layers %d, heads %d, positions %d, intermediate %d",
			c.VocabSize, c.Hidden, c.Layers, c.Heads, c.MaxPos, c.Intermediate)
	case c.KVHeads <= 0 || c.Heads%c.KVHeads != 0:
		return fmt.Errorf("num_attention_heads %d is not a multiple of num_key_value_heads %d", c.Heads, c.KVHeads)
	case c.Arch == GPT2 && c.Hidden%c.Heads != 0:
		return fmt.Errorf("n_embd %d is not a multiple of n_head %d", c.Hidden, c.Heads)
	case c.HeadDim <= 0 || c.HeadDim%2 != 0 && c.Arch == Llama:
		return fmt.Errorf("head dimension %d must be positive and even", c.HeadDim)
	case c.VocabSize > 1<<24 || c.Hidden > 1<<16 || c.Layers > 1024 || c.MaxPos > 1<<20:
		return fmt.Errorf("sizes out of range: vocab %d, hidden %d, layers %d, positions %d", c.VocabSize, c.Hidden, c.Layers, c.MaxPos)
	case c.SlidingWindow > 0 && c.SlidingWindow < c.MaxPos:
		return fmt.Errorf("sliding_window %d < max_position_embeddings %d is not supported", c.SlidingWindow, c.MaxPos)
	}
	return nil
}

// JSON renders the config as an HF config.json for its family. Keys the
// original file had that we do not model are kept.
func (c Config) JSON() ([]byte, error) {
	m := map[string]any{}
	for k, v := range c.raw {
		m[k] = v
	}
	if c.Arch == GPT2 {
		m["model_type"] = "gpt2"
		m["architectures"] = []string{"GPT2LMHeadModel"}
		m["vocab_size"], m["n_embd"], m["n_layer"], m["n_head"] = c.VocabSize, c.Hidden, c.Layers, c.Heads
		m["n_positions"], m["n_ctx"], m["layer_norm_epsilon"] = c.MaxPos, c.MaxPos, c.NormEps
		m["activation_function"], m["tie_word_embeddings"] = "gelu_new", c.TieEmbeddings
		if c.Intermediate != 4*c.Hidden {
			m["n_inner"] = c.Intermediate
		} else {
			m["n_inner"] = nil
		}
	} else {
		mt := c.ModelType
		if mt == "" {
			mt = "llama"
		}
		m["model_type"] = mt
		arch := map[string]string{"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"}[mt]
		m["architectures"] = []string{arch}
		m["vocab_size"], m["hidden_size"], m["num_hidden_layers"] = c.VocabSize, c.Hidden, c.Layers
		m["num_attention_heads"], m["num_key_value_heads"] = c.Heads, c.KVHeads
		m["intermediate_size"], m["max_position_embeddings"] = c.Intermediate, c.MaxPos
		m["rms_norm_eps"], m["rope_theta"], m["tie_word_embeddings"] = c.NormEps, c.RopeTheta, c.TieEmbeddings
		m["hidden_act"] = "silu"
		if mt != "qwen2" {
			m["attention_bias"] = c.AttentionBias
		}
		if c.HeadDim != c.Hidden/c.Heads {
			m["head_dim"] = c.HeadDim
		}
	}
	if c.BOS >= 0 {
		m["bos_token_id"] = c.BOS
	}
	if c.EOS >= 0 {
		m["eos_token_id"] = c.EOS
	}
	if c.TorchDType != "" {
		m["torch_dtype"] = c.TorchDType
	}
	return json.MarshalIndent(m, "", "  ")
}
