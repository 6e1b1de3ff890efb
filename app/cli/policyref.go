package cli

import (
	"context"

	"llmlab/core/data"
	"llmlab/core/model"
	"llmlab/core/tensor"
	"llmlab/lora"
	"llmlab/rlhf"
)

// snapshotSwitch freezes a copy of a loaded adapter's weights as the
// reference policy and returns setPolicy: setPolicy(false) swaps the
// snapshot into the adapter's parameters (no second model, no copying),
// setPolicy(true) swaps the trained weights back. It is how a run that
// continues from --adapter (usually the SFT model) keeps that starting
// point as its reference.
func snapshotSwitch(a *lora.Adapter) (setPolicy func(on bool)) {
	ps := a.Params()
	snap := make([]*tensor.Tensor, len(ps))
	for i, p := range ps {
		snap[i] = p.Value.Clone()
	}
	policyOn := true
	return func(on bool) {
		if on != policyOn {
			for i, p := range ps {
				p.Value, snap[i] = snap[i], p.Value
			}
			policyOn = on
		}
	}
}

// adapterReference is the reference of a LoRA policy for DPO and KTO: a
// frozen forward of m with setPolicy(false) (the adapter switched off, or
// the starting snapshot swapped in) and the policy restored afterwards.
func adapterReference(m *model.Transformer, b tensor.Backend, setPolicy func(on bool)) rlhf.Reference {
	frozen := rlhf.NewFrozenModel(m, b)
	return rlhf.ReferenceFunc(func(ctx context.Context, bt data.Batch, dst []float32) error {
		setPolicy(false)
		defer setPolicy(true)
		return frozen.LogProbs(ctx, bt, dst)
	})
}
