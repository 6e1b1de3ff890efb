//go:build linux || freebsd

package vulkan

import (
	"testing"

	"llmlab/gpu/gputest"
)

// TestTrainingMatchesCPU trains a tiny Llama and GPT-2 for a few steps on
// Vulkan and on the CPU: the loss curves must agree.
func TestTrainingMatchesCPU(t *testing.T) {
	b := openOrSkip(t)
	gputest.TrainMatchesCPU(t, b)
	// On a device whose mappable memory is its own, the arena's tensors
	// are bound in place.
	st := b.Stats()
	t.Logf("%+v", st)
	if b.d.local && st.InPlace == 0 {
		t.Errorf("no tensor was bound in place: %+v", st)
	}
}
