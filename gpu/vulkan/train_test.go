//go:build linux || freebsd

package vulkan

import (
	"testing"

	"llmlab/core/tensor"
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

// TestTrainingStaging: the same through the staging path.
func TestTrainingStaging(t *testing.T) {
	if testing.Short() {
		t.Skip("slow on a CPU Vulkan device")
	}
	openOrSkip(t).Close()
	b, err := open(tensor.NewCPU(1), true)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	gputest.TrainMatchesCPU(t, b)
}

// TestGenerateMatchesCPU: greedy decoding with the KV cache in device
// memory gives the CPU's tokens.
func TestGenerateMatchesCPU(t *testing.T) {
	gputest.GenerateMatchesCPU(t, openOrSkip(t))
}
