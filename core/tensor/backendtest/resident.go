package backendtest

import (
	"fmt"

	"llmlab/core/tensor"
	"llmlab/core/tensor/devicetest"
)

// resident runs every op of a backend with its float32 tensors in the
// backend's own memory: each is copied into a fresh device tensor for the
// call (the host tensor's header taking that storage) and copied back and
// freed after it, so the checks read the results on the host as usual
// while the kernels see only device tensors. Storage-only weights (F16,
// BF16, quantised) stay on the host, as the engine leaves them.
type resident struct {
	devicetest.Staged // every op, between the two halves of stage
	b                 tensor.Backend
	mem               tensor.Memory
}

func newResident(b tensor.Backend, mem tensor.Memory) *resident {
	r := &resident{b: b, mem: mem}
	r.Staged = devicetest.Staged{Inner: b, Stage: r.stage}
	return r
}

func (r *resident) Name() string { return r.b.Name() + " (device tensors)" }

// stage moves the float32 tensors among args to the device and returns
// the function that brings them back.
func (r *resident) stage(args ...any) func() {
	type moved struct {
		t    *tensor.Tensor
		host []float32
	}
	var mv []moved
	one := func(t *tensor.Tensor) {
		if t == nil || t.OnDevice() || t.DType != tensor.F32 || t.Numel() == 0 {
			return
		}
		for _, m := range mv {
			if m.t == t {
				return
			}
		}
		d, err := tensor.NewOn(r.mem, t.Shape...)
		if err != nil {
			panic(fmt.Sprintf("backendtest: %v", err))
		}
		tensor.Copy(d, t)
		mv = append(mv, moved{t, t.F32})
		t.F32, t.Dev = nil, d.Dev
	}
	for _, a := range args {
		switch x := a.(type) {
		case *tensor.Tensor:
			one(x)
		case []*tensor.Tensor:
			for _, t := range x {
				one(t)
			}
		case *tensor.AttentionOpts:
			one(x.PrefixK)
			one(x.PrefixV)
			one(x.DPrefixK)
			one(x.DPrefixV)
		}
	}
	return func() {
		for _, m := range mv {
			dev := &tensor.Tensor{Shape: m.t.Shape, DType: tensor.F32, Dev: m.t.Dev}
			m.t.F32, m.t.Dev = m.host, tensor.Device{}
			tensor.Copy(m.t, dev)
			tensor.Free(dev)
		}
	}
}
