//go:build !amd64 || purego

package tensor

func hasDotAsm() bool                   { return false }
func dotAsm(a, b []float32) float32     { return dot(a, b) }
func axpyAsm(d, x []float32, s float32) { axpy(d, x, s) }
