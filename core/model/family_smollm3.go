package model

import "fmt"

// SmolLM3 is the Llama block with NoPE layers: no_rope_layers[i] is 1 for
// a layer that applies RoPE and 0 for one that does not; without the list,
// every no_rope_layer_interval-th layer (default 4) skips it.
var smollm3Family = family{
	modelType: "smollm3", architecture: "SmolLM3ForCausalLM", act: "silu", actKey: "hidden_act",
	norm: normRMS, mlp: mlpSwiGLU, names: llamaNames, tieDefault: true,
	parse: func(h *hfConfig, c *Config) error {
		c.NoRope = make([]bool, c.Layers)
		if h.NoRopeLayers != nil {
			if len(h.NoRopeLayers) != c.Layers {
				return fmt.Errorf("no_rope_layers has %d entries for %d layers", len(h.NoRopeLayers), c.Layers)
			}
			for i, r := range h.NoRopeLayers {
				c.NoRope[i] = r == 0
			}
			return nil
		}
		every := 4
		if h.NoRopeInterval != nil {
			every = *h.NoRopeInterval
		}
		if every <= 0 {
			return fmt.Errorf("no_rope_layer_interval %d must be positive", every)
		}
		for i := range c.NoRope {
			c.NoRope[i] = (i+1)%every == 0
		}
		return nil
	},
	write: func(c Config, m map[string]any) {
		rope := make([]int, c.Layers)
		for i := range rope {
			if c.NoRope == nil || !c.NoRope[i] {
				rope[i] = 1
			}
		}
		m["no_rope_layers"] = rope
	},
}
