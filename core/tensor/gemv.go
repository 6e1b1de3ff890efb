package tensor

import (
	"slices"
	"sync"

	"llmlab/core/quant"
)

// The M = 1 path: one row of a times op(b). It is memory-bound (each
// element of b is used once), so it skips packing, reads b (F32, F16 or
// BF16) in place, and splits N across threads. Each output element is one
// kernel's fixed-order sum, whichever thread computes it.
//
// A few rows of a against a transposed b (a decode step of several
// sequences: a (M, K), b (N, K)) take the same path: each group of four
// rows of b is read once and dotted with every row of a while it is in
// L1, so b streams from memory once for all M rows, not once per row as
// packing it for the GEMM would cost at this M. Every output element is
// the same kernel call as with M = 1, so a row's result does not depend
// on the other rows in the batch.

const (
	gemvBytesPerTask = 64 << 10 // bytes of b per task: enough to amortise scheduling
	gemvColBlock     = 256      // columns per axpy block (no transpose): 1 KiB of y in L1
	gemvMaxRows      = 16       // rows of a (with TransB) that take this path
)

// lastAct keeps the last activation row quantized for GGML weights, and
// the row it came from: the products that read one input (a layer's
// query, key and value, or gate and up projections) quantize it once.
// The row is compared by value, since step buffers are reused.
type lastAct struct {
	mu  sync.Mutex
	x   []float32 // the row act holds, quantized
	act quant.Act
}

// quantize returns x quantized for weights of type qt: l's act, reused
// when it holds x already, with held true (the caller unlocks l.mu after
// the product); or, when another product holds l, own filled in.
func (l *lastAct) quantize(qt quant.Type, x []float32, own *quant.Act) (a *quant.Act, held bool) {
	if !l.mu.TryLock() {
		own.Quantize(qt, x)
		return own, false
	}
	if !slices.Equal(l.x, x) || !l.act.Retype(qt) {
		l.x = append(l.x[:0], x...)
		l.act.Quantize(qt, x)
	}
	return &l.act, true
}

// gemv computes p.c (M, N) [+]= a (M, K) · op(b) where M is 1, or M is
// at most gemvMaxRows and b is transposed ((1, K) and (K, 1) are the same
// vector).
func (c *CPU) gemv(sh *gemmShared) {
	p := &sh.prob
	st := &sh.st
	st.p, st.kern = p, p.kern
	esz := p.b.DType.Size()
	var fn func(*gemmStep, *gemmScratch, int)
	if qt, ok := p.b.DType.GGML(); ok && p.m == 1 && p.transB && p.k%quant.ActBlock(qt) == 0 {
		// GGML blocks: quantize x once per block, then integer dots
		// (dotBlocksTask), as llama.cpp runs its matrix-vector products.
		// (Several rows of a take dotTask, which widens each row of b
		// once for all of them.)
		var held bool
		st.act, held = c.act.quantize(qt, p.a, &sh.act)
		st.gn = max(4, gemvBytesPerTask/p.k/4*4)
		st.tasks = (p.n + st.gn - 1) / st.gn
		c.gemmRun(st, min(c.threads(), st.tasks), (*gemmStep).dotBlocksTask)
		st.p, st.act = nil, nil
		if held {
			c.act.mu.Unlock()
		}
		return
	}
	if p.transB {
		// Task = a run of rows of b (N, K): y[j] = dot(x, b[j, :]).
		st.gn = max(4, gemvBytesPerTask/(esz*p.k)/4*4)
		st.tasks = (p.n + st.gn - 1) / st.gn
		fn = (*gemmStep).dotTask
	} else {
		// Task = a block of columns of b (K, N): y[j0:j1] += x[k]·b[k, j0:j1]
		// for k in order; the y block stays in L1.
		st.gn = gemvColBlock
		st.tasks = (p.n + st.gn - 1) / st.gn
		fn = (*gemmStep).axpyTask
	}
	c.gemmRun(st, min(c.threads(), st.tasks), fn)
	st.p = nil
}

// dotTask computes columns [t·gn, (t+1)·gn) of every row of y, one row
// of b at a time, dotted with every row of a while it is in L1. (Four rows
// of b per kernel call, x read once for the four, streamed at less than
// half the rate of single rows here: 8 against 18 GB/s for F16 on an AMD
// Zen 4, 13 against 18 for F32.)
func (st *gemmStep) dotTask(s *gemmScratch, t int) {
	p, kern := st.p, st.kern
	if p.b.DType.Quantized() {
		s.row = grow(s.row, p.k)
	}
	for j := t * st.gn; j < min((t+1)*st.gn, p.n); j++ {
		off := p.bOff + j*p.k
		switch {
		case p.b.DType.Quantized():
			// Dequantised into scratch once for all rows of a.
			dequant(s.row, p.b, off)
			for m := range p.m {
				st.put(p.c[m*p.n+j:], kern.dot(p.a[m*p.k:(m+1)*p.k], s.row))
			}
		case p.b.DType == F32:
			w := p.b.F32[off : off+p.k]
			for m := range p.m {
				st.put(p.c[m*p.n+j:], kern.dot(p.a[m*p.k:(m+1)*p.k], w))
			}
		default:
			w := p.b.Half[off : off+p.k]
			for m := range p.m {
				st.put(p.c[m*p.n+j:], kern.dotH(p.a[m*p.k:(m+1)*p.k], w, p.b.DType))
			}
		}
	}
}

// put stores v in y[0], or adds it with accumulate.
func (st *gemmStep) put(y []float32, v float32) {
	if st.p.accumulate {
		y[0] += v
	} else {
		y[0] = v
	}
}

// dotBlocksTask computes rows [t·gn, (t+1)·gn) of y = x·bᵀ for GGML
// block weights, from the quantized x in st.act.
func (st *gemmStep) dotBlocksTask(s *gemmScratch, t int) {
	p := st.p
	qt, _ := p.b.DType.GGML()
	rb := p.k / qt.Block() * qt.BlockBytes()
	base := p.bOff / qt.Block() * qt.BlockBytes()
	j0, j1 := t*st.gn, min((t+1)*st.gn, p.n)
	w := p.b.Q[base+j0*rb : base+j1*rb]
	if !p.accumulate {
		quant.DotRows(qt, w, j1-j0, st.act, p.c[j0:j1])
		return
	}
	s.row = grow(s.row, j1-j0)
	quant.DotRows(qt, w, j1-j0, st.act, s.row)
	for i, v := range s.row {
		p.c[j0+i] += v
	}
}

func (st *gemmStep) axpyTask(s *gemmScratch, t int) {
	p, kern := st.p, st.kern
	j0 := t * st.gn
	y := p.c[j0:min(j0+st.gn, p.n)]
	if !p.accumulate {
		clear(y)
	}
	s.row = grow(s.row, len(y))
	for k, xv := range p.a {
		off := p.bOff + k*p.n + j0
		if p.b.DType == F32 {
			kern.axpy(y, xv, p.b.F32[off:off+len(y)])
		} else if p.b.DType.Quantized() {
			dequant(s.row, p.b, off)
			kern.axpy(y, xv, s.row)
		} else {
			kern.widen(s.row, p.b.Half[off:off+len(y)], p.b.DType)
			kern.axpy(y, xv, s.row)
		}
	}
}
