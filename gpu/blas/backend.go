package blas

import (
	"llmlab/core/tensor"
)

// Backend is the CPU backend with large float32 matrix products handed to
// the BLAS library; everything else (and half-precision weights, which the
// library cannot read) stays in llmlab's own kernels.
type Backend struct {
	*tensor.CPU
	Lib *Lib
	// MinFlops is the product size below which llmlab's GEMM is used
	// (the library call's fixed cost dominates small products).
	MinFlops float64
}

var _ tensor.Backend = (*Backend)(nil)

// NewBackend wraps cpu with lib, using lib's threads = cpu.Threads.
func NewBackend(cpu *tensor.CPU, lib *Lib) *Backend {
	lib.SetThreads(cpu.Threads)
	return &Backend{CPU: cpu, Lib: lib, MinFlops: 2 * 64 * 64 * 64}
}

// Name reports the library.
func (b *Backend) Name() string { return "blas (" + b.Lib.Name() + ")" }

// MatMul uses the library for F32 operands of at least MinFlops.
func (b *Backend) MatMul(dst, a, w *tensor.Tensor, o tensor.MatMulOpts) {
	batch := max(o.Batch, 1)
	if w.DType != tensor.F32 || a.DType != tensor.F32 {
		b.CPU.MatMul(dst, a, w, o)
		return
	}
	ar, ac := a.Rows()/batch, a.Cols()
	br, bc := w.Rows()/batch, w.Cols()
	m, k := ar, ac
	if o.TransA {
		m, k = ac, ar
	}
	n := bc
	if o.TransB {
		n = br
	}
	if 2*float64(m)*float64(n)*float64(k) < b.MinFlops || dst.Numel() != batch*m*n {
		b.CPU.MatMul(dst, a, w, o)
		return
	}
	beta := float32(0)
	if o.Accumulate {
		beta = 1
	}
	for i := 0; i < batch; i++ {
		A := a.F32[i*ar*ac : (i+1)*ar*ac]
		B := w.F32[i*br*bc : (i+1)*br*bc]
		C := dst.F32[i*m*n : (i+1)*m*n]
		b.Lib.Sgemm(o.TransA, o.TransB, m, n, k, 1, A, ac, B, bc, beta, C, n)
	}
}
