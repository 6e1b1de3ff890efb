//go:build !amd64 || purego || noasm

package tensor

// bf16Micro: no bfloat16 kernel on this platform.
func bf16Micro() func(kc int, a, b, c *float32, ldc int, accum int) { return nil }

// bf16Kernel: never on this platform.
func bf16Kernel(*gemmKernel) bool { return false }
