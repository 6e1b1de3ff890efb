package model

// Qwen3 is Qwen2 without q/k/v biases and with an RMSNorm over each head
// of q and k (q_norm, k_norm, weights of head_dim) before RoPE; head_dim
// is set on its own (128) rather than hidden/heads. YaRN rope_scaling
// gives the long-context variants.
var qwen3Family = family{
	modelType: "qwen3", architecture: "Qwen3ForCausalLM", act: "silu", actKey: "hidden_act",
	norm: normRMS, mlp: mlpSwiGLU, qkNorm: true, alwaysHeadDim: true,
	names: withQKNorm(llamaNames, "self_attn.q_norm", "self_attn.k_norm"),
	parse: func(h *hfConfig, c *Config) error {
		if h.HeadDim == nil {
			c.HeadDim = 128 // Qwen3Config's default
		}
		return qwenWindows(h, c)
	},
}

func withQKNorm(n blockNames, q, k string) blockNames {
	n.qNorm, n.kNorm = q, k
	return n
}
