package lora

import (
	"math"

	"llmlab/core/autograd"
	"llmlab/core/model"
	"llmlab/core/tensor"
)

// DoRA (weight-decomposed LoRA) splits each adapted weight into a magnitude
// and a direction: W' = m ⊙ (W + s·B·A) / ‖W + s·B·A‖, the norm taken over
// each output row and m, one value per output, initialised to ‖W‖ so that
// training starts from the base. As in the DoRA paper and PEFT, the norm is
// treated as a constant in the backward pass. With z = x·Wᵀ + s·(x·Aᵀ)·Bᵀ,
//
//	y = z ⊙ (m / ‖W + s·B·A‖) + bias
//
// so the low-rank path is LoRA's, and the magnitude scales each output.

// doraState holds what the norm computation keeps between steps: a
// vector of ones (the unit weight of the row norm), in the backend's memory
// once an op has used it, and the zero row ids of magnitudeScale.
type doraState struct {
	ones  *tensor.Tensor // (in)
	zeros []int32
}

// magnitudeInit returns ‖W_o‖ for every output row o of w (out, in).
func magnitudeInit(w *tensor.Tensor) []float32 {
	out, in := w.Rows(), w.Cols()
	f := w.Float32s()
	m := make([]float32, out)
	for o := range m {
		var s float64
		for _, v := range f[o*in : (o+1)*in] {
			s += float64(v) * float64(v)
		}
		m[o] = float32(math.Sqrt(s))
	}
	return m
}

// invNorms returns 1/‖W + s·B·A‖ per output row (out), a constant of
// the step, computed with backend ops so device tensors stay where they
// are: the merged rows are formed in a step tensor and RMSNorm without an
// epsilon gives 1/√(mean of squares), which is the inverse row norm times
// √in.
func (l *Linear) invNorms(t *autograd.Tape) *tensor.Tensor {
	base := l.Base.(*model.Linear)
	in, out := l.A.Value.Cols(), l.B.Value.Rows()
	st := &l.dora
	if st.ones == nil || st.ones.Numel() != in {
		st.ones = tensor.New(in)
		for i := range st.ones.F32 {
			st.ones.F32[i] = 1
		}
		if mem := tensor.MemoryOf(t.B); mem != nil {
			tensor.ToDevice(mem, st.ones) // on failure it stays on the host, and still works
		}
	}
	merged := t.Alloc(out, in)
	w := base.W.Value
	if w.DType != tensor.F32 {
		w = w.Convert(tensor.F32) // a storage-only base: widened on the host
	}
	tensor.Copy(merged, w)
	sb := t.AllocZero(l.B.Value.Shape...)
	t.B.AddScaled(sb, l.B.Value, l.Scale)
	t.B.MatMul(merged, sb, l.A.Value, tensor.MatMulOpts{Accumulate: true})
	normed, rstd := t.Alloc(out, in), t.Alloc(out)
	t.B.RMSNorm(normed, rstd, merged, st.ones, 0)
	inv := t.AllocZero(out)
	t.B.AddScaled(inv, rstd, float32(1/math.Sqrt(float64(in))))
	return inv
}

// forwardDoRA is Forward for a DoRA layer.
func (l *Linear) forwardDoRA(t *autograd.Tape, x *autograd.Var) *autograd.Var {
	base := l.Base.(*model.Linear)
	z := t.Linear(x, t.Param(base.W), nil) // (N, out) without the bias
	h := t.Linear(x, t.Param(l.A), nil)    // (N, r)
	u := t.Linear(h, t.Param(l.B), nil)    // (N, out)
	z = t.Add(z, t.Scale(u, l.Scale))
	var bias *autograd.Var
	if base.B != nil {
		bias = t.Param(base.B)
	}
	return magnitudeScale(t, z, t.Param(l.M), l.invNorms(t), bias, &l.dora.zeros)
}

// magnitudeScale returns y = z ⊙ (m ⊙ inv) + bias for z (N, C) and m, inv,
// bias (C); inv is a constant. Backend ops only: g = m ⊙ inv is gathered
// into every row (an embedding lookup of row 0, zeros the row ids) and
// multiplied in; dm is the column sums of dy ⊙ z, times inv.
func magnitudeScale(t *autograd.Tape, z, m *autograd.Var, inv *tensor.Tensor, bias *autograd.Var, zeros *[]int32) *autograd.Var {
	N, C := z.Value.Rows(), z.Value.Cols()
	if len(*zeros) < N {
		*zeros = make([]int32, N)
	}
	ids := (*zeros)[:N]
	g := t.Alloc(C)
	t.B.Mul(g, m.Value, inv)
	rows := t.Alloc(N, C)
	t.B.Embedding(rows, ids, g)
	out := t.Alloc(N, C)
	t.B.Mul(out, z.Value, rows)
	if bias != nil {
		t.B.AddBias(out, out, bias.Value)
	}
	var y *autograd.Var
	y = t.Custom(out, func() {
		dy := y.Grad
		if z.NeedsGrad() {
			tmp := t.Alloc(N, C)
			t.B.Mul(tmp, dy, rows)
			dz := t.GradOf(z)
			t.B.Add(dz, dz, tmp)
		}
		if m.NeedsGrad() {
			tmp := t.Alloc(N, C)
			t.B.Mul(tmp, dy, z.Value)
			col := t.AllocZero(C)
			t.B.SumRows(col, tmp)
			t.B.Mul(col, col, inv)
			dm := t.GradOf(m)
			t.B.Add(dm, dm, col)
		}
		if bias != nil && bias.NeedsGrad() {
			t.B.SumRows(t.GradOf(bias), dy)
		}
	}, z, m, bias)
	return y
}

// hostInvNorms is invNorms on the host, in float64 sums: for merging.
func (l *Linear) hostInvNorms() []float32 {
	A, B := l.A.Value.Float32s(), l.B.Value.Float32s()
	w := l.Base.(*model.Linear).W.Value.Float32s()
	r, in, out := l.A.Value.Rows(), l.A.Value.Cols(), l.B.Value.Rows()
	inv := make([]float32, out)
	row := make([]float32, in)
	for o := 0; o < out; o++ {
		copy(row, w[o*in:(o+1)*in])
		for k := 0; k < r; k++ {
			s := l.Scale * B[o*r+k]
			if s == 0 {
				continue
			}
			for i, a := range A[k*in : (k+1)*in] {
				row[i] += s * a
			}
		}
		var sum float64
		for _, v := range row {
			sum += float64(v) * float64(v)
		}
		inv[o] = float32(1 / math.Sqrt(max(sum, 1e-30)))
	}
	return inv
}

// mergeDoRA folds a DoRA layer into its base weight:
// W ← (m / ‖W + s·B·A‖) ⊙ (W + s·B·A), row by row.
func (l *Linear) mergeDoRA(w *tensor.Tensor) {
	inv := l.hostInvNorms()
	l.mergeLoRA(w)
	in := w.Cols()
	for o, m := range l.M.Value.Float32s() {
		g := m * inv[o]
		row := w.F32[o*in : (o+1)*in]
		for i := range row {
			row[i] *= g
		}
	}
}
