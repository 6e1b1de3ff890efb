//go:build amd64 && !purego && !noasm

package tensor

import "golang.org/x/sys/cpu"

//go:generate go run gen_kernels.go

// Assembly kernels (gemm_amd64.s, written by gen_kernels.go). Vector
// kernels take n % 8 == 0; the Go wrappers below finish the tail.

//go:noescape
func micro8x48AVX512(kc int, a, b, c *float32, ldc int, accum int)

//go:noescape
func micro6x16AVX2(kc int, a, b, c *float32, ldc int, accum int)

//go:noescape
func dotF32AVX2(x, w *float32, n int) float32

//go:noescape
func dotF16AVX2(x *float32, w *uint16, n int) float32

//go:noescape
func dotBF16AVX2(x *float32, w *uint16, n int) float32

//go:noescape
func dot4F32AVX2(out *[4]float32, x, w *float32, ld, n int)

//go:noescape
func dot4F16AVX2(out *[4]float32, x *float32, w *uint16, ld, n int)

//go:noescape
func dot4BF16AVX2(out *[4]float32, x *float32, w *uint16, ld, n int)

//go:noescape
func axpyAVX2(y *float32, alpha float32, x *float32, n int)

//go:noescape
func widenF16AVX2(dst *float32, src *uint16, n int)

//go:noescape
func widenBF16AVX2(dst *float32, src *uint16, n int)

var (
	avx512Kernel = gemmKernel{
		name: "avx512f", mr: 8, nr: 48,
		micro: micro8x48AVX512, dot: dotAVX2, dotH: dotHAVX2, dot4: dot4AVX2, dot4H: dot4HAVX2, axpy: axpyVec, widen: widenVec,
	}
	avx2Kernel = gemmKernel{
		name: "avx2+fma", mr: 6, nr: 16,
		micro: micro6x16AVX2, dot: dotAVX2, dotH: dotHAVX2, dot4: dot4AVX2, dot4H: dot4HAVX2, axpy: axpyVec, widen: widenVec,
	}
)

// gemmKernels picks the fastest kernel set this CPU runs.
func gemmKernels() *gemmKernel {
	avx2 := cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C
	switch {
	case avx2 && cpu.X86.HasAVX512F:
		return &avx512Kernel
	case avx2:
		return &avx2Kernel
	}
	return &goKernel
}

// kernelSets lists every kernel set this CPU can run, best first (tests
// compare them all).
func kernelSets() []*gemmKernel {
	var ks []*gemmKernel
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C {
		if cpu.X86.HasAVX512F {
			ks = append(ks, &avx512Kernel)
		}
		ks = append(ks, &avx2Kernel)
	}
	return append(ks, &goKernel)
}

func dotAVX2(x, w []float32) float32 {
	w = w[:len(x)]
	n := len(x) &^ 7
	var s float32
	if n > 0 {
		s = dotF32AVX2(&x[0], &w[0], n)
	}
	for i := n; i < len(x); i++ {
		s += x[i] * w[i]
	}
	return s
}

func dotHAVX2(x []float32, w []uint16, dt DType) float32 {
	w = w[:len(x)]
	n := len(x) &^ 7
	var s float32
	if n > 0 {
		if dt == BF16 {
			s = dotBF16AVX2(&x[0], &w[0], n)
		} else {
			s = dotF16AVX2(&x[0], &w[0], n)
		}
	}
	var t [8]float32
	widenGo(t[:len(x)-n], w[n:], dt)
	for i := n; i < len(x); i++ {
		s += x[i] * t[i-n]
	}
	return s
}

func axpyVec(y []float32, alpha float32, x []float32) {
	x = x[:len(y)]
	n := len(y) &^ 7
	if n > 0 {
		axpyAVX2(&y[0], alpha, &x[0], n)
	}
	for i := n; i < len(y); i++ {
		y[i] += alpha * x[i]
	}
}

func widenVec(dst []float32, src []uint16, dt DType) {
	src = src[:len(dst)]
	n := len(dst) &^ 7
	if n > 0 {
		if dt == BF16 {
			widenBF16AVX2(&dst[0], &src[0], n)
		} else {
			widenF16AVX2(&dst[0], &src[0], n)
		}
	}
	widenGo(dst[n:], src[n:], dt)
}

func dot4AVX2(out *[4]float32, x, w []float32, ld int) {
	w = w[:3*ld+len(x)]
	n := len(x) &^ 7
	*out = [4]float32{}
	if n > 0 {
		dot4F32AVX2(out, &x[0], &w[0], ld, n)
	}
	for r := range out {
		row := w[r*ld : r*ld+len(x)]
		for i := n; i < len(x); i++ {
			out[r] += x[i] * row[i]
		}
	}
}

func dot4HAVX2(out *[4]float32, x []float32, w []uint16, ld int, dt DType) {
	w = w[:3*ld+len(x)]
	n := len(x) &^ 7
	*out = [4]float32{}
	if n > 0 {
		if dt == BF16 {
			dot4BF16AVX2(out, &x[0], &w[0], ld, n)
		} else {
			dot4F16AVX2(out, &x[0], &w[0], ld, n)
		}
	}
	var t [8]float32
	for r := range out {
		widenGo(t[:len(x)-n], w[r*ld+n:r*ld+len(x)], dt)
		for i := n; i < len(x); i++ {
			out[r] += x[i] * t[i-n]
		}
	}
}
