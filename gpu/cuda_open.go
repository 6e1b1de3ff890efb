package gpu

import (
	"os"

	"llmlab/gpu/cuda"
)

// openCUDA opens the first NVIDIA GPU. LLMLAB_CUDA_TF32=1 lets its float32
// products use TF32 tensor cores; LLMLAB_CUDA_BF16=1 makes them bfloat16
// tensor-core products (mixed precision, float32 master weights).
func openCUDA() (*cuda.Backend, error) {
	b, err := cuda.Open()
	if err != nil {
		return nil, err
	}
	if os.Getenv("LLMLAB_CUDA_TF32") == "1" {
		b.SetTF32(true)
	}
	if os.Getenv("LLMLAB_CUDA_BF16") == "1" {
		b.SetBF16(true)
	}
	return b, nil
}
