package tensor

import (
	"fmt"
	"sync"
)

// A plain-Go matrix multiply: cache-tiled loops, parallel over output rows
// (each output element's K-sum runs in one fixed order, so results do not
// depend on Threads).

var widenPool = sync.Pool{New: func() any { return new([]float32) }}

// scratch returns a pooled float32 buffer of at least n values.
func scratch(n int) *[]float32 {
	p := widenPool.Get().(*[]float32)
	if cap(*p) < n {
		*p = make([]float32, n)
	}
	*p = (*p)[:n]
	return p
}

const (
	kcBlock = 256 // K per packed block: an A sliver and a B panel stay in L1/L2
	ncBlock = 512 // columns per work item
	mr      = 6   // micro-kernel rows
)

// gemmPacked is the BLIS-style path: for each block of K, op(B) is packed
// into column panels of nr (zero-padded), and each work item (a 6-row
// block of A by up to ncBlock columns) packs its A sliver and runs the
// assembly micro-kernel over the panels, adding each 6 x nr tile into D.
// Every output element sums its K blocks in order inside one work item,
// so the result does not depend on the thread count.
func (c *CPU) gemmPacked(D, A []float32, b *Tensor, bOff, M, N, K int, o MatMulOpts, nr int) {
	if !o.Accumulate {
		c.parallel(M, 64, func(lo, hi int) { clear(D[lo*N : hi*N]) })
	}
	npan := (N + nr - 1) / nr
	kc := min(K, kcBlock)
	bp := scratch(kc * npan * nr)
	defer widenPool.Put(bp)
	rowBlocks := (M + mr - 1) / mr
	panPerItem := ncBlock / nr
	colBlocks := (npan + panPerItem - 1) / panPerItem
	// The two loop bodies are made once per call (closures over k0, kb and
	// packed), not once per K block: fewer allocations.
	var k0, kb int
	var packed []float32
	packPanels := func(lo, hi int) {
		var row []float32
		if o.TransB && b.DType != F32 {
			rp := scratch(kb)
			defer widenPool.Put(rp)
			row = *rp
		}
		for p := lo; p < hi; p++ {
			packB(packed[p*kb*nr:(p+1)*kb*nr], b, bOff, p*nr, k0, kb, N, K, nr, o.TransB, row)
		}
	}
	compute := func(lo, hi int) {
		var ap [mr * kcBlock]float32
		var tile [mr * 32]float32
		for it := lo; it < hi; it++ {
			cb, rb := it/rowBlocks, it%rowBlocks
			i0 := rb * mr
			rows := min(mr, M-i0)
			packA(ap[:kb*mr], A, i0, rows, k0, kb, M, K, o.TransA)
			for p := cb * panPerItem; p < min(npan, (cb+1)*panPerItem); p++ {
				microKernel(nr, ap[:kb*mr], packed[p*kb*nr:], kb, tile[:mr*nr])
				j0 := p * nr
				cols := min(nr, N-j0)
				for r := 0; r < rows; r++ {
					d := D[(i0+r)*N+j0 : (i0+r)*N+j0+cols]
					t := tile[r*nr : r*nr+cols]
					for j := range d {
						d[j] += t[j]
					}
				}
			}
		}
	}
	for k0 = 0; k0 < K; k0 += kcBlock {
		kb = min(kcBlock, K-k0)
		packed = (*bp)[:kb*npan*nr]
		c.parallel(npan, 4, packPanels)
		c.parallel(rowBlocks*colBlocks, 1, compute)
	}
}

// packA writes op(A)[i0+r][k0+k] to ap[k*mr+r], zero for rows beyond M.
func packA(ap, A []float32, i0, rows, k0, kb, M, K int, trans bool) {
	if rows < mr {
		clear(ap)
	}
	if trans { // A is (K, M)
		for k := 0; k < kb; k++ {
			copy(ap[k*mr:k*mr+rows], A[(k0+k)*M+i0:(k0+k)*M+i0+rows])
		}
		return
	}
	for r := 0; r < rows; r++ {
		src := A[(i0+r)*K+k0 : (i0+r)*K+k0+kb]
		for k, v := range src {
			ap[k*mr+r] = v
		}
	}
}

// packB writes op(B)[k0+k][j0+j] to dst[k*nr+j], zero beyond N; half
// weights are widened here, in the kernel's own copy.
func packB(dst []float32, b *Tensor, bOff, j0, k0, kb, N, K, nr int, trans bool, row []float32) {
	cols := min(nr, N-j0)
	if cols < nr {
		clear(dst)
	}
	if !trans { // B is (K, N)
		if b.DType == F32 {
			for k := 0; k < kb; k++ {
				copy(dst[k*nr:k*nr+cols], b.F32[bOff+(k0+k)*N+j0:])
			}
			return
		}
		for k := 0; k < kb; k++ {
			WidenRow(dst[k*nr:k*nr+cols], b, bOff+(k0+k)*N+j0)
		}
		return
	}
	for j := 0; j < cols; j++ { // B is (N, K)
		var src []float32
		if b.DType == F32 {
			src = b.F32[bOff+(j0+j)*K+k0 : bOff+(j0+j)*K+k0+kb]
		} else {
			src = row[:kb]
			WidenRow(src, b, bOff+(j0+j)*K+k0)
		}
		for k, v := range src {
			dst[k*nr+j] = v
		}
	}
}

// gemmDots handles few rows times a transposed weight (generation's x·Wᵀ):
// one vector dot product per output, parallel over output columns, each
// weight row read once.
func (c *CPU) gemmDots(D, A []float32, b *Tensor, bOff, M, N, K int, o MatMulOpts) {
	c.parallel(N, 16, func(lo, hi int) {
		var row []float32
		if b.DType != F32 {
			rp := scratch(K)
			defer widenPool.Put(rp)
			row = *rp
		}
		for j := lo; j < hi; j++ {
			var w []float32
			if b.DType == F32 {
				w = b.F32[bOff+j*K : bOff+(j+1)*K]
			} else {
				w = row
				WidenRow(w, b, bOff+j*K)
			}
			for i := 0; i < M; i++ {
				v := dotAsm(A[i*K:(i+1)*K], w)
				if o.Accumulate {
					D[i*N+j] += v
				} else {
					D[i*N+j] = v
				}
			}
		}
	})
}

func (c *CPU) MatMul(dst, a, b *Tensor, o MatMulOpts) {
	batch := max(o.Batch, 1)
	if a.DType != F32 || dst.DType != F32 {
		panic("tensor.MatMul: a and dst must be F32")
	}
	ar, ac := a.Rows()/batch, a.Cols()
	br, bc := b.Rows()/batch, b.Cols()
	M, K := ar, ac
	if o.TransA {
		M, K = ac, ar
	}
	K2, N := br, bc
	if o.TransB {
		K2, N = bc, br
	}
	if K != K2 || dst.Numel() != batch*M*N {
		panic(fmt.Sprintf("tensor.MatMul: a %v (transA %v), b %v (transB %v), dst %v, batch %d", a.Shape, o.TransA, b.Shape, o.TransB, dst.Shape, batch))
	}
	if nr := gemmNR(); nr > 0 && M >= 6 && N >= 8 && K >= 8 {
		for bi := 0; bi < batch; bi++ {
			c.gemmPacked(dst.F32[bi*M*N:(bi+1)*M*N], a.F32[bi*M*K:(bi+1)*M*K], b, bi*K*N, M, N, K, o, nr)
		}
		return
	}
	if o.TransB && !o.TransA && hasDotAsm() {
		for bi := 0; bi < batch; bi++ {
			c.gemmDots(dst.F32[bi*M*N:(bi+1)*M*N], a.F32[bi*M*K:(bi+1)*M*K], b, bi*K*N, M, N, K, o)
		}
		return
	}
	var bf []float32
	if b.DType == F32 {
		bf = b.F32
	} else {
		p := widenPool.Get().(*[]float32)
		if cap(*p) < b.Numel() {
			*p = make([]float32, b.Numel())
		}
		bf = (*p)[:b.Numel()]
		WidenRow(bf, b, 0)
		defer widenPool.Put(p)
	}
	for bi := 0; bi < batch; bi++ {
		A := a.F32[bi*M*K : (bi+1)*M*K]
		B := bf[bi*K*N : (bi+1)*K*N]
		D := dst.F32[bi*M*N : (bi+1)*M*N]
		c.gemm(D, A, B, M, N, K, o)
	}
}

func (c *CPU) gemm(D, A, B []float32, M, N, K int, o MatMulOpts) {
	grain := max(1, 65536/max(1, N*K/64))
	c.parallel(M, min(grain, 16), func(lo, hi int) {
		if !o.Accumulate {
			clear(D[lo*N : hi*N])
		}
		switch {
		case !o.TransA && o.TransB: // D[i,j] = A[i,:]·B[j,:]
			const jb = 64
			for j0 := 0; j0 < N; j0 += jb {
				j1 := min(j0+jb, N)
				for i := lo; i < hi; i++ {
					ai := A[i*K : (i+1)*K]
					di := D[i*N : (i+1)*N]
					for j := j0; j < j1; j++ {
						di[j] += dot(ai, B[j*K:(j+1)*K])
					}
				}
			}
		case !o.TransA && !o.TransB: // D[i,:] += A[i,k] B[k,:]
			for i := lo; i < hi; i++ {
				di := D[i*N : (i+1)*N]
				for k := 0; k < K; k++ {
					if s := A[i*K+k]; s != 0 {
						axpy(di, B[k*N:(k+1)*N], s)
					}
				}
			}
		case o.TransA && !o.TransB: // A is (K, M): D[i,:] += A[k,i] B[k,:]
			for i := lo; i < hi; i++ {
				di := D[i*N : (i+1)*N]
				for k := 0; k < K; k++ {
					if s := A[k*M+i]; s != 0 {
						axpy(di, B[k*N:(k+1)*N], s)
					}
				}
			}
		default: // both transposed: A (K, M), B (N, K)
			for i := lo; i < hi; i++ {
				for j := 0; j < N; j++ {
					var s float32
					for k := 0; k < K; k++ {
						s += A[k*M+i] * B[j*K+k]
					}
					D[i*N+j] += s
				}
			}
		}
	})
}

func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func axpy(d, x []float32, s float32) {
	x = x[:len(d)]
	i := 0
	for ; i+4 <= len(d); i += 4 {
		d[i] += s * x[i]
		d[i+1] += s * x[i+1]
		d[i+2] += s * x[i+2]
		d[i+3] += s * x[i+3]
	}
	for ; i < len(d); i++ {
		d[i] += s * x[i]
	}
}
