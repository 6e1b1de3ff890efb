package gpu

import (
	"errors"

	"llmlab/core/tensor"
)

type closer interface {
	tensor.Backend
	Close()
}

// openCUDA is replaced when the CUDA backend is built in.
func openCUDA() (closer, error) { return nil, errors.New("not built into this version") }
