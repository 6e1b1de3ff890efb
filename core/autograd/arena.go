package autograd

import (
	"runtime/debug"

	"llmlab/core/tensor"
)

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

	// free holds buffers released during the backward pass, by length:
	// a gradient is dead once the op that produced its value has run
	// backward, and the next gradient of the same size reuses it.
	free map[int][][]float32

	// dev, when set, provides the slab in device memory (see
	// tensor.Allocator); tensors are then aligned to tensor.AllocAlign.
	dev     tensor.Allocator
	devSlab bool // slab came from dev
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
		if a.devSlab {
			a.off = min((a.off+tensor.AllocAlign-1)/tensor.AllocAlign*tensor.AllocAlign, len(a.slab))
		}
	} else {
		data = make([]float32, n)
		a.spill = append(a.spill, data)
		a.extra += n
		if a.dev != nil {
			a.extra += tensor.AllocAlign
		}
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
	t.Half, t.Q, t.Scale = nil, nil, nil
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
	t.DType, t.F32, t.Half, t.Q, t.Scale = src.DType, src.F32, src.Half, src.Q, src.Scale
	return t
}

// AllocZero returns a zeroed F32 tensor, reusing a released buffer of the
// same size when there is one.
func (a *Arena) AllocZero(shape ...int) *tensor.Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	if l := a.free[n]; len(l) > 0 {
		data := l[len(l)-1]
		a.free[n] = l[:len(l)-1]
		clear(data)
		t := a.header(&tensor.Tensor{}, shape)
		t.DType, t.F32 = tensor.F32, data
		return t
	}
	t := a.Alloc(shape...)
	clear(t.F32)
	return t
}

// release makes data reusable by AllocZero until the next Reset.
func (a *Arena) release(data []float32) {
	if len(data) == 0 {
		return
	}
	if a.free == nil {
		a.free = map[int][][]float32{}
	}
	a.free[len(data)] = append(a.free[len(data)], data)
}

// Reset releases every tensor handed out since the last Reset. If the slab
// overflowed, it grows to fit the whole round next time.
func (a *Arena) Reset() {
	if a.extra > 0 {
		n := a.off + a.extra
		// Let the old slab and the spilled tensors go before the new slab
		// is made: a step's activations are most of a run's memory, and
		// the collector would otherwise keep both until its next cycle, and
		// the process would hold on to the old pages.
		if a.devSlab {
			a.dev.FreeF32(a.slab)
		}
		a.slab, a.devSlab = nil, false
		clear(a.spill)
		a.spill = a.spill[:0]
		for _, t := range a.pool {
			t.F32 = nil
		}
		debug.FreeOSMemory()
		if a.dev != nil {
			a.slab = a.dev.AllocF32(n)
			a.devSlab = a.slab != nil
		}
		if a.slab == nil {
			a.slab = make([]float32, n)
		}
		a.extra = 0
	}
	a.off = 0
	a.used = 0
	for n, l := range a.free {
		clear(l)
		a.free[n] = l[:0]
	}
}

// Floats is the arena's current capacity in float32 values.
func (a *Arena) Floats() int { return len(a.slab) + a.extra }
