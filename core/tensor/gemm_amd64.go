//go:build amd64 && !purego

package tensor

import "golang.org/x/sys/cpu"

//go:noescape
func kern6x16(ap, bp *float32, kc int, c *float32)

//go:noescape
func kern6x32(ap, bp *float32, kc int, c *float32)

//go:noescape
func kern6x32acc(ap, bp *float32, kc int, c *float32, ldc int)

//go:noescape
func dotAVX2(a, b *float32, n int) float32

// gemmNR is the micro-kernel's tile width, chosen once from the CPU:
// 32 with AVX-512, 16 with AVX2+FMA, 0 (use the Go loops) otherwise.
func gemmNR() int {
	switch {
	case cpu.X86.HasAVX512F:
		return 32
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		return 16
	}
	return 0
}

func gemmKernelFor(nr int) string {
	switch nr {
	case 32:
		return "avx512 6x32"
	case 16:
		return "avx2+fma 6x16"
	}
	return "generic Go"
}

// microKernel computes one 6 x nr tile into c.
func microKernel(nr int, ap, bp []float32, kc int, c []float32) {
	if nr == 32 {
		kern6x32(&ap[0], &bp[0], kc, &c[0])
	} else {
		kern6x16(&ap[0], &bp[0], kc, &c[0])
	}
}

// microKernelAcc adds a full 6 x nr tile straight into C (row stride
// ldc); it reports false when only the tile-buffer path exists.
func microKernelAcc(nr int, ap, bp []float32, kc int, c []float32, ldc int) bool {
	if nr != 32 {
		return false
	}
	_ = c[5*ldc+31]
	kern6x32acc(&ap[0], &bp[0], kc, &c[0], ldc)
	return true
}

func hasDotAsm() bool { return cpu.X86.HasAVX2 && cpu.X86.HasFMA }

func dotAsm(a, b []float32) float32 {
	if len(a) == 0 {
		return 0
	}
	return dotAVX2(&a[0], &b[0], len(a))
}

//go:noescape
func axpyAVX2(d, x *float32, n int, s float32)

func axpyAsm(d, x []float32, s float32) {
	if len(d) == 0 {
		return
	}
	_ = x[len(d)-1]
	axpyAVX2(&d[0], &x[0], len(d), s)
}
