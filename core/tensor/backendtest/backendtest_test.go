package backendtest

import (
	"testing"

	"llmlab/core/tensor"
)

// The multi-threaded CPU backend must agree with the single-threaded one:
// this runs every check once, so the suite itself is known to pass.
func TestCPU(t *testing.T) { Run(t, tensor.NewCPU(4)) }
