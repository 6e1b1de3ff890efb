package model

// Phi-3, Phi-3.5 and Phi-4-mini (model_type phi3): the Llama block with
// fused projections, qkv_proj (q, k, v rows in that order) and
// gate_up_proj (gate rows, then up rows), which are also the names PEFT
// targets; RoPE on the first partial_rotary_factor of each head; and
// longrope scaling, whose trained length is the top-level
// original_max_position_embeddings.
var phi3Family = family{
	modelType: "phi3", architecture: "Phi3ForCausalLM", act: "silu", actKey: "hidden_act",
	norm: normRMS, mlp: mlpSwiGLU,
	names: blockNames{
		norm1: "input_layernorm", norm2: "post_attention_layernorm",
		qkv: "self_attn.qkv_proj", o: "self_attn.o_proj",
		gateUp: "mlp.gate_up_proj", down: "mlp.down_proj",
	},
	parse: func(h *hfConfig, c *Config) error {
		if h.PartialRotary != nil {
			c.PartialRotary = *h.PartialRotary
		}
		if h.OrigMaxPos != nil {
			c.Rope.OrigMaxPos = *h.OrigMaxPos
		}
		return nil
	},
	write: func(c Config, m map[string]any) {
		if c.PartialRotary != 0 {
			m["partial_rotary_factor"] = c.PartialRotary
		}
		if c.Rope.OrigMaxPos != 0 {
			m["original_max_position_embeddings"] = c.Rope.OrigMaxPos
		}
	},
}
