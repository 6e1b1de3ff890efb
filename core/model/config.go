// Package model is llmlab's one decoder, configured by a Hugging Face
// config.json. The families it reads (GPT-2; Llama, Mistral, Qwen2,
// SmolLM2; Qwen3; Gemma 2 and 3; Phi-3 and Phi-4-mini; SmolLM3) differ only
// in data: norm kind and placement, RoPE kind per layer (none, default,
// scaled, partial), attention window per layer, MLP kind, q/k norms,
// softcaps and an embedding scale. Each family declares those, and its
// tensor names, in one short file (family_*.go); transformer.go has the
// single forward pass.
//
// Parameters carry their HF names, so loading and saving an HF folder is a
// name-for-name copy. The format quirks live in hf.go: GPT-2's Conv1D
// weights are stored [in, out] and transposed on load into the (out, in)
// layout every projection here uses, and stored names may carry a prefix
// (GPT-2's "transformer.", a multimodal Gemma 3's language model). Every
// projection is a Projection slot that PEFT methods wrap without copying
// the frozen weight.
package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// Arch is the parameter layout: GPT-2's, or the Llama style every other
// family shares ("model.layers.N...").
type Arch int

const (
	GPT2  Arch = iota // gpt2
	Llama             // llama and every other family (see Config.ModelType)
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
	ModelType     string  // HF model_type: gpt2, llama, mistral, qwen2, qwen3, gemma3_text, ...
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
	Activation    string  // gelu_new / silu / gelu_pytorch_tanh

	// SlidingWindow is the attention window of the windowed layers (0:
	// none); Sliding says which layers are windowed (nil: all of them).
	SlidingWindow int
	Sliding       []bool // (L)
	// Rope is the RoPE scaling of the global (full-attention) layers.
	Rope RopeScaling
	// RopeLocalTheta, when set, is the RoPE base of the windowed layers,
	// which are then never scaled (Gemma 3's rope_local_base_freq).
	RopeLocalTheta float64
	// PartialRotary is the share of each head RoPE rotates (Phi-3's
	// partial_rotary_factor); 0 means all of it.
	PartialRotary float64
	// NoRope marks layers without RoPE (SmolLM3's NoPE layers); nil: none.
	NoRope []bool // (L)
	// QueryPreAttnScalar sets the attention scale to its -1/2 power
	// (Gemma); 0: 1/sqrt(D).
	QueryPreAttnScalar float64
	// AttnSoftcap and FinalSoftcap cap attention scores and output logits
	// to c·tanh(x/c) (Gemma 2); 0: none.
	AttnSoftcap, FinalSoftcap float64
	// Multimodal is set for a Gemma 3 config whose text model sits in
	// text_config: its tensors carry a language-model prefix on load and
	// the text model alone is saved.
	Multimodal bool

	raw map[string]any
}

// RopeKind is a RoPE scaling method (HF's rope_type).
type RopeKind int

const (
	RopeDefault  RopeKind = iota // plain RoPE
	RopeLinear                   // positions divided by factor
	RopeDynamic                  // NTK-aware base change past the trained length
	RopeYaRN                     // YaRN (Qwen2.5/Qwen3 long context)
	RopeLongRoPE                 // Phi-3's short/long factors per frequency
	RopeLlama3                   // Llama 3.1+'s band-wise scaling
)

var ropeKindNames = [...]string{"default", "linear", "dynamic", "yarn", "longrope", "llama3"}

func (k RopeKind) String() string { return ropeKindNames[k] }

// ParseRopeKind accepts HF's rope_type names (and "su", Phi-3's early
// name for longrope).
func ParseRopeKind(s string) (RopeKind, error) {
	if s == "su" {
		return RopeLongRoPE, nil
	}
	for i, n := range ropeKindNames {
		if n == s {
			return RopeKind(i), nil
		}
	}
	return 0, fmt.Errorf("rope_type %q is not supported (known: %s)", s, strings.Join(ropeKindNames[:], ", "))
}

// RopeScaling is HF's rope_scaling (or transformers 5's rope_parameters).
type RopeScaling struct {
	Kind   RopeKind
	Factor float64
	// OrigMaxPos is original_max_position_embeddings: the trained length
	// (llama3, yarn, longrope).
	OrigMaxPos                    int
	LowFreqFactor, HighFreqFactor float64   // llama3
	AttentionFactor               float64   // yarn, longrope: cos/sin multiplier; 0 = derived
	BetaFast, BetaSlow            float64   // yarn; 0 = 32, 1
	Mscale, MscaleAllDim          float64   // yarn (DeepSeek style); 0 = unset
	ShortFactor, LongFactor       []float64 // longrope, (rotary dim / 2) each

	raw map[string]any // the object as read, written back unchanged
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
	HiddenSize    *int           `json:"hidden_size"`
	NumLayers     *int           `json:"num_hidden_layers"`
	NumHeads      *int           `json:"num_attention_heads"`
	NumKVHeads    *int           `json:"num_key_value_heads"`
	HeadDim       *int           `json:"head_dim"`
	Intermediate  *int           `json:"intermediate_size"`
	MaxPos        *int           `json:"max_position_embeddings"`
	RMSNormEps    *float64       `json:"rms_norm_eps"`
	RopeTheta     *float64       `json:"rope_theta"`
	RopeScaling   map[string]any `json:"rope_scaling"`
	RopeParams    map[string]any `json:"rope_parameters"`
	TieEmb        *bool          `json:"tie_word_embeddings"`
	AttnBias      *bool          `json:"attention_bias"`
	MLPBias       *bool          `json:"mlp_bias"`
	HiddenAct     string         `json:"hidden_act"`
	HiddenAct2    string         `json:"hidden_activation"` // Gemma
	SlidingWindow *int           `json:"sliding_window"`
	UseSliding    *bool          `json:"use_sliding_window"`
	MaxWindowLyrs *int           `json:"max_window_layers"`
	LayerTypes    []string       `json:"layer_types"`
	BOS           *int           `json:"bos_token_id"`
	EOS           any            `json:"eos_token_id"`
	TorchDType    string         `json:"torch_dtype"`
	DType         string         `json:"dtype"` // transformers 5's name for torch_dtype
	// Family keys
	OrigMaxPos         *int            `json:"original_max_position_embeddings"` // phi3
	PartialRotary      *float64        `json:"partial_rotary_factor"`            // phi3
	RopeLocalTheta     *float64        `json:"rope_local_base_freq"`             // gemma3
	QueryPreAttnScalar *float64        `json:"query_pre_attn_scalar"`            // gemma
	SlidingPattern     *int            `json:"sliding_window_pattern"`           // gemma3 (older files)
	AttnSoftcap        *float64        `json:"attn_logit_softcapping"`           // gemma2
	FinalSoftcap       *float64        `json:"final_logit_softcapping"`          // gemma2
	NoRopeLayers       []int           `json:"no_rope_layers"`                   // smollm3
	NoRopeInterval     *int            `json:"no_rope_layer_interval"`           // smollm3
	TextConfig         json.RawMessage `json:"text_config"`                      // gemma3 (multimodal)
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
	if h.ModelType == "gemma3" && len(h.TextConfig) > 0 {
		// A multimodal Gemma 3: the text model is what we run.
		c, err := ParseConfig(textConfig(h.TextConfig))
		if err != nil {
			return c, fmt.Errorf("text_config: %w", err)
		}
		c.Multimodal = true
		if c.TorchDType == "" {
			c.TorchDType = h.TorchDType
		}
		return c, nil
	}
	var raw map[string]any
	_ = json.Unmarshal(data, &raw)
	if f := familyOf(h.ModelType); f != nil && f.defaults != nil {
		// Keys the file leaves to the family's config class defaults
		// (multimodal Gemma 3 text_configs name only a few).
		filled := false
		for k, v := range f.defaults {
			if _, ok := raw[k]; !ok {
				raw[k], filled = v, true
			}
		}
		if filled {
			data, _ = json.Marshal(raw)
			h = hfConfig{}
			if err := json.Unmarshal(data, &h); err != nil {
				return Config{}, fmt.Errorf("not valid JSON: %w", err)
			}
		}
	}
	c := Config{ModelType: h.ModelType, BOS: -1, EOS: -1, TorchDType: h.TorchDType, raw: raw}
	if c.TorchDType == "" {
		c.TorchDType = h.DType
	}
	var err error
	switch h.ModelType {
	case "gpt2":
		err = parseGPT2(&h, &c)
	case "":
		return c, errors.New("missing field \"model_type\"")
	default:
		f := familyOf(h.ModelType)
		if f == nil {
			return c, fmt.Errorf("unknown model_type %q (supported: gpt2, %s)", h.ModelType, strings.Join(familyNames(), ", "))
		}
		c.Arch = Llama
		if err = parseDecoder(&h, &c, f); err == nil && f.parse != nil {
			err = f.parse(&h, &c)
		}
	}
	if err != nil {
		return c, err
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

// textConfig returns a multimodal config's text_config with its
// model_type filled in (older files leave it out).
func textConfig(tc json.RawMessage) []byte {
	var m map[string]any
	if json.Unmarshal(tc, &m) != nil {
		return tc
	}
	if _, ok := m["model_type"]; !ok {
		m["model_type"] = "gemma3_text"
	}
	out, _ := json.Marshal(m)
	return out
}

func need(name string, p *int) (int, error) {
	if p == nil {
		return 0, fmt.Errorf("missing field %q", name)
	}
	return *p, nil
}

func parseGPT2(h *hfConfig, c *Config) error {
	var err error
	c.Arch = GPT2
	if c.VocabSize, err = need("vocab_size", h.VocabSize); err != nil {
		return err
	}
	if c.Hidden, err = need("n_embd", h.NEmbd); err != nil {
		return err
	}
	if c.Layers, err = need("n_layer", h.NLayer); err != nil {
		return err
	}
	if c.Heads, err = need("n_head", h.NHead); err != nil {
		return err
	}
	if c.MaxPos, err = need("n_positions", h.NPositions); err != nil {
		return err
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
		return fmt.Errorf("activation_function %q is not supported (want gelu_new)", c.Activation)
	}
	c.TieEmbeddings = h.TieEmb == nil || *h.TieEmb
	c.AttentionBias = true
	c.OutputBias = true
	return nil
}

// parseDecoder reads the keys every Llama-style family shares; the
// family's own parse runs after it.
func parseDecoder(h *hfConfig, c *Config, f *family) error {
	var err error
	if c.VocabSize, err = need("vocab_size", h.VocabSize); err != nil {
		return err
	}
	if c.Hidden, err = need("hidden_size", h.HiddenSize); err != nil {
		return err
	}
	if c.Layers, err = need("num_hidden_layers", h.NumLayers); err != nil {
		return err
	}
	if c.Heads, err = need("num_attention_heads", h.NumHeads); err != nil {
		return err
	}
	if c.Intermediate, err = need("intermediate_size", h.Intermediate); err != nil {
		return err
	}
	if c.MaxPos, err = need("max_position_embeddings", h.MaxPos); err != nil {
		return err
	}
	if c.Layers <= 0 || c.Layers > 1024 {
		return fmt.Errorf("num_hidden_layers %d out of range", c.Layers)
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
	if err := parseRope(h, c); err != nil {
		return err
	}
	c.TieEmbeddings = f.tieDefault
	if h.TieEmb != nil {
		c.TieEmbeddings = *h.TieEmb
	}
	if h.AttnBias != nil && *h.AttnBias {
		c.AttentionBias, c.OutputBias = true, true
	}
	if h.MLPBias != nil && *h.MLPBias {
		return errors.New("mlp_bias=true is not supported")
	}
	c.Activation = h.HiddenAct
	if c.Activation == "" {
		c.Activation = h.HiddenAct2
	}
	if c.Activation == "" {
		c.Activation = f.act
	}
	if c.Activation != f.act {
		return fmt.Errorf("hidden_act %q is not supported for %s (want %s)", c.Activation, c.ModelType, f.act)
	}
	if h.SlidingWindow != nil && *h.SlidingWindow > 0 && (h.UseSliding == nil || *h.UseSliding) {
		c.SlidingWindow = *h.SlidingWindow
	}
	if h.LayerTypes != nil {
		if err := c.setLayerTypes(h.LayerTypes); err != nil {
			return err
		}
	}
	return nil
}

// setLayerTypes reads layer_types: "sliding_attention" layers are windowed.
func (c *Config) setLayerTypes(types []string) error {
	if len(types) != c.Layers {
		return fmt.Errorf("layer_types has %d entries for %d layers", len(types), c.Layers)
	}
	c.Sliding = make([]bool, c.Layers)
	for i, t := range types {
		switch t {
		case "sliding_attention":
			c.Sliding[i] = true
		case "full_attention":
		default:
			return fmt.Errorf("layer_types[%d] = %q (want sliding_attention or full_attention)", i, t)
		}
	}
	return nil
}

// parseRope reads rope_scaling, or transformers 5's rope_parameters (which
// also carries rope_theta, and for Gemma 3 one entry per layer type).
func parseRope(h *hfConfig, c *Config) error {
	obj := h.RopeScaling
	if obj == nil && h.RopeParams != nil {
		obj = h.RopeParams
		if full, ok := obj["full_attention"].(map[string]any); ok {
			if local, ok := obj["sliding_attention"].(map[string]any); ok {
				if th, ok := local["rope_theta"].(float64); ok {
					c.RopeLocalTheta = th
				}
			}
			obj = full
		}
		if th, ok := obj["rope_theta"].(float64); ok {
			c.RopeTheta = th
		}
	}
	if obj == nil {
		return nil
	}
	r, err := parseRopeScaling(obj)
	if err != nil {
		return fmt.Errorf("rope_scaling: %w", err)
	}
	c.Rope = r
	return nil
}

func parseRopeScaling(obj map[string]any) (RopeScaling, error) {
	r := RopeScaling{raw: obj}
	kind, _ := obj["rope_type"].(string)
	if kind == "" {
		kind, _ = obj["type"].(string)
	}
	if kind == "" {
		kind = "default"
	}
	var err error
	if r.Kind, err = ParseRopeKind(kind); err != nil {
		return r, err
	}
	num := func(k string) float64 {
		f, _ := obj[k].(float64)
		return f
	}
	list := func(k string) ([]float64, error) {
		a, ok := obj[k].([]any)
		if !ok {
			return nil, fmt.Errorf("%s: missing %q (a list of numbers)", kind, k)
		}
		out := make([]float64, len(a))
		for i, v := range a {
			f, ok := v.(float64)
			if !ok || f <= 0 {
				return nil, fmt.Errorf("%s[%d] = %v: want a positive number", k, i, v)
			}
			out[i] = f
		}
		return out, nil
	}
	r.Factor = num("factor")
	r.OrigMaxPos = int(num("original_max_position_embeddings"))
	r.AttentionFactor = num("attention_factor")
	switch r.Kind {
	case RopeLinear, RopeDynamic, RopeYaRN, RopeLlama3:
		if r.Factor <= 0 {
			return r, fmt.Errorf("%s needs a positive factor (got %v)", kind, obj["factor"])
		}
	}
	switch r.Kind {
	case RopeLlama3:
		r.LowFreqFactor, r.HighFreqFactor = num("low_freq_factor"), num("high_freq_factor")
		if r.LowFreqFactor <= 0 || r.HighFreqFactor <= r.LowFreqFactor || r.OrigMaxPos <= 0 {
			return r, fmt.Errorf("llama3 needs low_freq_factor > 0, high_freq_factor > low_freq_factor and original_max_position_embeddings (got %v, %v, %v)",
				obj["low_freq_factor"], obj["high_freq_factor"], obj["original_max_position_embeddings"])
		}
	case RopeYaRN:
		r.BetaFast, r.BetaSlow = num("beta_fast"), num("beta_slow")
		r.Mscale, r.MscaleAllDim = num("mscale"), num("mscale_all_dim")
	case RopeLongRoPE:
		if r.ShortFactor, err = list("short_factor"); err != nil {
			return r, err
		}
		if r.LongFactor, err = list("long_factor"); err != nil {
			return r, err
		}
	}
	return r, nil
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
	case c.VocabSize > 1<<24 || c.Hidden > 1<<16 || c.Layers > 1024 || c.MaxPos > 1<<24 || c.HeadDim > 1<<12:
		return fmt.Errorf("sizes out of range: vocab %d, hidden %d, layers %d, positions %d, head dim %d", c.VocabSize, c.Hidden, c.Layers, c.MaxPos, c.HeadDim)
	case c.SlidingWindow < 0:
		return fmt.Errorf("sliding_window %d is negative", c.SlidingWindow)
	case c.Sliding != nil && len(c.Sliding) != c.Layers || c.NoRope != nil && len(c.NoRope) != c.Layers:
		return fmt.Errorf("per-layer lists have %d and %d entries for %d layers", len(c.Sliding), len(c.NoRope), c.Layers)
	case c.PartialRotary < 0 || c.PartialRotary > 1:
		return fmt.Errorf("partial_rotary_factor %v outside (0, 1]", c.PartialRotary)
	case c.Arch == Llama && c.RotaryDim()%2 != 0:
		return fmt.Errorf("rotary dimension %d (head_dim %d × partial_rotary_factor %v) must be even", c.RotaryDim(), c.HeadDim, c.PartialRotary)
	case c.Rope.Kind == RopeLongRoPE && (len(c.Rope.ShortFactor) != c.RotaryDim()/2 || len(c.Rope.LongFactor) != c.RotaryDim()/2):
		return fmt.Errorf("longrope short_factor and long_factor have %d and %d entries, want rotary dimension / 2 = %d",
			len(c.Rope.ShortFactor), len(c.Rope.LongFactor), c.RotaryDim()/2)
	case c.AttnSoftcap < 0 || c.FinalSoftcap < 0 || c.QueryPreAttnScalar < 0:
		return errors.New("softcaps and query_pre_attn_scalar must not be negative")
	case c.ContextLen() > 1<<24:
		return fmt.Errorf("context length %d out of range", c.ContextLen())
	}
	return nil
}

// RotaryDim is the number of dimensions of each head that RoPE rotates.
func (c Config) RotaryDim() int {
	if c.PartialRotary == 0 || c.PartialRotary == 1 {
		return c.HeadDim
	}
	return int(float64(c.HeadDim) * c.PartialRotary)
}

// ContextLen is the longest sequence the model takes: max_position_embeddings,
// or that times the factor for dynamic NTK scaling (which exists to run
// past the trained length).
func (c Config) ContextLen() int {
	if c.Rope.Kind == RopeDynamic && c.Rope.Factor > 1 {
		return int(math.Ceil(float64(c.MaxPos) * c.Rope.Factor))
	}
	return c.MaxPos
}

// Window returns the attention window of layer l (0: unlimited). A window
// at least as long as the context changes nothing and is dropped.
func (c Config) Window(l int) int {
	if c.SlidingWindow == 0 || c.SlidingWindow >= c.ContextLen() || c.Sliding != nil && !c.Sliding[l] {
		return 0
	}
	return c.SlidingWindow
}

// HasRope reports whether layer l applies RoPE.
func (c Config) HasRope(l int) bool {
	return c.Arch == Llama && (c.NoRope == nil || !c.NoRope[l])
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
		f := familyOf(mt)
		if f == nil {
			return nil, fmt.Errorf("model: cannot write a config for model_type %q", mt)
		}
		m["model_type"] = mt
		m["architectures"] = []string{f.architecture}
		m["vocab_size"], m["hidden_size"], m["num_hidden_layers"] = c.VocabSize, c.Hidden, c.Layers
		m["num_attention_heads"], m["num_key_value_heads"] = c.Heads, c.KVHeads
		m["intermediate_size"], m["max_position_embeddings"] = c.Intermediate, c.MaxPos
		m["rms_norm_eps"], m["tie_word_embeddings"] = c.NormEps, c.TieEmbeddings
		if _, ok := m["rope_parameters"]; ok {
			// transformers 5 form: theta lives inside; keep the file's object.
		} else {
			m["rope_theta"] = c.RopeTheta
			if c.Rope.Kind != RopeDefault || c.Rope.raw != nil {
				m["rope_scaling"] = c.Rope.object()
			}
		}
		if f.actKey != "" {
			m[f.actKey] = c.Activation
		}
		if !f.noAttnBiasKey {
			m["attention_bias"] = c.AttentionBias
		}
		if c.HeadDim != c.Hidden/c.Heads || f.alwaysHeadDim {
			m["head_dim"] = c.HeadDim
		}
		if c.SlidingWindow > 0 {
			m["sliding_window"] = c.SlidingWindow
		}
		if c.Sliding != nil {
			types := make([]string, c.Layers)
			for i, s := range c.Sliding {
				types[i] = "full_attention"
				if s {
					types[i] = "sliding_attention"
				}
			}
			m["layer_types"] = types
		}
		if f.write != nil {
			f.write(c, m)
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

// object renders the scaling as a rope_scaling object: the one read, or
// one built from the fields (for presets).
func (r RopeScaling) object() map[string]any {
	if r.raw != nil {
		return r.raw
	}
	o := map[string]any{"rope_type": r.Kind.String()}
	if r.Factor != 0 {
		o["factor"] = r.Factor
	}
	if r.OrigMaxPos != 0 {
		o["original_max_position_embeddings"] = r.OrigMaxPos
	}
	switch r.Kind {
	case RopeLlama3:
		o["low_freq_factor"], o["high_freq_factor"] = r.LowFreqFactor, r.HighFreqFactor
	case RopeLongRoPE:
		o["short_factor"], o["long_factor"] = r.ShortFactor, r.LongFactor
	}
	if r.AttentionFactor != 0 {
		o["attention_factor"] = r.AttentionFactor
	}
	return o
}
