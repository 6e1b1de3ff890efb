package autograd

import (
	"fmt"

	"llmlab/core/tensor"
)

// View returns x reshaped (same storage, same number of elements). Its
// gradient is a view of x's gradient, so a view costs nothing backwards.
func (t *Tape) View(x *Var, shape ...int) *Var {
	n := 1
	for _, d := range shape {
		n *= d
	}
	if n != x.Value.Numel() {
		panic(fmt.Sprintf("autograd.View: %v to %v", x.Value.Shape, shape))
	}
	v := t.newVar(t.arena.header(x.Value, shape), x.needs)
	v.viewOf = x
	return v
}

// Linear computes y = x·wᵀ + b for x (N, in), w (out, in), b (out) or nil.
func (t *Tape) Linear(x, w, b *Var) *Var {
	N, out := x.Value.Rows(), w.Value.Rows()
	if w.Value.Cols() != x.Value.Cols() {
		panic(fmt.Sprintf("autograd.Linear: x %v, w %v", x.Value.Shape, w.Value.Shape))
	}
	y := t.arena.Alloc(N, out)
	t.B.MatMul(y, x.Value, w.Value, tensor.MatMulOpts{TransB: true})
	if b != nil {
		t.B.AddBias(y, y, b.Value)
	}
	o, _ := t.record(y, linearBack, x, w, b)
	return o
}

func linearBack(t *Tape, n *Node) {
	x, w, b, dy := n.In[0], n.In[1], n.In[2], n.Out.Grad
	if n.want(0) {
		t.B.MatMul(t.GradOf(x), dy, w.Value, tensor.MatMulOpts{Accumulate: true})
	}
	if n.want(1) {
		t.B.MatMul(t.GradOf(w), dy, x.Value, tensor.MatMulOpts{TransA: true, Accumulate: true})
	}
	if b != nil && n.want(2) {
		t.B.SumRows(t.GradOf(b), dy)
	}
}

// Embedding gathers rows of table (V, C) for ids: (len(ids), C). ids must
// stay unchanged until Backward.
func (t *Tape) Embedding(ids []int32, table *Var) *Var {
	y := t.arena.Alloc(len(ids), table.Value.Cols())
	t.B.Embedding(y, ids, table.Value)
	o, n := t.record(y, embeddingBack, table)
	if n != nil {
		n.Ints = ids
	}
	return o
}

func embeddingBack(t *Tape, n *Node) {
	t.B.EmbeddingBackward(t.GradOf(n.In[0]), n.Ints, n.Out.Grad)
}

// LayerNorm normalises x (N, C) over C with weight w and bias b (or nil).
func (t *Tape) LayerNorm(x, w, b *Var, eps float32) *Var {
	N, C := x.Value.Rows(), x.Value.Cols()
	y := t.arena.Alloc(N, C)
	mean, rstd := t.arena.Alloc(N), t.arena.Alloc(N)
	var bv *tensor.Tensor
	if b != nil {
		bv = b.Value
	}
	t.B.LayerNorm(y, mean, rstd, x.Value, w.Value, bv, eps)
	o, n := t.record(y, layerNormBack, x, w, b)
	if n != nil {
		n.Save[0], n.Save[1] = mean, rstd
	}
	return o
}

func layerNormBack(t *Tape, n *Node) {
	x, w, b := n.In[0], n.In[1], n.In[2]
	var dx, dw, db *tensor.Tensor
	if n.want(0) {
		dx = t.GradOf(x)
	}
	if n.want(1) {
		dw = t.GradOf(w)
	}
	if b != nil && n.want(2) {
		db = t.GradOf(b)
	}
	if dx == nil {
		dx = t.arena.AllocZero(x.Value.Shape...) // the kernel computes dx alongside dw
	}
	t.B.LayerNormBackward(dx, dw, db, n.Out.Grad, x.Value, w.Value, n.Save[0], n.Save[1])
}

// RMSNorm normalises x (N, C) by its root mean square, times w (C).
func (t *Tape) RMSNorm(x, w *Var, eps float32) *Var {
	N, C := x.Value.Rows(), x.Value.Cols()
	y := t.arena.Alloc(N, C)
	rstd := t.arena.Alloc(N)
	t.B.RMSNorm(y, rstd, x.Value, w.Value, eps)
	o, n := t.record(y, rmsNormBack, x, w)
	if n != nil {
		n.Save[0] = rstd
	}
	return o
}

func rmsNormBack(t *Tape, n *Node) {
	x, w := n.In[0], n.In[1]
	var dw *tensor.Tensor
	if n.want(1) {
		dw = t.GradOf(w)
	}
	t.B.RMSNormBackward(t.gradOrScratch(n, 0), dw, n.Out.Grad, x.Value, w.Value, n.Save[0])
}

// GELU applies the tanh-approximated GELU elementwise.
func (t *Tape) GELU(x *Var) *Var {
	y := t.arena.Alloc(x.Value.Shape...)
	t.B.GELU(y, x.Value)
	o, _ := t.record(y, geluBack, x)
	return o
}

func geluBack(t *Tape, n *Node) { t.B.GELUBackward(t.GradOf(n.In[0]), n.Out.Grad, n.In[0].Value) }

// gradOrScratch is where a backward kernel that writes both gradients of
// a two-input op puts input i's: its gradient when it wants one, else a
// zeroed scratch tensor of its shape.
func (t *Tape) gradOrScratch(n *Node, i int) *tensor.Tensor {
	if n.want(i) {
		return t.GradOf(n.In[i])
	}
	return t.arena.AllocZero(n.In[i].Value.Shape...)
}

// SwiGLU computes silu(gate) * up elementwise.
func (t *Tape) SwiGLU(gate, up *Var) *Var {
	y := t.arena.Alloc(gate.Value.Shape...)
	t.B.SwiGLU(y, gate.Value, up.Value)
	o, _ := t.record(y, swigluBack, gate, up)
	return o
}

func swigluBack(t *Tape, n *Node) {
	g, u := n.In[0], n.In[1]
	t.B.SwiGLUBackward(t.gradOrScratch(n, 0), t.gradOrScratch(n, 1), n.Out.Grad, g.Value, u.Value)
}

// RoPE rotates x (N, H, D) by the positions pos (len N). pos must stay
// unchanged until Backward.
func (t *Tape) RoPE(x *Var, pos []int32, tab *tensor.RoPETable) *Var {
	y := t.arena.Alloc(x.Value.Shape...)
	t.B.RoPE(y, x.Value, pos, tab)
	o, n := t.record(y, ropeBack, x)
	if n != nil {
		n.Ints, n.Rope = pos, tab
	}
	return o
}

func ropeBack(t *Tape, n *Node) {
	t.B.RoPEBackward(t.GradOf(n.In[0]), n.Out.Grad, n.Ints, n.Rope)
}

// Attention runs fused causal attention (see tensor.AttentionOpts for the
// layouts). prefixK and prefixV may be nil; when set they are learned
// prefixes of shape (KVH, P, D) and receive gradients.
func (t *Tape) Attention(q, k, v, prefixK, prefixV *Var, o tensor.AttentionOpts) *Var {
	out := t.arena.Alloc(q.Value.Shape...)
	lse := t.arena.Alloc(o.Batch, o.Heads, o.Queries)
	if prefixK != nil {
		o.PrefixK, o.PrefixV = prefixK.Value, prefixV.Value
	}
	t.B.Attention(out, lse, q.Value, k.Value, v.Value, &o)
	res, n := t.record(out, attentionBack, q, k, v, prefixK, prefixV)
	if n != nil {
		n.Att = o
		n.Save[0] = lse
	}
	return res
}

func attentionBack(t *Tape, n *Node) {
	q, k, v := n.In[0], n.In[1], n.In[2]
	o := n.Att // a copy: the gradient fields are per call
	dq := t.gradOrScratch(n, 0)
	var dk, dv *tensor.Tensor
	if n.want(1) || n.want(2) {
		dk, dv = t.GradOf(k), t.GradOf(v)
	}
	if n.In[3] != nil && (n.want(3) || n.want(4)) {
		o.DPrefixK, o.DPrefixV = t.GradOf(n.In[3]), t.GradOf(n.In[4])
	}
	t.B.AttentionBackward(dq, dk, dv, n.Out.Grad, q.Value, k.Value, v.Value, n.Out.Value, n.Save[0], &o)
}

// Add returns a + b (same shapes).
func (t *Tape) Add(a, b *Var) *Var {
	y := t.arena.Alloc(a.Value.Shape...)
	t.B.Add(y, a.Value, b.Value)
	o, _ := t.record(y, addBack, a, b)
	return o
}

func addBack(t *Tape, n *Node) {
	for i := 0; i < 2; i++ {
		if n.want(i) {
			t.B.AddScaled(t.GradOf(n.In[i]), n.Out.Grad, 1)
		}
	}
}

// Mul returns a * b elementwise (same shapes).
func (t *Tape) Mul(a, b *Var) *Var {
	y := t.arena.Alloc(a.Value.Shape...)
	t.B.Mul(y, a.Value, b.Value)
	o, _ := t.record(y, mulBack, a, b)
	return o
}

func mulBack(t *Tape, n *Node) {
	a, b := n.In[0], n.In[1]
	tmp := t.arena.Alloc(a.Value.Shape...)
	if n.want(0) {
		t.B.Mul(tmp, n.Out.Grad, b.Value)
		t.B.AddScaled(t.GradOf(a), tmp, 1)
	}
	if n.want(1) {
		t.B.Mul(tmp, n.Out.Grad, a.Value)
		t.B.AddScaled(t.GradOf(b), tmp, 1)
	}
}

// Scale returns s * x.
func (t *Tape) Scale(x *Var, s float32) *Var {
	y := t.arena.AllocZero(x.Value.Shape...)
	t.B.AddScaled(y, x.Value, s)
	o, n := t.record(y, scaleBack, x)
	if n != nil {
		n.F = s
	}
	return o
}

func scaleBack(t *Tape, n *Node) { t.B.AddScaled(t.GradOf(n.In[0]), n.Out.Grad, n.F) }

// SplitCols splits x (N, Σsizes) into column blocks (N, sizes[i]); at most 4.
func (t *Tape) SplitCols(x *Var, sizes ...int) []*Var {
	if len(sizes) > 4 {
		panic("autograd.SplitCols: at most 4 parts")
	}
	N := x.Value.Rows()
	parts := make([]*tensor.Tensor, len(sizes))
	for i, c := range sizes {
		parts[i] = t.arena.Alloc(N, c)
	}
	t.B.SplitCols(parts, x.Value)
	outs := make([]*Var, len(sizes))
	first, n := t.record(parts[0], splitBack, x)
	outs[0] = first
	for i := 1; i < len(sizes); i++ {
		outs[i] = t.newVar(parts[i], first.needs)
	}
	if n != nil {
		copy(n.Outs[:], outs[1:])
	}
	return outs
}

func splitBack(t *Tape, n *Node) {
	grads := make([]*tensor.Tensor, 0, 4)
	grads = append(grads, t.GradOf(n.Out))
	for _, o := range n.Outs {
		if o != nil {
			grads = append(grads, t.GradOf(o))
		}
	}
	x := n.In[0]
	tmp := t.arena.Alloc(x.Value.Shape...)
	t.B.ConcatCols(tmp, grads)
	t.B.AddScaled(t.GradOf(x), tmp, 1)
}

// CrossEntropy returns the per-row loss (N) of logits (N, V) against
// targets (len N, negative = ignored, loss 0). targets must stay unchanged
// until Backward.
func (t *Tape) CrossEntropy(logits *Var, targets []int32) *Var {
	N := logits.Value.Rows()
	loss, lse := t.arena.Alloc(N), t.arena.Alloc(N)
	t.B.CrossEntropy(loss, lse, logits.Value, targets)
	o, n := t.record(loss, ceBack, logits)
	if n != nil {
		n.Ints, n.Save[0] = targets, lse
	}
	return o
}

func ceBack(t *Tape, n *Node) {
	t.B.CrossEntropyBackward(t.GradOf(n.In[0]), n.Out.Grad, n.In[0].Value, n.Save[0], n.Ints)
}

// SumScaled returns the scalar s·Σx (shape [1]); with s = 1/count it is a mean.
func (t *Tape) SumScaled(x *Var, s float32) *Var {
	y := t.arena.AllocZero(1)
	if y.OnDevice() {
		// y = s·Σx without reading it on the host: the sum into a
		// scratch scalar, then added scaled into the zeroed y.
		sum := t.arena.AllocZero(1)
		t.B.SumRows(sum, t.arena.header(x.Value, []int{x.Value.Numel(), 1}))
		t.B.AddScaled(y, sum, s)
	} else {
		t.B.SumRows(y, t.arena.header(x.Value, []int{x.Value.Numel(), 1}))
		y.F32[0] *= s
	}
	o, n := t.record(y, sumBack, x)
	if n != nil {
		n.F = s
	}
	return o
}

func sumBack(t *Tape, n *Node) {
	dx := t.GradOf(n.In[0])
	ones := t.arena.Alloc(dx.Shape...)
	tensor.Fill(ones, 1)
	if dy := n.Out.Grad; dy.OnDevice() {
		// dx += ones·(F·dy), a (N, 1)·(1, 1) product: the scalar stays on
		// the device.
		g := t.arena.AllocZero(1, 1)
		t.B.AddScaled(g, dy, n.F)
		N := dx.Numel()
		t.B.MatMul(t.arena.header(dx, []int{N, 1}), t.arena.header(ones, []int{N, 1}), g, tensor.MatMulOpts{Accumulate: true})
		return
	}
	g := n.Out.Grad.F32[0] * n.F
	t.B.AddScaled(dx, ones, g)
}

// GeGLU computes gelu_tanh(gate) * up elementwise (Gemma's MLP).
func (t *Tape) GeGLU(gate, up *Var) *Var {
	y := t.arena.Alloc(gate.Value.Shape...)
	t.B.GeGLU(y, gate.Value, up.Value)
	o, _ := t.record(y, gegluBack, gate, up)
	return o
}

func gegluBack(t *Tape, n *Node) {
	g, u := n.In[0], n.In[1]
	t.B.GeGLUBackward(t.gradOrScratch(n, 0), t.gradOrScratch(n, 1), n.Out.Grad, g.Value, u.Value)
}

// Softcap returns c * tanh(x / c) elementwise (c > 0).
func (t *Tape) Softcap(x *Var, c float32) *Var {
	y := t.arena.Alloc(x.Value.Shape...)
	t.B.Softcap(y, x.Value, c)
	o, n := t.record(y, softcapBack, x)
	if n != nil {
		n.F = c
	}
	return o
}

func softcapBack(t *Tape, n *Node) {
	t.B.SoftcapBackward(t.GradOf(n.In[0]), n.Out.Grad, n.Out.Value, n.F)
}

// ReLU returns max(x, 0) elementwise.
func (t *Tape) ReLU(x *Var) *Var {
	y := t.arena.Alloc(x.Value.Shape...)
	t.B.ReLU(y, x.Value)
	o, _ := t.record(y, reluBack, x)
	return o
}

func reluBack(t *Tape, n *Node) {
	t.B.ReLUBackward(t.GradOf(n.In[0]), n.Out.Grad, n.Out.Value)
}

// ConcatCols joins column blocks xs[i] (N, Ci) into (N, ΣCi); at most 4
// parts (the inverse of SplitCols).
func (t *Tape) ConcatCols(xs ...*Var) *Var {
	if len(xs) > 4 {
		panic("autograd.ConcatCols: at most 4 parts")
	}
	N, C := xs[0].Value.Rows(), 0
	srcs := make([]*tensor.Tensor, len(xs))
	for i, x := range xs {
		if x.Value.Rows() != N {
			panic(fmt.Sprintf("autograd.ConcatCols: part %d %v, part 0 %v", i, x.Value.Shape, xs[0].Value.Shape))
		}
		srcs[i] = x.Value
		C += x.Value.Cols()
	}
	y := t.arena.Alloc(N, C)
	t.B.ConcatCols(y, srcs)
	o, n := t.record(y, concatBack, xs...)
	_ = n
	return o
}

func concatBack(t *Tape, n *Node) {
	var parts []*tensor.Tensor
	for _, x := range n.In {
		if x == nil {
			break
		}
		parts = append(parts, t.arena.Alloc(x.Value.Rows(), x.Value.Cols()))
	}
	t.B.SplitCols(parts, n.Out.Grad)
	for i, p := range parts {
		if n.want(i) {
			t.B.AddScaled(t.GradOf(n.In[i]), p, 1)
		}
	}
}
