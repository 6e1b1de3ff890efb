//go:build !(linux || darwin || freebsd)

// Package blas loads a CPU BLAS at run time; not on this platform.
package blas

import "errors"

// Lib is a loaded BLAS library (never on this platform).
type Lib struct{}

// Open always fails here.
func Open() (*Lib, error) { return nil, errors.New("blas: not available on this platform") }

// Name returns "".
func (l *Lib) Name() string { return "" }

// SetThreads does nothing.
func (l *Lib) SetThreads(int) {}

// Sgemm fails.
func (l *Lib) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) error {
	return errors.New("blas: not available on this platform")
}
