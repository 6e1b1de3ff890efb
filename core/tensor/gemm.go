package tensor

import (
	"sync"
	"sync/atomic"

	"llmlab/core/quant"
)

// The CPU GEMM, BLIS style.
//
// For each block of NC columns (jc) and KC of the reduction (pc), op(b) is
// packed once into NR-column panels laid out k-major ((KC, NR) each, zero
// padded), shared by all workers. Workers then take tasks (groups of MR-row
// panels × groups of NR-column panels): for each MR-row panel they pack
// op(a) into an (KC, MR) micro-panel, which stays in L1, and sweep the B
// panels, which stay in L2, calling the micro-kernel on each MR×NR tile of
// c. The micro-kernel keeps the tile in registers for the whole KC loop and
// then adds it into c (or stores it, for the first pc block without
// Accumulate).
//
// Every element of c is therefore c = (((c0 + s_0) + s_1) + ...) where s_p
// is that block's k-ordered FMA chain: the order depends on KC only, which
// depends on K only. Threads change which goroutine computes a tile, never
// how, so results are bit-identical for any thread count.
//
// Where the time goes: the micro-kernel (≈95% on large shapes); packing B
// (once per call) and A (once per NC block) are O(MK + KN) against the
// O(MNK) kernel.

// gemmKernel is one micro-kernel: c[MR×NR] (+)= a·b over kc steps, where a
// is a (kc, MR) packed panel and b a (kc, NR) packed panel, c has row stride
// ldc, and accum != 0 adds into c instead of overwriting it.
type gemmKernel struct {
	name   string
	mr, nr int
	micro  func(kc int, a, b, c *float32, ldc int, accum int)
	// vector kernels for M = 1; see gemv.go.
	dot   func(x, w []float32) float32
	dotH  func(x []float32, w []uint16, dt DType) float32
	dot4  func(out *[4]float32, x, w []float32, ld int) // four rows of w, stride ld
	dot4H func(out *[4]float32, x []float32, w []uint16, ld int, dt DType)
	axpy  func(y []float32, alpha float32, x []float32)
	widen func(dst []float32, src []uint16, dt DType)
}

const (
	gemmKCMax    = 256     // reduction block: the A micro-panel is MR·KC floats in L1
	gemmL2Budget = 1 << 20 // bytes of packed B (KC × NC) kept in L2
)

// gemmBlocking returns the KC and NC block sizes for a problem. They depend
// on the problem and the kernel, never on the thread count.
func gemmBlocking(kern *gemmKernel, n, k int) (kc, nc int) {
	nk := max(1, (k+gemmKCMax/2)/gemmKCMax) // a block of up to 1.5·KCMax beats two small ones
	kc = (k + nk - 1) / nk
	ncMax := max(kern.nr, gemmL2Budget/4/kc/kern.nr*kern.nr)
	nn := (n + ncMax - 1) / ncMax
	nc = (n + nn - 1) / nn
	nc = (nc + kern.nr - 1) / kern.nr * kern.nr
	return kc, nc
}

// gemmScratch is one worker's reusable buffers.
type gemmScratch struct {
	a    []float32    // (KC, MR) packed micro-panel
	tile []float32    // (MR, NR) edge tile
	row  []float32    // one widened row of a half-precision b (M = 1 path)
	rows [8][]float32 // widened rows of a transposed half-precision b
	zero []float32    // padding, always zero
	dots [4]float32   // results of a dot4 kernel
	a16  []uint32     // (KC/2, MR) bf16 pairs (gemm_bf16.go)
}

// gemmShared is the state shared by the workers of one call: the packed
// B block and the step they work on.
type gemmShared struct {
	prob gemmProblem
	b    []float32
	st   gemmStep
	act  quant.Act // x quantized per block, for GGML weights (M = 1)
	b16  []uint32  // packed B block as bf16 pairs (gemm_bf16.go)
}

var (
	gemmScratchPool = sync.Pool{New: func() any { return new(gemmScratch) }}
	gemmSharedPool  = sync.Pool{New: func() any { return new(gemmShared) }}
)

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// gemmStep is the state of one (jc, pc) block, read by all workers.
type gemmStep struct {
	p       *gemmProblem
	kern    *gemmKernel
	jc, nc  int // columns [jc, jc+nc) of c
	pc, kc  int // reduction [pc, pc+kc)
	bp      []float32
	mp, np  int // MR panels of c, NR panels of this block
	gm, gn  int // panels per task in each direction
	tasks   int
	act     *quant.Act // the quantized x of a GGML product (gemv.go)
	b16     []uint32   // packed B block as bf16 pairs (gemm_bf16.go)
	micro16 func(kc int, a, b, c *float32, ldc int, accum int)
	next    atomic.Int64
	gen     atomic.Uint64 // gemmRun calls made on this step
	active  atomic.Int32  // helpers inside gemmWork
	waiting atomic.Bool   // the caller sleeps on wake
	wake    chan struct{} // (1) the last helper out wakes the caller
}

// gemm computes one slab with the packed algorithm.
func (c *CPU) gemm(sh *gemmShared) {
	p := &sh.prob
	kern := p.kern
	kc0, nc0 := gemmBlocking(kern, p.n, p.k)
	threads := c.threads()
	sh.b = grow(sh.b, kc0*nc0)

	st := &sh.st
	st.p, st.kern = p, kern
	st.mp = (p.m + kern.mr - 1) / kern.mr
	for jc := 0; jc < p.n; jc += nc0 {
		nc := min(nc0, p.n-jc)
		np := (nc + kern.nr - 1) / kern.nr
		// Task grid: whole rows of panels when there are enough of them
		// (each A micro-panel packed once), else split N as well.
		gm, gn := max(1, st.mp/(4*threads)), np
		if st.mp < 2*threads {
			gm = 1
			gn = max(1, (np+(4*threads+st.mp-1)/st.mp-1)/((4*threads+st.mp-1)/st.mp))
		}
		for pc := 0; pc < p.k; pc += kc0 {
			kc := min(kc0, p.k-pc)
			st.jc, st.nc, st.pc, st.kc = jc, nc, pc, kc
			st.np, st.gm, st.gn = np, gm, gn
			st.bp = sh.b[:kc*np*kern.nr]
			// Phase 1: pack B panels. Phase 2: compute tiles.
			st.tasks = np
			c.gemmRun(st, min(threads, np), (*gemmStep).packTask)
			st.tasks = ((st.mp + gm - 1) / gm) * ((np + gn - 1) / gn)
			c.gemmRun(st, min(threads, st.tasks), (*gemmStep).computeTask)
		}
	}
	st.p, st.bp = nil, nil // let the pool drop the caller's data
}

// gemmRun runs fn over st's tasks on up to t threads: the caller and t-1
// helpers from c's long-lived workers, each taking the next task from a
// shared counter. Nothing is allocated and no goroutine is started (a
// matrix-vector product of a decode step is tens of microseconds, where
// starting goroutines showed). The caller never waits for a helper that
// has not started: once the counter runs out it bumps st.gen, which turns
// late helpers into no-ops, and waits only for those already working, so
// a call made from inside another parallel loop cannot deadlock.
func (c *CPU) gemmRun(st *gemmStep, t int, fn func(st *gemmStep, s *gemmScratch, task int)) {
	st.next.Store(0)
	if t > 1 && c != nil {
		c.once.Do(c.start)
		gen := st.gen.Load()
		for range t - 1 {
			select {
			case c.tasks <- task{step: st, stepFn: fn, gen: gen}:
			default: // the queue is full: fewer helpers
			}
		}
	}
	gemmWork(st, fn)
	st.gen.Add(1)
	// Wait for helpers finishing their last task: spin briefly (a decode
	// step's tasks are microseconds), then sleep until the last one
	// leaves (a prompt's tasks can be milliseconds: spinning would burn
	// a core). A token left in wake by an earlier call is drained first.
	for range 200 {
		if st.active.Load() == 0 {
			return
		}
	}
	if st.wake == nil {
		st.wake = make(chan struct{}, 1)
	}
	select {
	case <-st.wake:
	default:
	}
	st.waiting.Store(true)
	for st.active.Load() != 0 {
		<-st.wake
	}
	st.waiting.Store(false)
}

// help is a worker's share of a gemmRun call, if that call (gen) is still
// running. The order of active.Add and gen.Load against gemmRun's gen.Add
// and active.Load makes either the caller wait for it or it do nothing.
func (st *gemmStep) help(fn func(st *gemmStep, s *gemmScratch, task int), gen uint64) {
	st.active.Add(1)
	if st.gen.Load() == gen {
		gemmWork(st, fn)
	}
	if st.active.Add(-1) == 0 && st.waiting.Load() {
		select {
		case st.wake <- struct{}{}:
		default:
		}
	}
}

func gemmWork(st *gemmStep, fn func(st *gemmStep, s *gemmScratch, task int)) {
	s := gemmScratchPool.Get().(*gemmScratch)
	for {
		i := int(st.next.Add(1)) - 1
		if i >= st.tasks {
			break
		}
		fn(st, s, i)
	}
	gemmScratchPool.Put(s)
}

// packTask packs B panel q of the current block.
func (st *gemmStep) packTask(s *gemmScratch, q int) {
	nr := st.kern.nr
	j0 := st.jc + q*nr
	w := min(nr, st.jc+st.nc-j0)
	packB(st.bp[q*st.kc*nr:(q+1)*st.kc*nr], st.p, st.pc, st.kc, j0, w, nr, s)
}

// computeTask runs the micro-kernel over one task's tiles.
func (st *gemmStep) computeTask(s *gemmScratch, t int) {
	p, kern := st.p, st.kern
	mr, nr, kc := kern.mr, kern.nr, st.kc
	tn := (st.np + st.gn - 1) / st.gn
	ti, tj := t/tn, t%tn
	p0, p1 := ti*st.gm, min((ti+1)*st.gm, st.mp)
	q0, q1 := tj*st.gn, min((tj+1)*st.gn, st.np)
	s.a = grow(s.a, kc*mr)
	s.tile = grow(s.tile, mr*nr)
	accum := 1
	if st.pc == 0 && !p.accumulate {
		accum = 0
	}
	for pi := p0; pi < p1; pi++ {
		i0 := pi * mr
		h := min(mr, p.m-i0)
		packA(s.a, p, st.pc, kc, i0, h, mr, s)
		for q := q0; q < q1; q++ {
			j0 := st.jc + q*nr
			w := min(nr, p.n-j0)
			bq := st.bp[q*kc*nr:]
			if h == mr && w == nr {
				kern.micro(kc, &s.a[0], &bq[0], &p.c[i0*p.n+j0], p.n, accum)
				continue
			}
			// Edge tile: compute the full tile aside, then add (or copy)
			// the valid part: the same arithmetic as a full tile.
			kern.micro(kc, &s.a[0], &bq[0], &s.tile[0], nr, 0)
			for r := range h {
				crow := p.c[(i0+r)*p.n+j0 : (i0+r)*p.n+j0+w]
				trow := s.tile[r*nr : r*nr+w]
				if accum != 0 {
					for j, v := range trow {
						crow[j] += v
					}
				} else {
					copy(crow, trow)
				}
			}
		}
	}
}

// packA packs rows [i0, i0+h) and reduction [pc, pc+kc) of op(a) into dst
// as (kc, mr), zero padding rows h..mr.
func packA(dst []float32, p *gemmProblem, pc, kc, i0, h, mr int, s *gemmScratch) {
	dst = dst[:kc*mr]
	if p.transA { // a (K, M): each k gives h contiguous values
		if h < mr {
			clear(dst)
		}
		for k := range kc {
			copy(dst[k*mr:k*mr+h], p.a[(pc+k)*p.m+i0:])
		}
		return
	}
	// a (M, K): interleave h rows.
	var rows [8][]float32
	for r0 := 0; r0 < mr; r0 += 8 {
		g := min(8, mr-r0)
		for r := range g {
			if i := r0 + r; i < h {
				rows[r] = p.a[(i0+i)*p.k+pc : (i0+i)*p.k+pc+kc]
			} else {
				rows[r] = s.zeros(kc)
			}
		}
		interleave(dst[r0:], mr, rows[:g], kc)
	}
}

// packB packs columns [j0, j0+w) and reduction [pc, pc+kc) of op(b) into
// dst as (kc, nr), widening half types and zero padding columns w..nr.
func packB(dst []float32, p *gemmProblem, pc, kc, j0, w, nr int, s *gemmScratch) {
	b := p.b
	if !p.transB { // b (K, N): each k gives w contiguous values
		if w < nr {
			clear(dst)
		}
		for k := range kc {
			off := p.bOff + (pc+k)*p.n + j0
			d := dst[k*nr : k*nr+w]
			if b.DType == F32 {
				copy(d, b.F32[off:off+w])
			} else {
				p.widen(d, off)
			}
		}
		return
	}
	// b (N, K): interleave w rows of kc values, 8 at a time.
	var rows [8][]float32
	for c0 := 0; c0 < nr; c0 += 8 {
		g := min(8, nr-c0)
		for r := range g {
			c := c0 + r
			if c >= w {
				rows[r] = s.zeros(kc)
				continue
			}
			off := p.bOff + (j0+c)*p.k + pc
			if b.DType == F32 {
				rows[r] = b.F32[off : off+kc]
			} else {
				s.rows[r] = grow(s.rows[r], kc)
				p.widen(s.rows[r], off)
				rows[r] = s.rows[r]
			}
		}
		interleave(dst[c0:], nr, rows[:g], kc)
	}
}

// interleave writes dst[k*stride+r] = rows[r][k] for k < n: a transpose of
// up to 8 rows, reading each row forward and writing contiguous runs.
func interleave(dst []float32, stride int, rows [][]float32, n int) {
	if len(rows) != 8 {
		for r, row := range rows {
			row = row[:n]
			for k, v := range row {
				dst[k*stride+r] = v
			}
		}
		return
	}
	r0, r1, r2, r3 := rows[0][:n], rows[1][:n], rows[2][:n], rows[3][:n]
	r4, r5, r6, r7 := rows[4][:n], rows[5][:n], rows[6][:n], rows[7][:n]
	if n > 0 {
		_ = dst[(n-1)*stride+7]
	}
	for k := range r0 {
		d := dst[k*stride : k*stride+8 : k*stride+8]
		d[0], d[1], d[2], d[3] = r0[k], r1[k], r2[k], r3[k]
		d[4], d[5], d[6], d[7] = r4[k], r5[k], r6[k], r7[k]
	}
}

// zeros returns n zero floats (a padding row).
func (s *gemmScratch) zeros(n int) []float32 {
	if len(s.zero) < n {
		s.zero = make([]float32, n)
	}
	return s.zero[:n]
}

// widen writes len(dst) elements of the half-precision b from offset off.
func (p *gemmProblem) widen(dst []float32, off int) {
	if p.b.DType.Quantized() {
		dequant(dst, p.b, off)
		return
	}
	p.kern.widen(dst, p.b.Half[off:off+len(dst)], p.b.DType)
}
