package autograd

import (
	"runtime/debug"

	"llmlab/core/tensor"
)

// Arena hands out float32 tensors for one step's activations and
// gradients. Reset makes everything reusable; after the first step the slab
// is large enough for the whole step, so steady-state steps allocate
// nothing. Tensors from an arena are invalid after Reset.
//
// The slab lives where the backend computes: host memory for the CPU
// backend, mappable device memory from a tensor.Allocator, or device
// memory from a tensor.Memory (then the tensors are device tensors and
// zeroing is a fill on the device, never a host loop).
type Arena struct {
	slab  []float32
	off   int
	extra int // floats requested beyond the slab this round
	spill [][]float32
	// peak is the most floats the round held at once before a rewind
	// (see Mark), and grow whether it spilled past the slab: Reset sizes
	// the next slab from them.
	peak int
	grow bool
	// reuse holds, by length, host spill buffers a rewind let go: the
	// next layer's spills take them, so a round that outgrows the slab
	// holds one layer's spills, not every layer's.
	reuse map[int][][]float32

	pool []*tensor.Tensor
	used int

	// free holds buffers released during the backward pass, by length:
	// a gradient is dead once the op that produced its value has run
	// backward, and the next gradient of the same size reuses it.
	free map[int][]span

	// dev, when set, provides the slab in device memory (see
	// tensor.Allocator); tensors are then aligned to tensor.AllocAlign.
	dev     tensor.Allocator
	devSlab bool // slab came from dev

	// mem, when set, provides the slab in a backend's own memory (see
	// tensor.Memory): memBase, memCap floats, aligned like dev's.
	mem      tensor.Memory
	memBase  uintptr
	memCap   int
	memSpill []uintptr
}

// span is one buffer of the arena: a host slice, or floats of device
// memory at dev.
type span struct {
	host []float32
	dev  uintptr
}

// bump returns a span of n floats from the slab, or from a spill buffer
// when the slab is full this round.
func (a *Arena) bump(n int) span {
	if a.mem != nil {
		if a.off+n <= a.memCap {
			s := span{dev: a.memBase + uintptr(4*a.off)}
			a.off = min((a.off+n+tensor.AllocAlign-1)/tensor.AllocAlign*tensor.AllocAlign, a.memCap)
			return s
		}
		a.extra += n + tensor.AllocAlign
		a.grow = true
		if p, err := a.mem.Alloc(4 * max(n, 1)); err == nil {
			a.memSpill = append(a.memSpill, p)
			return span{dev: p}
		}
		// Out of device memory: a host buffer still works (the backend
		// copies it in for each op), only slower.
	}
	if a.off+n <= len(a.slab) {
		data := a.slab[a.off : a.off+n : a.off+n]
		a.off += n
		if a.devSlab {
			a.off = min((a.off+tensor.AllocAlign-1)/tensor.AllocAlign*tensor.AllocAlign, len(a.slab))
		}
		return span{host: data}
	}
	var data []float32
	if l := a.reuse[n]; len(l) > 0 {
		data = l[len(l)-1]
		l[len(l)-1] = nil
		a.reuse[n] = l[:len(l)-1]
	} else {
		data = make([]float32, n)
	}
	a.spill = append(a.spill, data)
	a.grow = true
	if a.mem == nil {
		a.extra += n
		if a.dev != nil {
			a.extra += tensor.AllocAlign
		}
	}
	return span{host: data}
}

// Alloc returns an F32 tensor whose contents are unspecified.
func (a *Arena) Alloc(shape ...int) *tensor.Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return a.wrap(a.bump(n), shape)
}

// wrap returns a pooled F32 header over s.
func (a *Arena) wrap(s span, shape []int) *tensor.Tensor {
	t := a.header(&tensor.Tensor{}, shape)
	t.DType, t.F32 = tensor.F32, s.host
	if s.host == nil {
		t.Dev = tensor.Device{Mem: a.mem, Ptr: s.dev}
	}
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
	t.DType, t.F32, t.Half, t.Q, t.Scale, t.Dev = src.DType, src.F32, src.Half, src.Q, src.Scale, src.Dev
	return t
}

// AllocZero returns a zeroed F32 tensor, reusing a released buffer of the
// same size when there is one.
func (a *Arena) AllocZero(shape ...int) *tensor.Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	var t *tensor.Tensor
	if l := a.free[n]; len(l) > 0 {
		t = a.wrap(l[len(l)-1], shape)
		a.free[n] = l[:len(l)-1]
	} else {
		t = a.Alloc(shape...)
	}
	if t.OnDevice() {
		a.mem.Fill(t, 0)
	} else {
		clear(t.F32)
	}
	return t
}

// release makes x's buffer reusable by AllocZero until the next Reset.
func (a *Arena) release(x *tensor.Tensor) {
	n := x.Numel()
	if n == 0 || x.DType != tensor.F32 {
		return
	}
	var s span
	switch {
	case x.OnDevice() && x.Dev.Mem == a.mem:
		s.dev = x.Dev.Ptr
	case len(x.F32) == n:
		s.host = x.F32
	default:
		return
	}
	if a.free == nil {
		a.free = map[int][]span{}
	}
	a.free[n] = append(a.free[n], s)
}

// Reset releases every tensor handed out since the last Reset. If the slab
// overflowed, it grows to fit the whole round next time.
func (a *Arena) Reset() {
	for _, p := range a.memSpill {
		a.mem.Free(p)
	}
	a.memSpill = a.memSpill[:0]
	if a.grow {
		n := max(a.peak, a.off+a.extra)
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
		clear(a.reuse)
		for _, t := range a.pool {
			t.F32, t.Dev = nil, tensor.Device{}
		}
		if a.mem != nil {
			if a.memCap > 0 {
				a.mem.Free(a.memBase)
			}
			a.memBase, a.memCap = 0, 0
			if p, err := a.mem.Alloc(4 * n); err == nil {
				a.memBase, a.memCap = p, n
			}
		} else {
			debug.FreeOSMemory()
			if a.dev != nil {
				a.slab = a.dev.AllocF32(n)
				a.devSlab = a.slab != nil
			}
			if a.slab == nil {
				a.slab = make([]float32, n)
			}
		}
		a.extra = 0
	}
	a.off, a.peak, a.grow = 0, 0, false
	a.used = 0
	for n, l := range a.free {
		clear(l)
		a.free[n] = l[:0]
	}
}

// Mark is a position in a host arena's round (see Tape.Mark).
type Mark struct {
	off, extra, spill, used int
}

// mark returns the arena's position; ok is false where the arena cannot
// be rewound: one in device memory, where a queued op may still read
// what a rewind would hand out again.
func (a *Arena) mark() (m Mark, ok bool) {
	if a.mem != nil || a.dev != nil {
		return Mark{}, false
	}
	return Mark{off: a.off, extra: a.extra, spill: len(a.spill), used: a.used}, true
}

// rewind makes the floats handed out since m reusable. The headers
// handed out since m are emptied, not reused (a stale pointer to one sees
// no data rather than another tensor's), so the spill buffers made since
// m can be collected; the round's peak is kept for Reset.
func (a *Arena) rewind(m Mark) {
	a.peak = max(a.peak, a.off+a.extra)
	a.off, a.extra = m.off, m.extra
	for _, t := range a.pool[m.used:a.used] {
		t.F32, t.Half, t.Q, t.Scale = nil, nil, nil, nil
	}
	for i, b := range a.spill[m.spill:] {
		if a.reuse == nil {
			a.reuse = map[int][][]float32{}
		}
		a.reuse[len(b)] = append(a.reuse[len(b)], b)
		a.spill[m.spill+i] = nil
	}
	a.spill = a.spill[:m.spill]
}

// freeSlab frees the slab (device memory back to its Memory or Allocator)
// after a Reset; the next round grows a new one.
func (a *Arena) freeSlab() {
	for _, t := range a.pool {
		t.F32, t.Dev = nil, tensor.Device{}
	}
	if a.mem != nil && a.memCap > 0 {
		a.mem.Free(a.memBase)
	}
	a.memBase, a.memCap = 0, 0
	if a.devSlab {
		a.dev.FreeF32(a.slab)
	}
	a.slab, a.devSlab = nil, false
	a.off, a.extra = 0, 0
}

// Floats is the arena's current capacity in float32 values.
func (a *Arena) Floats() int { return len(a.slab) + a.memCap + a.extra }
