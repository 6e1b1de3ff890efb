package devicetest

import "llmlab/core/tensor"

// Staged is a Backend that runs every op of Inner between the two halves
// of Stage: Stage gets the op's tensor arguments (and its
// *tensor.AttentionOpts, whose prefix tensors count too), prepares them and
// returns what undoes that after the op. Backend (CPU kernels over
// stand-in device memory) and backendtest's resident check (every op
// again with device-resident arguments) are both this shape; each embeds
// a Staged and adds what it needs.
type Staged struct {
	Inner tensor.Backend
	Stage func(args ...any) func()
}

func (s Staged) MatMul(dst, a, w *tensor.Tensor, o tensor.MatMulOpts) {
	defer s.Stage(dst, a, w)()
	s.Inner.MatMul(dst, a, w, o)
}

func (s Staged) Embedding(dst *tensor.Tensor, ids []int32, table *tensor.Tensor) {
	defer s.Stage(dst, table)()
	s.Inner.Embedding(dst, ids, table)
}

func (s Staged) EmbeddingBackward(dtable *tensor.Tensor, ids []int32, dy *tensor.Tensor) {
	defer s.Stage(dtable, dy)()
	s.Inner.EmbeddingBackward(dtable, ids, dy)
}

func (s Staged) LayerNorm(dst, mean, rstd, x, w, bias *tensor.Tensor, eps float32) {
	defer s.Stage(dst, mean, rstd, x, w, bias)()
	s.Inner.LayerNorm(dst, mean, rstd, x, w, bias, eps)
}

func (s Staged) LayerNormBackward(dx, dw, db, dy, x, w, mean, rstd *tensor.Tensor) {
	defer s.Stage(dx, dw, db, dy, x, w, mean, rstd)()
	s.Inner.LayerNormBackward(dx, dw, db, dy, x, w, mean, rstd)
}

func (s Staged) RMSNorm(dst, rstd, x, w *tensor.Tensor, eps float32) {
	defer s.Stage(dst, rstd, x, w)()
	s.Inner.RMSNorm(dst, rstd, x, w, eps)
}

func (s Staged) RMSNormBackward(dx, dw, dy, x, w, rstd *tensor.Tensor) {
	defer s.Stage(dx, dw, dy, x, w, rstd)()
	s.Inner.RMSNormBackward(dx, dw, dy, x, w, rstd)
}

func (s Staged) GELU(dst, x *tensor.Tensor) {
	defer s.Stage(dst, x)()
	s.Inner.GELU(dst, x)
}

func (s Staged) GELUBackward(dx, dy, x *tensor.Tensor) {
	defer s.Stage(dx, dy, x)()
	s.Inner.GELUBackward(dx, dy, x)
}

func (s Staged) SwiGLU(dst, gate, up *tensor.Tensor) {
	defer s.Stage(dst, gate, up)()
	s.Inner.SwiGLU(dst, gate, up)
}

func (s Staged) SwiGLUBackward(dgate, dup, dy, gate, up *tensor.Tensor) {
	defer s.Stage(dgate, dup, dy, gate, up)()
	s.Inner.SwiGLUBackward(dgate, dup, dy, gate, up)
}

func (s Staged) RoPE(dst, x *tensor.Tensor, pos []int32, tab *tensor.RoPETable) {
	defer s.Stage(dst, x)()
	s.Inner.RoPE(dst, x, pos, tab)
}

func (s Staged) RoPEBackward(dx, dy *tensor.Tensor, pos []int32, tab *tensor.RoPETable) {
	defer s.Stage(dx, dy)()
	s.Inner.RoPEBackward(dx, dy, pos, tab)
}

func (s Staged) Attention(out, lse, q, k, v *tensor.Tensor, o *tensor.AttentionOpts) {
	defer s.Stage(out, lse, q, k, v, o)()
	s.Inner.Attention(out, lse, q, k, v, o)
}

func (s Staged) AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse *tensor.Tensor, o *tensor.AttentionOpts) {
	defer s.Stage(dq, dk, dv, dout, q, k, v, out, lse, o)()
	s.Inner.AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse, o)
}

func (s Staged) CrossEntropy(loss, lse, logits *tensor.Tensor, targets []int32) {
	defer s.Stage(loss, lse, logits)()
	s.Inner.CrossEntropy(loss, lse, logits, targets)
}

func (s Staged) CrossEntropyBackward(dlogits, dloss, logits, lse *tensor.Tensor, targets []int32) {
	defer s.Stage(dlogits, dloss, logits, lse)()
	s.Inner.CrossEntropyBackward(dlogits, dloss, logits, lse, targets)
}

func (s Staged) Add(dst, x, y *tensor.Tensor) {
	defer s.Stage(dst, x, y)()
	s.Inner.Add(dst, x, y)
}

func (s Staged) Mul(dst, x, y *tensor.Tensor) {
	defer s.Stage(dst, x, y)()
	s.Inner.Mul(dst, x, y)
}

func (s Staged) AddScaled(dst, x *tensor.Tensor, f float32) {
	defer s.Stage(dst, x)()
	s.Inner.AddScaled(dst, x, f)
}

func (s Staged) AddBias(dst, x, bias *tensor.Tensor) {
	defer s.Stage(dst, x, bias)()
	s.Inner.AddBias(dst, x, bias)
}

func (s Staged) SumRows(dst, x *tensor.Tensor) {
	defer s.Stage(dst, x)()
	s.Inner.SumRows(dst, x)
}

func (s Staged) SplitCols(dsts []*tensor.Tensor, x *tensor.Tensor) {
	defer s.Stage(dsts, x)()
	s.Inner.SplitCols(dsts, x)
}

func (s Staged) ConcatCols(dst *tensor.Tensor, srcs []*tensor.Tensor) {
	defer s.Stage(dst, srcs)()
	s.Inner.ConcatCols(dst, srcs)
}

func (s Staged) AdamW(p, g, m, v *tensor.Tensor, o tensor.AdamWOpts) {
	defer s.Stage(p, g, m, v)()
	s.Inner.AdamW(p, g, m, v, o)
}

func (s Staged) SumSquares(x *tensor.Tensor) float64 {
	defer s.Stage(x)()
	return s.Inner.SumSquares(x)
}

func (s Staged) GeGLU(dst, gate, up *tensor.Tensor) {
	defer s.Stage(dst, gate, up)()
	s.Inner.GeGLU(dst, gate, up)
}

func (s Staged) GeGLUBackward(dgate, dup, dy, gate, up *tensor.Tensor) {
	defer s.Stage(dgate, dup, dy, gate, up)()
	s.Inner.GeGLUBackward(dgate, dup, dy, gate, up)
}

func (s Staged) Softcap(dst, x *tensor.Tensor, c float32) {
	defer s.Stage(dst, x)()
	s.Inner.Softcap(dst, x, c)
}

func (s Staged) ReLU(dst, x *tensor.Tensor) {
	defer s.Stage(dst, x)()
	s.Inner.ReLU(dst, x)
}

func (s Staged) ReLUBackward(dx, dy, y *tensor.Tensor) {
	defer s.Stage(dx, dy, y)()
	s.Inner.ReLUBackward(dx, dy, y)
}

func (s Staged) SoftcapBackward(dx, dy, y *tensor.Tensor, c float32) {
	defer s.Stage(dx, dy, y)()
	s.Inner.SoftcapBackward(dx, dy, y, c)
}
