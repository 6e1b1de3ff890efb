//go:build linux || freebsd

package vulkan

import (
	"testing"

	"llmlab/core/tensor"
	"llmlab/core/tensor/backendtest"
)

func openOrSkip(t *testing.T) *Backend {
	t.Helper()
	b, err := Open(tensor.NewCPU(1))
	if err != nil {
		t.Skipf("no Vulkan device here (install libvulkan1 and mesa-vulkan-drivers for lavapipe): %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// TestOps checks every op against the CPU backend.
func TestOps(t *testing.T) {
	b := openOrSkip(t)
	t.Logf("device: %s", b.Name())
	backendtest.Run(t, b)
}
