//go:build !(linux || freebsd)

package vulkan

import (
	"errors"

	"llmlab/core/tensor"
)

// ErrUnavailable is returned (wrapped) when Vulkan cannot be used here.
var ErrUnavailable = errors.New("vulkan unavailable")

// Backend is not available on this platform.
type Backend struct{ tensor.Backend }

// Open reports that this build has no Vulkan support.
func Open(cpu *tensor.CPU) (*Backend, error) {
	return nil, errors.New("vulkan unavailable: not supported on this platform")
}

// Close does nothing.
func (b *Backend) Close() {}

// Device is empty.
func (b *Backend) Device() string { return "" }

// IsCPU is false.
func (b *Backend) IsCPU() bool { return false }

// Features is empty.
func (b *Backend) Features() Features { return Features{} }
