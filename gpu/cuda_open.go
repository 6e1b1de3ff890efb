package gpu

import (
	"os"

	"llmlab/gpu/cuda"
)

// openCUDA opens the first NVIDIA GPU; LLMLAB_CUDA_TF32=1 lets its float32
// products use TF32 tensor cores.
func openCUDA() (*cuda.Backend, error) {
	b, err := cuda.Open()
	if err != nil {
		return nil, err
	}
	if os.Getenv("LLMLAB_CUDA_TF32") == "1" {
		b.SetTF32(true)
	}
	return b, nil
}
