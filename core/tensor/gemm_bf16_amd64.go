//go:build amd64 && !purego && !noasm

package tensor

import "golang.org/x/sys/cpu"

// micro8x48BF16 is micro8x48AVX512 on bfloat16 pairs (gemm_bf16_amd64.s):
// a (kc, 8) and b (kc, 48) packed pairs of bf16, kc counting pairs, c an
// 8×48 float32 tile.
//
//go:noescape
func micro8x48BF16(kc int, a, b, c *float32, ldc int, accum int)

// bf16Micro returns the bfloat16 micro-kernel where the CPU has
// AVX512_BF16, else nil.
func bf16Micro() func(kc int, a, b, c *float32, ldc int, accum int) {
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512BF16 {
		return micro8x48BF16
	}
	return nil
}

// bf16Kernel reports whether products run with kern take the bf16 GEMM:
// the AVX-512 set, on a CPU with AVX512_BF16.
func bf16Kernel(kern *gemmKernel) bool { return kern == &avx512Kernel && bf16Micro() != nil }
