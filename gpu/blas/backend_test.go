//go:build (linux && !android) || darwin || freebsd

package blas

import (
	"testing"

	"llmlab/core/tensor"
	"llmlab/core/tensor/backendtest"
	"llmlab/gpu/gputest"
)

// TestBackendOps checks every op of the BLAS backend against the CPU
// backend (with MinFlops 0, so every float32 product goes to the library).
func TestBackendOps(t *testing.T) {
	b := NewBackend(tensor.NewCPU(2), openOrSkip(t))
	b.MinFlops = 0
	backendtest.Run(t, b)
}

// TestTrainingMatchesCPU: a few training steps through the library's GEMM
// follow the CPU backend's losses.
func TestTrainingMatchesCPU(t *testing.T) {
	b := NewBackend(tensor.NewCPU(2), openOrSkip(t))
	b.MinFlops = 0
	gputest.TrainMatchesCPU(t, b)
}

// TestGenerateMatchesCPU: greedy decoding through the library's GEMM.
func TestGenerateMatchesCPU(t *testing.T) {
	b := NewBackend(tensor.NewCPU(2), openOrSkip(t))
	b.MinFlops = 0
	gputest.GenerateMatchesCPU(t, b)
}
