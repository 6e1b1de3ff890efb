package tensor

import (
	"runtime"

	"golang.org/x/sys/cpu"
)

// CPUFeatures lists the instruction-set features the kernels can use.
func CPUFeatures() []string {
	var f []string
	if runtime.GOARCH == "amd64" {
		if cpu.X86.HasAVX512F {
			f = append(f, "avx512f")
		}
		if cpu.X86.HasAVX2 {
			f = append(f, "avx2")
		}
		if cpu.X86.HasFMA {
			f = append(f, "fma")
		}
	}
	if runtime.GOARCH == "arm64" && cpu.ARM64.HasASIMD {
		f = append(f, "neon")
	}
	return f
}

// GEMMKernel names the matrix-multiply kernel in use.
func GEMMKernel() string { return gemmKernelFor(gemmNR()) }
