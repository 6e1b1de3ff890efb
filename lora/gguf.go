package lora

import (
	"fmt"

	"llmlab/core/checkpoint"
	"llmlab/core/model"
	"llmlab/core/tensor"
)

// GGUF returns the adapter as a GGUF LoRA adapter file for llama.cpp and
// ollama. DoRA's magnitudes and modules_to_save (whole trained modules)
// have no place in that format: merge such adapters (llmlab merge) and
// export the merged model instead.
func (a *Adapter) GGUF(name string, dt tensor.DType) (*checkpoint.GGUFFile, error) {
	if len(a.Saved) > 0 {
		return nil, fmt.Errorf("lora: the adapter trains %s in full (modules_to_save), which a GGUF adapter cannot hold; run llmlab merge and export the merged model", a.Saved[0].Module)
	}
	pairs := make([]model.LoRAPair, 0, len(a.Layers))
	for _, l := range a.Layers {
		if l.M != nil {
			return nil, fmt.Errorf("lora: %s is a DoRA layer, which GGUF adapters cannot hold; run llmlab merge and export the merged model", l.Name)
		}
		pairs = append(pairs, model.LoRAPair{Module: l.Name, A: l.A.Value, B: l.B.Value})
	}
	return a.model.GGUFAdapter(pairs, a.Cfg.Scale(), name, dt)
}
