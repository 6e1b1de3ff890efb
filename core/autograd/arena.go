package autograd

import "llmlab/core/tensor"

// Arena hands out float32 tensors for one step's activations and
// gradients. Reset makes everything reusable; after the first step the slab
// is large enough for the whole step, so steady-state steps allocate
// nothing. Tensors from an arena are invalid after Reset.
type Arena struct {
	slab  []float32
	off   int
	extra int // floats requested beyond the slab this round
	spill [][]float32

	pool []*tensor.Tensor
	used int
}

// Alloc returns an F32 tensor whose contents are unspecified.
func (a *Arena) Alloc(shape ...int) *tensor.Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	var data []float32
	if a.off+n <= len(a.slab) {
		data = a.slab[a.off : a.off+n : a.off+n]
		a.off += n
	} else {
		data = make([]float32, n)
		a.spill = append(a.spill, data)
		a.extra += n
	}
	var t *tensor.Tensor
	if a.used < len(a.pool) {
		t = a.pool[a.used]
	} else {
		t = &tensor.Tensor{}
		a.pool = append(a.pool, t)
	}
	a.used++
	t.Shape = append(t.Shape[:0], shape...)
	t.DType = tensor.F32
	t.F32 = data
	t.Half = nil
	return t
}

// header returns a tensor header sharing src's storage with a new shape.
func (a *Arena) header(src *tensor.Tensor, shape []int) *tensor.Tensor {
	var t *tensor.Tensor
	if a.used < len(a.pool) {
		t = a.pool[a.used]
	} else {
		t = &tensor.Tensor{}
		a.pool = append(a.pool, t)
	}
	a.used++
	t.Shape = append(t.Shape[:0], shape...)
	t.DType, t.F32, t.Half = src.DType, src.F32, src.Half
	return t
}

// AllocZero returns a zeroed F32 tensor.
func (a *Arena) AllocZero(shape ...int) *tensor.Tensor {
	t := a.Alloc(shape...)
	clear(t.F32)
	return t
}

// Reset releases every tensor handed out since the last Reset. If the slab
// overflowed, it grows to fit the whole round next time.
func (a *Arena) Reset() {
	if a.extra > 0 {
		a.slab = make([]float32, a.off+a.extra)
		a.spill = a.spill[:0]
		a.extra = 0
	}
	a.off = 0
	a.used = 0
}

// Floats is the arena's current capacity in float32 values.
func (a *Arena) Floats() int { return len(a.slab) + a.extra }
