//go:build linux || freebsd

package vulkan

import (
	"testing"

	"llmlab/gpu/gputest"
)

// TestTrainingMatchesCPU trains a tiny Llama and GPT-2 for a few steps on
// Vulkan and on the CPU: the loss curves must agree.
func TestTrainingMatchesCPU(t *testing.T) {
	gputest.TrainMatchesCPU(t, openOrSkip(t))
}
