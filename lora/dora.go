package lora

import (
	"math"
	"slices"

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

// doraState caches the row norms of W + s·B·A for the A and B they were
// computed from: generation calls Forward once per token, and recomputing
// costs out·in·r per call, while comparing A and B costs (in+out)·r.
type doraState struct {
	a, b []float32 // copies of A and B at the last computation
	inv  []float32 // 1 / ‖W_o + s·B_o·A‖ per output row
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

// invNorms returns 1/‖W + s·B·A‖ per output row, from the cache when A and
// B have not changed.
func (l *Linear) invNorms() []float32 {
	st := &l.dora
	A, B := l.A.Value.Float32s(), l.B.Value.Float32s() // copies from a device
	if st.inv != nil && slices.Equal(st.a, A) && slices.Equal(st.b, B) {
		return st.inv
	}
	base := l.Base.(*model.Linear)
	w := base.W.Value.Float32s()
	r, in, out := l.A.Value.Rows(), l.A.Value.Cols(), l.B.Value.Rows()
	if st.inv == nil {
		st.inv = make([]float32, out)
	}
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
		st.inv[o] = float32(1 / math.Sqrt(max(sum, 1e-30)))
	}
	st.a = append(st.a[:0], A...)
	st.b = append(st.b[:0], B...)
	return st.inv
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
	return magnitudeScale(t, z, t.Param(l.M), l.invNorms(), bias)
}

// magnitudeScale returns y = z ⊙ (m ⊙ inv) + bias for z (N, C) and m, inv,
// bias (C); inv is a constant.
func magnitudeScale(t *autograd.Tape, z, m *autograd.Var, inv []float32, bias *autograd.Var) *autograd.Var {
	N, C := z.Value.Rows(), z.Value.Cols()
	out := t.Alloc(N, C)
	g := make([]float32, C) // m ⊙ inv
	mv := m.Value.Float32s()
	for i := range g {
		g[i] = mv[i] * inv[i]
	}
	var bv []float32
	if bias != nil {
		bv = bias.Value.Float32s()
	}
	// Host loops: on a device backend OnHost copies the tensors down and
	// the results back (correct, slow).
	tensor.OnHost(func() {
		for r := 0; r < N; r++ {
			zr, or := z.Value.F32[r*C:(r+1)*C], out.F32[r*C:(r+1)*C]
			for i, v := range zr {
				or[i] = v * g[i]
			}
			if bv != nil {
				for i, b := range bv {
					or[i] += b
				}
			}
		}
	}, out, z.Value)
	var y *autograd.Var
	y = t.Custom(out, func() {
		var dz, dm, db *tensor.Tensor
		if z.NeedsGrad() {
			dz = t.GradOf(z)
		}
		if m.NeedsGrad() {
			dm = t.GradOf(m)
		}
		if bias != nil && bias.NeedsGrad() {
			db = t.GradOf(bias)
		}
		tensor.OnHost(func() {
			dy := y.Grad.F32
			if dz != nil {
				for r := 0; r < N; r++ {
					for i := 0; i < C; i++ {
						dz.F32[r*C+i] += dy[r*C+i] * g[i]
					}
				}
			}
			if dm != nil {
				for r := 0; r < N; r++ {
					zr, dr := z.Value.F32[r*C:(r+1)*C], dy[r*C:(r+1)*C]
					for i := range dm.F32 {
						dm.F32[i] += dr[i] * zr[i] * inv[i]
					}
				}
			}
			if db != nil {
				for r := 0; r < N; r++ {
					for i, d := range dy[r*C : (r+1)*C] {
						db.F32[i] += d
					}
				}
			}
		}, y.Grad, dz, dm, db, z.Value)
	}, z, m, bias)
	return y
}

// mergeDoRA folds a DoRA layer into its base weight:
// W ← (m / ‖W + s·B·A‖) ⊙ (W + s·B·A), row by row.
func (l *Linear) mergeDoRA(w *tensor.Tensor) {
	inv := slices.Clone(l.invNorms())
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
