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
	if w.DType != tensor.F32 || a.DType != tensor.F32 {
		b.CPU.MatMul(dst, a, w, o)
		return
	}
	batch, m, n, k := tensor.MatMulDims(dst, a, w, o)
	if 2*float64(m)*float64(n)*float64(k) < b.MinFlops || m == 0 || n == 0 || k == 0 {
		b.CPU.MatMul(dst, a, w, o)
		return
	}
	beta := float32(0)
	if o.Accumulate {
		beta = 1
	}
	lda, ldb := k, n // row lengths of a and b as stored
	if o.TransA {
		lda = m
	}
	if o.TransB {
		ldb = k
	}
	for i := 0; i < batch; i++ {
		A := a.F32[i*m*k : (i+1)*m*k]
		B := w.F32[i*k*n : (i+1)*k*n]
		C := dst.F32[i*m*n : (i+1)*m*n]
		b.Lib.Sgemm(o.TransA, o.TransB, m, n, k, 1, A, lda, B, ldb, beta, C, n)
	}
}
