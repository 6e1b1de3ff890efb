package tensor

// The M = 1 path: one row of a times op(b). It is memory-bound (each
// element of b is used once), so it skips packing, reads b (F32, F16 or
// BF16) in place, and splits N across threads. Each output element is one
// kernel's fixed-order sum, whichever thread computes it.

const (
	gemvBytesPerTask = 64 << 10 // bytes of b per task: enough to amortise scheduling
	gemvColBlock     = 256      // columns per axpy block (no transpose): 1 KiB of y in L1
)

// gemv computes p.c (1, N) [+]= x (1, K) · op(b), x = p.a ((1, K) and
// (K, 1) are the same vector).
func (c *CPU) gemv(sh *gemmShared) {
	p := &sh.prob
	st := &sh.st
	st.p, st.kern = p, p.kern
	esz := p.b.DType.Size()
	var fn func(*gemmStep, *gemmScratch, int)
	if p.transB {
		// Task = a run of rows of b (N, K): y[j] = dot(x, b[j, :]).
		st.gn = max(1, gemvBytesPerTask/(esz*p.k))
		st.tasks = (p.n + st.gn - 1) / st.gn
		fn = (*gemmStep).dotTask
	} else {
		// Task = a block of columns of b (K, N): y[j0:j1] += x[k]·b[k, j0:j1]
		// for k in order; the y block stays in L1.
		st.gn = gemvColBlock
		st.tasks = (p.n + st.gn - 1) / st.gn
		fn = (*gemmStep).axpyTask
	}
	gemmRun(st, min(c.threads(), st.tasks), fn)
	st.p = nil
}

func (st *gemmStep) dotTask(_ *gemmScratch, t int) {
	p, kern := st.p, st.kern
	for j := t * st.gn; j < min((t+1)*st.gn, p.n); j++ {
		off := p.bOff + j*p.k
		var v float32
		if p.b.DType == F32 {
			v = kern.dot(p.a, p.b.F32[off:off+p.k])
		} else {
			v = kern.dotH(p.a, p.b.Half[off:off+p.k], p.b.DType)
		}
		if p.accumulate {
			p.c[j] += v
		} else {
			p.c[j] = v
		}
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
		} else {
			kern.widen(s.row, p.b.Half[off:off+len(y)], p.b.DType)
			kern.axpy(y, xv, s.row)
		}
	}
}
