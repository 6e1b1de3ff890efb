//go:build amd64 && !purego && !noasm

package quant

import (
	"math"

	"golang.org/x/sys/cpu"
)

// Assembly kernels (dot_amd64.s) for the types the common files use:
// Q8_0, Q4_0 and Q5_0 rows whole, Q4_K, Q5_K and Q6_K a super-block at a time
// (the scales and minimum terms stay in Go). Chosen at run time: AVX-512 VNNI
// where the CPU has it (Q8_0), AVX2 otherwise, the Go code without AVX2.

//go:noescape
func dotQ8_0AVX2(w *byte, q *int8, d *float32, nb int) float32

//go:noescape
func dotQ8_0VNNI(w *byte, q *int8, d *float32, nb int) float32

//go:noescape
func dotQ4_0AVX2(w *byte, q *int8, d *float32, nb int) float32

//go:noescape
func dotQ5_0AVX2(w *byte, q *int8, d *float32, nb int) float32

//go:noescape
func dotQ4KBlockAVX2(qs *byte, q *int8, sc *[8]int16) int32

//go:noescape
func dotQ5KBlockAVX2(qs, qh *byte, q *int8, sc *[8]int16) int32

//go:noescape
func dotQ6KBlockAVX2(ql, qh *byte, q *int8, sc *[16]int16) int32

func hasAVX2() bool { return cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C }

func hasVNNI() bool { return hasAVX2() && cpu.X86.HasAVX512VNNI && cpu.X86.HasAVX512VL }

// fastDot is the kernel this CPU runs for weights of type t (nil: the Go
// code); useVNNI false keeps to AVX2 (benchmarks compare the two).
func fastDot(t Type, useVNNI bool) func(w []byte, a *Act) float32 {
	if !hasAVX2() {
		return nil
	}
	switch t {
	case Q8_0:
		if useVNNI && hasVNNI() {
			return dotQ8_0FastVNNI
		}
		return dotQ8_0Fast
	case Q4_0:
		return dotQ4_0Fast
	case Q5_0:
		return dotQ5_0Fast
	case Q4_K:
		return dotQ4KFast
	case Q5_K:
		return dotQ5KFast
	case Q6_K:
		return dotQ6KFast
	}
	return nil
}

func dotQ8_0Fast(w []byte, a *Act) float32 {
	if len(a.D) == 0 {
		return 0
	}
	_ = w[34*len(a.D)-1]
	return dotQ8_0AVX2(&w[0], &a.Q[0], &a.D[0], len(a.D))
}

func dotQ8_0FastVNNI(w []byte, a *Act) float32 {
	if len(a.D) == 0 {
		return 0
	}
	_ = w[34*len(a.D)-1]
	return dotQ8_0VNNI(&w[0], &a.Q[0], &a.D[0], len(a.D))
}

func dotQ5_0Fast(w []byte, a *Act) float32 {
	if len(a.D) == 0 {
		return 0
	}
	_ = w[22*len(a.D)-1]
	return dotQ5_0AVX2(&w[0], &a.Q[0], &a.D[0], len(a.D))
}

func dotQ4_0Fast(w []byte, a *Act) float32 {
	if len(a.D) == 0 {
		return 0
	}
	_ = w[18*len(a.D)-1]
	return dotQ4_0AVX2(&w[0], &a.Q[0], &a.D[0], len(a.D))
}

// The Go side of the K-quant kernels runs once per 256 weights, so it is
// kept to a few integer operations: the eight 6-bit scales and minimums
// of Q4_K are unpacked four at a time from 32-bit words, and the block
// scales are widened from half precision inline.

func dotQ4KFast(w []byte, a *Act) float32 { return dotK4Fast(w, a, 144) }

func dotQ5KFast(w []byte, a *Act) float32 { return dotK4Fast(w, a, 176) }

// dotK4Fast is Q4_K's (bb 144) or Q5_K's (bb 176) product.
func dotK4Fast(w []byte, a *Act, bb int) float32 {
	var sum float32
	var sc [8]int16
	const m1, m2, m3 = 0x3f3f3f3f, 0x0f0f0f0f, 0x03030303
	for i := range a.D {
		b, bs := w[bb*i:bb*i+bb], a.BSums[16*i:16*i+16]
		u0 := uint32(b[4]) | uint32(b[5])<<8 | uint32(b[6])<<16 | uint32(b[7])<<24
		u1 := uint32(b[8]) | uint32(b[9])<<8 | uint32(b[10])<<16 | uint32(b[11])<<24
		u2 := uint32(b[12]) | uint32(b[13])<<8 | uint32(b[14])<<16 | uint32(b[15])<<24
		s0, s1 := u0&m1, u2&m2|(u0>>6&m3)<<4 // scales 0-3, 4-7
		n0, n1 := u1&m1, u2>>4&m2|(u1>>6&m3)<<4
		for j := 0; j < 4; j++ {
			sc[j], sc[4+j] = int16(s0>>(8*j)&0xff), int16(s1>>(8*j)&0xff)
		}
		summ := int32(0)
		for j := 0; j < 4; j++ {
			summ += int32(n0>>(8*j)&0xff)*(bs[2*j]+bs[2*j+1]) + int32(n1>>(8*j)&0xff)*(bs[8+2*j]+bs[9+2*j])
		}
		var isum int32
		if bb == 144 {
			isum = dotQ4KBlockAVX2(&b[16], &a.Q[QK*i], &sc)
		} else {
			isum = dotQ5KBlockAVX2(&b[48], &b[16], &a.Q[QK*i], &sc)
		}
		sum += a.D[i] * (halfToF32(b[0], b[1])*float32(isum) - halfToF32(b[2], b[3])*float32(summ))
	}
	return sum
}

func dotQ6KFast(w []byte, a *Act) float32 {
	var sum float32
	var sc [16]int16
	for i := range a.D {
		b, bs := w[210*i:210*i+210], a.BSums[16*i:16*i+16]
		off := int32(0)
		for g, s := range b[192:208] {
			sc[g] = int16(int8(s))
			off += int32(sc[g]) * bs[g]
		}
		isum := dotQ6KBlockAVX2(&b[0], &b[128], &a.Q[QK*i], &sc) - 32*off
		sum += a.D[i] * halfToF32(b[208], b[209]) * float32(isum)
	}
	return sum
}

// halfToF32 widens a little-endian half inline: normal numbers and
// subnormals (common for the scales of small weights), the rest
// (infinities, NaN) through the float16 package.
func halfToF32(lo, hi byte) float32 {
	h := uint32(lo) | uint32(hi)<<8
	switch e := h >> 10 & 0x1f; e {
	case 0: // ±m·2^-24, exact in float32
		v := float32(h&0x3ff) * (1.0 / (1 << 24))
		if h&0x8000 != 0 {
			v = -v
		}
		return v
	case 0x1f:
		return f16([]byte{lo, hi})
	default:
		return math.Float32frombits(h&0x8000<<16 | (e+112)<<23 | (h&0x3ff)<<13)
	}
}
