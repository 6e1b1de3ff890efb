package tensor

import (
	"unsafe"

	"github.com/x448/float16"
)

// The portable kernels: used on CPUs without AVX2+FMA, under GOOS=js, and
// with the purego or noasm build tags. They compute the same sums in the
// same k order as the assembly ones, but with separate multiply and add
// (Go does not fuse them on every port), so results agree to rounding.

var goKernel = gemmKernel{
	name: "generic", mr: 4, nr: 4,
	micro: microGo4x4, dot: dotGo, dotH: dotHGo, dot4: dot4Go, dot4H: dot4HGo, axpy: axpyGo, widen: widenGo,
}

// microGo4x4 is the 4×4 micro-kernel: sixteen scalar accumulators.
//
//	a (kc, 4) packed, b (kc, 4) packed, c (4, 4) with row stride ldc.
func microGo4x4(kc int, a, b, c *float32, ldc int, accum int) {
	as := unsafe.Slice(a, kc*4)
	bs := unsafe.Slice(b, kc*4)
	var c00, c01, c02, c03, c10, c11, c12, c13 float32
	var c20, c21, c22, c23, c30, c31, c32, c33 float32
	for k := 0; k+3 < len(as) && k+3 < len(bs); k += 4 {
		a0, a1, a2, a3 := as[k], as[k+1], as[k+2], as[k+3]
		b0, b1, b2, b3 := bs[k], bs[k+1], bs[k+2], bs[k+3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	cs := unsafe.Slice(c, 3*ldc+4)
	acc := [16]float32{c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33}
	for r := range 4 {
		row := cs[r*ldc : r*ldc+4]
		if accum != 0 {
			for j := range row {
				row[j] += acc[r*4+j]
			}
		} else {
			copy(row, acc[r*4:r*4+4])
		}
	}
}

// dotGo returns Σ x[i]·w[i] with four interleaved partial sums.
func dotGo(x, w []float32) float32 {
	w = w[:len(x)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+3 < len(x); i += 4 {
		s0 += x[i] * w[i]
		s1 += x[i+1] * w[i+1]
		s2 += x[i+2] * w[i+2]
		s3 += x[i+3] * w[i+3]
	}
	for ; i < len(x); i++ {
		s0 += x[i] * w[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// dotHGo is dotGo with w stored as F16 or BF16 bits.
func dotHGo(x []float32, w []uint16, dt DType) float32 {
	var buf [256]float32
	var s float32
	for i := 0; i < len(x); i += len(buf) {
		n := min(len(buf), len(x)-i)
		widenGo(buf[:n], w[i:i+n], dt)
		s += dotGo(x[i:i+n], buf[:n])
	}
	return s
}

// axpyGo does y += alpha·x.
func axpyGo(y []float32, alpha float32, x []float32) {
	x = x[:len(y)]
	for i, v := range x {
		y[i] += alpha * v
	}
}

// widenGo converts F16 or BF16 bits to float32.
func widenGo(dst []float32, src []uint16, dt DType) {
	src = src[:len(dst)]
	if dt == BF16 {
		for i, h := range src {
			dst[i] = BF16ToF32(h)
		}
		return
	}
	for i, h := range src {
		dst[i] = float16.Frombits(h).Float32()
	}
}

// dot4Go is four dotGo calls on rows of w at stride ld.
func dot4Go(out *[4]float32, x, w []float32, ld int) {
	for r := range out {
		out[r] = dotGo(x, w[r*ld:r*ld+len(x)])
	}
}

// dot4HGo is four dotHGo calls on rows of w at stride ld.
func dot4HGo(out *[4]float32, x []float32, w []uint16, ld int, dt DType) {
	for r := range out {
		out[r] = dotHGo(x, w[r*ld:r*ld+len(x)], dt)
	}
}
