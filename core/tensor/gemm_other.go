//go:build !amd64 || purego

package tensor

func gemmNR() int                   { return 0 }
func gemmKernelFor(nr int) string   { return "generic Go" }
func hasDotAsm() bool               { return false }
func dotAsm(a, b []float32) float32 { return dot(a, b) }

func microKernel(nr int, ap, bp []float32, kc int, c []float32) {
	panic("tensor: no micro-kernel on this platform")
}
func axpyAsm(d, x []float32, s float32) { axpy(d, x, s) }

func microKernelAcc(nr int, ap, bp []float32, kc int, c []float32, ldc int) bool { return false }
