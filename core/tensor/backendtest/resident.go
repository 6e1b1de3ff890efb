package backendtest

import (
	"fmt"

	"llmlab/core/tensor"
)

// resident runs every op of a backend with its float32 tensors in the
// backend's own memory: each is copied into a fresh device tensor for the
// call (the host tensor's header taking that storage) and copied back and
// freed after it, so the checks read the results on the host as usual
// while the kernels see only device tensors. Storage-only weights (F16,
// BF16, quantised) stay on the host, as the engine leaves them.
type resident struct {
	b   tensor.Backend
	mem tensor.Memory
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

func (r *resident) MatMul(dst, a, w *tensor.Tensor, o tensor.MatMulOpts) {
	defer r.stage(dst, a, w)()
	r.b.MatMul(dst, a, w, o)
}

func (r *resident) Embedding(dst *tensor.Tensor, ids []int32, table *tensor.Tensor) {
	defer r.stage(dst, table)()
	r.b.Embedding(dst, ids, table)
}

func (r *resident) EmbeddingBackward(dtable *tensor.Tensor, ids []int32, dy *tensor.Tensor) {
	defer r.stage(dtable, dy)()
	r.b.EmbeddingBackward(dtable, ids, dy)
}

func (r *resident) LayerNorm(dst, mean, rstd, x, w, bias *tensor.Tensor, eps float32) {
	defer r.stage(dst, mean, rstd, x, w, bias)()
	r.b.LayerNorm(dst, mean, rstd, x, w, bias, eps)
}

func (r *resident) LayerNormBackward(dx, dw, db, dy, x, w, mean, rstd *tensor.Tensor) {
	defer r.stage(dx, dw, db, dy, x, w, mean, rstd)()
	r.b.LayerNormBackward(dx, dw, db, dy, x, w, mean, rstd)
}

func (r *resident) RMSNorm(dst, rstd, x, w *tensor.Tensor, eps float32) {
	defer r.stage(dst, rstd, x, w)()
	r.b.RMSNorm(dst, rstd, x, w, eps)
}

func (r *resident) RMSNormBackward(dx, dw, dy, x, w, rstd *tensor.Tensor) {
	defer r.stage(dx, dw, dy, x, w, rstd)()
	r.b.RMSNormBackward(dx, dw, dy, x, w, rstd)
}

func (r *resident) GELU(dst, x *tensor.Tensor) {
	defer r.stage(dst, x)()
	r.b.GELU(dst, x)
}

func (r *resident) GELUBackward(dx, dy, x *tensor.Tensor) {
	defer r.stage(dx, dy, x)()
	r.b.GELUBackward(dx, dy, x)
}

func (r *resident) SwiGLU(dst, gate, up *tensor.Tensor) {
	defer r.stage(dst, gate, up)()
	r.b.SwiGLU(dst, gate, up)
}

func (r *resident) SwiGLUBackward(dgate, dup, dy, gate, up *tensor.Tensor) {
	defer r.stage(dgate, dup, dy, gate, up)()
	r.b.SwiGLUBackward(dgate, dup, dy, gate, up)
}

func (r *resident) RoPE(dst, x *tensor.Tensor, pos []int32, tab *tensor.RoPETable) {
	defer r.stage(dst, x)()
	r.b.RoPE(dst, x, pos, tab)
}

func (r *resident) RoPEBackward(dx, dy *tensor.Tensor, pos []int32, tab *tensor.RoPETable) {
	defer r.stage(dx, dy)()
	r.b.RoPEBackward(dx, dy, pos, tab)
}

func (r *resident) Attention(out, lse, q, k, v *tensor.Tensor, o *tensor.AttentionOpts) {
	defer r.stage(out, lse, q, k, v, o)()
	r.b.Attention(out, lse, q, k, v, o)
}

func (r *resident) AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse *tensor.Tensor, o *tensor.AttentionOpts) {
	defer r.stage(dq, dk, dv, dout, q, k, v, out, lse, o)()
	r.b.AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse, o)
}

func (r *resident) CrossEntropy(loss, lse, logits *tensor.Tensor, targets []int32) {
	defer r.stage(loss, lse, logits)()
	r.b.CrossEntropy(loss, lse, logits, targets)
}

func (r *resident) CrossEntropyBackward(dlogits, dloss, logits, lse *tensor.Tensor, targets []int32) {
	defer r.stage(dlogits, dloss, logits, lse)()
	r.b.CrossEntropyBackward(dlogits, dloss, logits, lse, targets)
}

func (r *resident) Add(dst, x, y *tensor.Tensor) {
	defer r.stage(dst, x, y)()
	r.b.Add(dst, x, y)
}

func (r *resident) Mul(dst, x, y *tensor.Tensor) {
	defer r.stage(dst, x, y)()
	r.b.Mul(dst, x, y)
}

func (r *resident) AddScaled(dst, x *tensor.Tensor, s float32) {
	defer r.stage(dst, x)()
	r.b.AddScaled(dst, x, s)
}

func (r *resident) AddBias(dst, x, bias *tensor.Tensor) {
	defer r.stage(dst, x, bias)()
	r.b.AddBias(dst, x, bias)
}

func (r *resident) SumRows(dst, x *tensor.Tensor) {
	defer r.stage(dst, x)()
	r.b.SumRows(dst, x)
}

func (r *resident) SplitCols(dsts []*tensor.Tensor, x *tensor.Tensor) {
	defer r.stage(dsts, x)()
	r.b.SplitCols(dsts, x)
}

func (r *resident) ConcatCols(dst *tensor.Tensor, srcs []*tensor.Tensor) {
	defer r.stage(dst, srcs)()
	r.b.ConcatCols(dst, srcs)
}

func (r *resident) AdamW(p, g, m, v *tensor.Tensor, o tensor.AdamWOpts) {
	defer r.stage(p, g, m, v)()
	r.b.AdamW(p, g, m, v, o)
}

func (r *resident) SumSquares(x *tensor.Tensor) float64 {
	defer r.stage(x)()
	return r.b.SumSquares(x)
}

func (r *resident) GeGLU(dst, gate, up *tensor.Tensor) {
	defer r.stage(dst, gate, up)()
	r.b.GeGLU(dst, gate, up)
}

func (r *resident) GeGLUBackward(dgate, dup, dy, gate, up *tensor.Tensor) {
	defer r.stage(dgate, dup, dy, gate, up)()
	r.b.GeGLUBackward(dgate, dup, dy, gate, up)
}

func (r *resident) Softcap(dst, x *tensor.Tensor, c float32) {
	defer r.stage(dst, x)()
	r.b.Softcap(dst, x, c)
}

func (r *resident) SoftcapBackward(dx, dy, y *tensor.Tensor, c float32) {
	defer r.stage(dx, dy, y)()
	r.b.SoftcapBackward(dx, dy, y, c)
}
