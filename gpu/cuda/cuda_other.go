//go:build !linux || android

package cuda

import (
	"errors"

	"llmlab/core/tensor"
)

// Backend is never opened on this platform; the embedded CPU backend only
// makes the type satisfy tensor.Backend everywhere.
type Backend struct {
	*tensor.CPU
}

var _ tensor.Backend = (*Backend)(nil)

// Open reports that this platform cannot load the CUDA libraries.
func Open() (*Backend, error) {
	return nil, errors.New("cuda: not available on this platform (the CUDA backend loads libcuda.so.1 on Linux)")
}

// Close does nothing here.
func (b *Backend) Close() {}

// Name names the backend.
func (b *Backend) Name() string { return "cuda (unavailable)" }

// SetTF32 does nothing here.
func (b *Backend) SetTF32(on bool) {}

// Err is always nil here.
func (b *Backend) Err() error { return nil }

// SetBF16 does nothing here.
func (b *Backend) SetBF16(on bool) {}
