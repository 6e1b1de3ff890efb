// Package blas loads a system BLAS (OpenBLAS, MKL or BLIS) at run time
// through purego, without cgo, and exposes the one routine llmlab needs
// from it: row-major single-precision GEMM (cblas_sgemm).
//
// It is a reference and a yardstick: benchmarks compare the CPU backend's
// own GEMM with it on the same shapes, and a missing library is an error
// value (tests skip), never a panic. Libraries are tried in order
// libopenblas.so.0, libmkl_rt.so, libblis.so.4 (with the usual names on
// macOS); the first that opens and has cblas_sgemm wins.
package blas

import (
	"errors"
	"fmt"
)

// ErrUnavailable is returned (wrapped) when no BLAS library can be loaded.
var ErrUnavailable = errors.New("blas: no BLAS library available")

// Lib is a loaded BLAS library.
type Lib struct {
	name       string
	sgemm      func(order, transA, transB, m, n, k int32, alpha float32, a *float32, lda int32, b *float32, ldb int32, beta float32, c *float32, ldc int32)
	setThreads func(n int32) // nil when the library has no such call
}

// Name is the file name of the loaded library.
func (l *Lib) Name() string { return l.name }

// SetThreads sets the library's thread count when it offers a call for it
// (openblas_set_num_threads, MKL_Set_Num_Threads, bli_thread_set_num_threads);
// it reports whether it could.
func (l *Lib) SetThreads(n int) bool {
	if l.setThreads == nil {
		return false
	}
	l.setThreads(int32(n))
	return true
}

// CBLAS enum values (cblas.h).
const (
	cblasRowMajor = 101
	cblasNoTrans  = 111
	cblasTrans    = 112
)

// Sgemm computes c = alpha·op(a)·op(b) + beta·c for row-major matrices:
// op(a) is (m, k) (a stored (k, m) when transA), op(b) is (k, n) (stored
// (n, k) when transB), c is (m, n); lda, ldb, ldc are row strides. Sizes
// are checked against the slices; a mismatch is a programming error and
// panics with the numbers.
func (l *Lib) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	ar, ac := rowsCols(transA, m, k)
	br, bc := rowsCols(transB, k, n)
	check("a", a, ar, ac, lda)
	check("b", b, br, bc, ldb)
	check("c", c, m, n, ldc)
	if k == 0 { // some BLAS builds reject empty operands; c = beta·c
		for i := range m {
			for j := range n {
				c[i*ldc+j] *= beta
			}
		}
		return
	}
	l.sgemm(cblasRowMajor, trans(transA), trans(transB), int32(m), int32(n), int32(k),
		alpha, &a[0], int32(lda), &b[0], int32(ldb), beta, &c[0], int32(ldc))
}

func rowsCols(t bool, r, c int) (int, int) {
	if t {
		return c, r
	}
	return r, c
}

func trans(t bool) int32 {
	if t {
		return cblasTrans
	}
	return cblasNoTrans
}

func check(what string, s []float32, rows, cols, ld int) {
	if rows == 0 || cols == 0 {
		return // nothing is read
	}
	if ld < cols || len(s) < (rows-1)*ld+cols {
		panic(fmt.Sprintf("blas.Sgemm: %s has %d values for (%d, %d) with stride %d", what, len(s), rows, cols, ld))
	}
}
