package cli

import (
	"context"
	"fmt"
	"io"

	"llmlab/core/autograd"
	"llmlab/core/train"

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

// preferencePolicy sets up the trained policy and its reference for the
// preference methods (dpo, kto): a fresh LoRA/DoRA adapter against the base
// (adapter off), an adapter given with --adapter (usually the SFT model)
// trained on against a frozen snapshot of where it started, or the full
// model against a frozen copy. The base is quantized first if asked.
func preferencePolicy(cmd string, l *loaded, mf *modelFlags, pf *peftFlags, b tensor.Backend, seed uint64, log io.Writer) (
	params []*autograd.Param, weights train.Weights, ref rlhf.Reference, adapter *lora.Adapter, err error) {
	m := l.M
	if err := pf.quantize(m, log); err != nil {
		return nil, nil, nil, nil, err
	}
	if mf.adapter != "" && (l.Adapter == nil || pf.method == "none") {
		return nil, nil, nil, nil, BadInput(fmt.Errorf("--adapter %s: %s continues LoRA and DoRA adapters only (with --peft lora; merge others first)", mf.adapter, cmd))
	}
	switch pf.method {
	case "lora", "dora":
		var setPolicy func(on bool)
		if adapter = l.Adapter; adapter != nil {
			setPolicy = snapshotSwitch(adapter)
		} else {
			if adapter, err = lora.Apply(m, pf.loraConfig(seed)); err != nil {
				return nil, nil, nil, nil, BadInput(err)
			}
			setPolicy = adapter.SetEnabled
		}
		return adapter.Params(), adapter, adapterReference(m, b, setPolicy), adapter, nil
	case "none":
		m.Freeze(false)
		refModel, err := model.Load(l.Dir, model.LoadOptions{KeepStored: true})
		if err != nil {
			return nil, nil, nil, nil, BadInput(err)
		}
		return m.ParamList(), train.ModelWeights{M: m}, rlhf.NewFrozenModel(refModel, b), nil, nil
	}
	return nil, nil, nil, nil, BadInput(fmt.Errorf("--peft %q: %s supports none, lora and dora", pf.method, cmd))
}
