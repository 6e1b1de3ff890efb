package model

// Llama (1, 2, 3.x), SmolLM2 and Mistral share one layout: RMSNorm before
// attention and MLP, RoPE on every layer (Llama 3.x scales it, see
// rope.go), SwiGLU. Mistral's sliding_window, when shorter than the
// context, windows every layer.
var llamaFamily = family{
	modelType: "llama", architecture: "LlamaForCausalLM", act: "silu", actKey: "hidden_act",
	norm: normRMS, mlp: mlpSwiGLU, names: llamaNames,
}

var mistralFamily = family{
	modelType: "mistral", architecture: "MistralForCausalLM", act: "silu", actKey: "hidden_act",
	norm: normRMS, mlp: mlpSwiGLU, names: llamaNames,
}

// Qwen2 (and Qwen2.5) add q/k/v biases (never an o bias); with
// use_sliding_window the layers from max_window_layers on are windowed.
var qwen2Family = family{
	modelType: "qwen2", architecture: "Qwen2ForCausalLM", act: "silu", actKey: "hidden_act",
	norm: normRMS, mlp: mlpSwiGLU, names: llamaNames, noAttnBiasKey: true,
	parse: func(h *hfConfig, c *Config) error {
		c.AttentionBias, c.OutputBias = true, false
		return qwenWindows(h, c)
	},
}

// qwenWindows applies Qwen's max_window_layers when the file has no
// layer_types: layers at or past it are windowed.
func qwenWindows(h *hfConfig, c *Config) error {
	if c.SlidingWindow == 0 || h.LayerTypes != nil || h.MaxWindowLyrs == nil {
		return nil
	}
	c.Sliding = make([]bool, c.Layers)
	for i := range c.Sliding {
		c.Sliding[i] = i >= *h.MaxWindowLyrs
	}
	return nil
}
