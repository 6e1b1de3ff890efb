//go:build amd64 && !purego

package tensor

import "golang.org/x/sys/cpu"

// The attention and loss kernels use the GEMM's AVX2 dot and axpy
// (gemm_amd64.s) when the CPU has them.
var haveAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

func hasDotAsm() bool { return haveAVX2 }

func dotAsm(a, b []float32) float32 {
	if !haveAVX2 {
		return dot(a, b)
	}
	return dotAVX2(a, b)
}

func axpyAsm(d, x []float32, s float32) {
	if !haveAVX2 {
		axpy(d, x, s)
		return
	}
	axpyVec(d, s, x)
}
