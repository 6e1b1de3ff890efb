//go:build linux || darwin || freebsd

// Package blas loads a CPU BLAS (OpenBLAS, MKL or BLIS) at run time with
// purego, without cgo, and exposes its sgemm. A missing library is an
// error value, never a crash; callers fall back to llmlab's own GEMM.
package blas

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ebitengine/purego"
)

// Lib is a loaded BLAS library.
type Lib struct {
	name       string
	sgemm      uintptr
	setThreads uintptr
	call       func(order, ta, tb, m, n, k int, alpha float32, a *float32, lda int, b *float32, ldb int, beta float32, c *float32, ldc int)
}

// Candidates are the libraries tried, in order.
var candidates = []string{"libopenblas.so.0", "libopenblas.so", "libmkl_rt.so", "libblis.so.4", "libopenblas.dylib"}

// Open loads the first BLAS library found.
func Open() (*Lib, error) {
	var tried []string
	for _, name := range candidates {
		h, err := purego.Dlopen(name, purego.RTLD_NOW|purego.RTLD_LOCAL)
		if err != nil {
			tried = append(tried, name)
			continue
		}
		sym, err := purego.Dlsym(h, "cblas_sgemm")
		if err != nil || sym == 0 {
			tried = append(tried, name+" (no cblas_sgemm)")
			continue
		}
		l := &Lib{name: name, sgemm: sym}
		purego.RegisterFunc(&l.call, sym)
		if st, err := purego.Dlsym(h, "openblas_set_num_threads"); err == nil {
			l.setThreads = st
		}
		return l, nil
	}
	return nil, fmt.Errorf("no BLAS library found (tried %s)", strings.Join(tried, ", "))
}

// Name is the library's file name.
func (l *Lib) Name() string { return l.name }

// SetThreads sets OpenBLAS's thread count (no-op for other libraries).
func (l *Lib) SetThreads(n int) {
	if l.setThreads != 0 {
		purego.SyscallN(l.setThreads, uintptr(n))
	}
}

const (
	rowMajor = 101
	noTrans  = 111
	trans    = 112
)

// Sgemm computes C = alpha·op(A)·op(B) + beta·C in row-major layout.
func (l *Lib) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) error {
	if len(a) == 0 || len(b) == 0 || len(c) < m*ldc-ldc+n {
		return errors.New("blas: empty or short matrix")
	}
	ta, tb := uintptr(noTrans), uintptr(noTrans)
	if transA {
		ta = trans
	}
	if transB {
		tb = trans
	}
	l.call(rowMajor, int(ta), int(tb), m, n, k, alpha, &a[0], lda, &b[0], ldb, beta, &c[0], ldc)
	return nil
}
