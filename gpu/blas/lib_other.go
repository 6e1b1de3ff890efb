//go:build !((linux && !android) || darwin || freebsd)

package blas

import "fmt"

// Open reports that this platform cannot load a BLAS library at run time.
func Open() (*Lib, error) {
	return nil, fmt.Errorf("%w: no run-time library loading on this platform", ErrUnavailable)
}
