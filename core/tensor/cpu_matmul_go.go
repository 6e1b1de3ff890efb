package tensor

import (
	"fmt"
	"sync"
)

// A plain-Go matrix multiply: cache-tiled loops, parallel over output rows
// (each output element's K-sum runs in one fixed order, so results do not
// depend on Threads).

var widenPool = sync.Pool{New: func() any { return new([]float32) }}

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
