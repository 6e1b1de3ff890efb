package backendtest

import (
	"testing"

	"llmlab/core/tensor"
	"llmlab/core/tensor/devicetest"
)

// The multi-threaded CPU backend must agree with the single-threaded one:
// this runs every check once, so the suite itself is known to pass.
func TestCPU(t *testing.T) { Run(t, tensor.NewCPU(4)) }

// The stand-in device backend runs the suite twice, the second time with
// every float32 argument a device tensor: the Resident wrapper's copies in
// and out are checked, so a device backend's failures are its own.
func TestDevice(t *testing.T) { Run(t, devicetest.New(2)) }
