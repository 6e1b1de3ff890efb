package tensor

import "fmt"

// MatMul computes dst = op(a)·op(b) (or dst += with o.Accumulate) for each of
// o.Batch slab pairs. See Backend.MatMul for the layouts.
//
// Dimensions come from dst and a: N = dst.Cols(), M = dst rows per slab, and
// K = the rest of a. Mismatched sizes are programming errors and panic with
// both numbers. b may be F16 or BF16: it is widened while it is packed (or,
// for M = 1, inside the dot/axpy kernels), never converted up front.
//
// M = 1 (generation, matrix·vector) takes a memory-bound path, parallel over
// N; everything else goes through the packed, cache-blocked GEMM in gemm.go.
func (c *CPU) MatMul(dst, a, b *Tensor, o MatMulOpts) {
	c.matMul(gemmKernels(), dst, a, b, o)
}

// matMul is MatMul with a given kernel set (tests run every one).
func (c *CPU) matMul(kern *gemmKernel, dst, a, b *Tensor, o MatMulOpts) {
	g := matMulDims(dst, a, b, o)
	if g.m == 0 || g.n == 0 {
		return
	}
	g.kern = kern
	// The problem lives in the pooled shared state: the workers hold a
	// pointer to it, and a stack copy would escape (one allocation a call).
	sh := gemmSharedPool.Get().(*gemmShared)
	defer gemmSharedPool.Put(sh)
	for s := range g.batch {
		p := &sh.prob
		*p = g
		p.a = a.F32[s*g.m*g.k : (s+1)*g.m*g.k]
		p.c = dst.F32[s*g.m*g.n : (s+1)*g.m*g.n]
		p.bOff = s * g.k * g.n
		switch {
		case g.k == 0:
			if !g.accumulate {
				clear(p.c)
			}
		case g.m == 1 || (g.m <= gemvMaxRows && g.transB && !g.transA):
			c.gemv(sh)
		case useBF16(kern, p):
			c.gemmBF16(sh)
		default:
			c.gemm(sh)
		}
	}
	sh.prob = gemmProblem{} // let the pool drop the caller's data
}

// gemmProblem is one (M, N, K) product: c (M, N) [+]= op(a)·op(b).
type gemmProblem struct {
	m, n, k    int
	batch      int
	a          []float32 // (M, K), or (K, M) with transA
	transA     bool
	b          *Tensor // (K, N), or (N, K) with transB; any dtype
	bOff       int     // element offset of this slab in b
	transB     bool
	c          []float32 // (M, N)
	accumulate bool
	kern       *gemmKernel
}

// matMulDims checks MatMul's arguments and returns the product's dims.
// MatMulDims checks a MatMul's operands as every backend must and returns
// its sizes: batch products of (M, K)·(K, N). It panics, naming the
// shapes, on operands that do not fit.
func MatMulDims(dst, a, b *Tensor, o MatMulOpts) (batch, m, n, k int) {
	g := matMulDims(dst, a, b, o)
	return g.batch, g.m, g.n, g.k
}

func matMulDims(dst, a, b *Tensor, o MatMulOpts) gemmProblem {
	if dst == nil || a == nil || b == nil {
		panic("tensor.MatMul: nil tensor")
	}
	if dst.DType != F32 || a.DType != F32 {
		panic(fmt.Sprintf("tensor.MatMul: dst and a must be F32, got %v and %v", dst.DType, a.DType))
	}
	batch := max(o.Batch, 1)
	g := gemmProblem{batch: batch, b: b, transA: o.TransA, transB: o.TransB, accumulate: o.Accumulate}
	dn, an, bn := dst.Numel(), a.Numel(), b.Numel()
	if dn%batch != 0 || an%batch != 0 || bn%batch != 0 {
		panic(fmt.Sprintf("tensor.MatMul: batch %d does not divide dst %v, a %v, b %v", batch, dst.Shape, a.Shape, b.Shape))
	}
	g.n = dst.Cols()
	if g.n == 0 {
		return g
	}
	g.m = dn / batch / g.n
	if g.m == 0 {
		return g
	}
	if an/batch%g.m != 0 {
		panic(fmt.Sprintf("tensor.MatMul: a %v (batch %d) does not hold M=%d rows of dst %v", a.Shape, batch, g.m, dst.Shape))
	}
	g.k = an / batch / g.m
	// The last dimension of a (and b) must be the one the layout says, so a
	// forgotten transpose is caught even when the element counts agree
	// (1-D tensors are vectors and pass).
	if want := pick(o.TransA, g.m, g.k); a.Cols() != want && len(a.Shape) > 1 {
		panic(fmt.Sprintf("tensor.MatMul: a %v: last dim %d, want %d (M=%d, K=%d, TransA=%v)", a.Shape, a.Cols(), want, g.m, g.k, o.TransA))
	}
	if bn/batch != g.k*g.n {
		panic(fmt.Sprintf("tensor.MatMul: b %v (batch %d) has %d elements per slab, want K*N = %d*%d (a %v, dst %v)", b.Shape, batch, bn/batch, g.k, g.n, a.Shape, dst.Shape))
	}
	if want := pick(o.TransB, g.k, g.n); b.Cols() != want && len(b.Shape) > 1 {
		panic(fmt.Sprintf("tensor.MatMul: b %v: last dim %d, want %d (K=%d, N=%d, TransB=%v)", b.Shape, b.Cols(), want, g.k, g.n, o.TransB))
	}
	if b.DType == F32 && len(b.F32) != bn || (b.DType == F16 || b.DType == BF16) && len(b.Half) != bn ||
		b.DType == Q8 && len(b.Q) != bn || b.DType == NF4 && len(b.Q) != (bn+1)/2 {
		panic(fmt.Sprintf("tensor.MatMul: b %v %v has no %v storage of %d elements", b.Shape, b.DType, b.DType, bn))
	}
	if len(a.F32) != an || len(dst.F32) != dn {
		panic(fmt.Sprintf("tensor.MatMul: a %v or dst %v storage length does not match its shape", a.Shape, dst.Shape))
	}
	return g
}

// pick returns x when t, else y.
func pick(t bool, x, y int) int {
	if t {
		return x
	}
	return y
}

// GEMMFlops is the floating-point operation count of an (M, N, K) product
// (one multiply and one add per term), for reporting GFLOP/s.
func GEMMFlops(m, n, k int) float64 { return 2 * float64(m) * float64(n) * float64(k) }

// matMulNaive is the reference: a triple loop in float64, slab by slab.
// Tests compare every fast path with it.
func matMulNaive(dst, a, b *Tensor, o MatMulOpts) {
	g := matMulDims(dst, a, b, o)
	for s := range g.batch {
		ao, bo, co := s*g.m*g.k, s*g.k*g.n, s*g.m*g.n
		for i := range g.m {
			for j := range g.n {
				var sum float64
				for p := range g.k {
					av := a.F32[ao+pick(g.transA, p*g.m+i, i*g.k+p)]
					bv := b.At(bo + pick(g.transB, j*g.k+p, p*g.n+j))
					sum += float64(av) * float64(bv)
				}
				if g.accumulate {
					sum += float64(dst.F32[co+i*g.n+j])
				}
				dst.F32[co+i*g.n+j] = float32(sum)
			}
		}
	}
}
