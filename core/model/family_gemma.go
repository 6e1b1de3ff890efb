package model

import (
	"errors"
	"math"

	"github.com/x448/float16"

	"llmlab/core/tensor"
)

// Gemma 2 and Gemma 3 (text): embeddings times sqrt(hidden); RMSNorm with
// (1+w) (the files store w, so w round-trips unchanged); four norms per
// block (input, post_attention, pre_feedforward, post_feedforward);
// GeGLU with tanh GELU; attention scaled by query_pre_attn_scalar^-1/2;
// windowed and global layers. Gemma 3 adds q/k norms and gives its
// windowed layers their own RoPE base (rope_local_base_freq, never
// scaled); Gemma 2 caps attention scores and final logits.
var gemmaNames = blockNames{
	norm1: "input_layernorm", norm2: "pre_feedforward_layernorm",
	postAttn: "post_attention_layernorm", postMLP: "post_feedforward_layernorm",
	q: "self_attn.q_proj", k: "self_attn.k_proj", v: "self_attn.v_proj", o: "self_attn.o_proj",
	gate: "mlp.gate_proj", up: "mlp.up_proj", down: "mlp.down_proj",
}

var gemma3Family = family{
	modelType: "gemma3_text", architecture: "Gemma3ForCausalLM", act: "gelu_pytorch_tanh", actKey: "hidden_activation",
	norm: normRMSOffset, sandwich: true, mlp: mlpGeGLU, qkNorm: true, embedScale: true,
	tieDefault: true, alwaysHeadDim: true,
	names: withQKNorm(gemmaNames, "self_attn.q_norm", "self_attn.k_norm"),
	defaults: map[string]any{"vocab_size": 262208.0, "hidden_size": 2304.0, "intermediate_size": 9216.0,
		"num_hidden_layers": 26.0, "num_attention_heads": 8.0, "num_key_value_heads": 4.0, "head_dim": 256.0,
		"max_position_embeddings": 131072.0, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
		"rope_local_base_freq": 10000.0, "query_pre_attn_scalar": 256.0, "sliding_window": 4096.0},
	parse: func(h *hfConfig, c *Config) error {
		if b, _ := c.raw["use_bidirectional_attention"].(bool); b {
			return errors.New("use_bidirectional_attention=true (an embedding model) is not supported: the decoder is causal")
		}
		gemmaDefaults(h, c)
		c.RopeLocalTheta = 10000
		if h.RopeLocalTheta != nil {
			c.RopeLocalTheta = *h.RopeLocalTheta
		}
		if h.LayerTypes == nil {
			every := 6
			if h.SlidingPattern != nil && *h.SlidingPattern > 0 {
				every = *h.SlidingPattern
			}
			c.Sliding = make([]bool, c.Layers)
			for i := range c.Sliding {
				c.Sliding[i] = (i+1)%every != 0
			}
		}
		return nil
	},
	write: gemmaWrite,
}

var gemma2Family = family{
	modelType: "gemma2", architecture: "Gemma2ForCausalLM", act: "gelu_pytorch_tanh", actKey: "hidden_activation",
	norm: normRMSOffset, sandwich: true, mlp: mlpGeGLU, embedScale: true,
	tieDefault: true, alwaysHeadDim: true, names: gemmaNames,
	defaults: map[string]any{"vocab_size": 256000.0, "hidden_size": 2304.0, "intermediate_size": 9216.0,
		"num_hidden_layers": 26.0, "num_attention_heads": 8.0, "num_key_value_heads": 4.0, "head_dim": 256.0,
		"max_position_embeddings": 8192.0, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
		"query_pre_attn_scalar": 256.0, "sliding_window": 4096.0},
	parse: func(h *hfConfig, c *Config) error {
		gemmaDefaults(h, c)
		if _, ok := c.raw["final_logit_softcapping"]; !ok {
			c.FinalSoftcap = 30
		}
		if _, ok := c.raw["attn_logit_softcapping"]; !ok {
			c.AttnSoftcap = 50
		}
		if h.LayerTypes == nil {
			c.Sliding = make([]bool, c.Layers)
			for i := range c.Sliding {
				c.Sliding[i] = i%2 == 0
			}
		}
		return nil
	},
	write: gemmaWrite,
}

// gemmaDefaults fills the keys Gemma configs may leave to their class
// defaults, and reads the ones both generations share.
func gemmaDefaults(h *hfConfig, c *Config) {
	if h.HeadDim == nil {
		c.HeadDim = 256
	}
	c.QueryPreAttnScalar = 256
	if h.QueryPreAttnScalar != nil {
		c.QueryPreAttnScalar = *h.QueryPreAttnScalar
	}
	if h.SlidingWindow == nil {
		c.SlidingWindow = 4096
	}
	if h.AttnSoftcap != nil {
		c.AttnSoftcap = *h.AttnSoftcap
	}
	if h.FinalSoftcap != nil {
		c.FinalSoftcap = *h.FinalSoftcap
	}
}

func gemmaWrite(c Config, m map[string]any) {
	m["query_pre_attn_scalar"] = c.QueryPreAttnScalar
	if c.RopeLocalTheta != 0 {
		m["rope_local_base_freq"] = c.RopeLocalTheta
	}
	softcap := func(v float64) any {
		if v == 0 {
			return nil
		}
		return v
	}
	m["attn_logit_softcapping"] = softcap(c.AttnSoftcap)
	m["final_logit_softcapping"] = softcap(c.FinalSoftcap)
}

// embedScale is Gemma's embedding multiplier sqrt(hidden), rounded to the
// checkpoint's dtype (torch_dtype) as HF computes it.
func embedScale(c Config, bf16, f16 bool) float32 {
	s := float32(math.Sqrt(float64(c.Hidden)))
	switch {
	case bf16:
		return roundBF16(s)
	case f16:
		return roundF16(s)
	}
	return s
}

func roundBF16(x float32) float32 { return tensor.BF16ToF32(tensor.F32ToBF16(x)) }
func roundF16(x float32) float32  { return float16.Fromfloat32(x).Float32() }
