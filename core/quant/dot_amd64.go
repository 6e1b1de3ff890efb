//go:build amd64 && !purego && !noasm

package quant

import (
	"math"
	"unsafe"

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
func dotQ5_0AVX2(w *byte, q *int8, d *float32, nb int) float32

//go:noescape
func dotQ4KBlockAVX2(qs *byte, q *int8, sc *byte, bs *int32) (isum, msum int32)

//go:noescape
func dotQ5KBlockAVX2(qs, qh *byte, q *int8, sc *byte, bs *int32) (isum, msum int32)

//go:noescape
func dotQ6KBlockAVX2(ql, qh *byte, q *int8, sc *int8, bs *int32) int32

//go:noescape
func dotQ4KRowAVX2(w *byte, q *int8, d *float32, bs *int32, nb int) float32

//go:noescape
func dotQ6KRowAVX2(w *byte, q *int8, d *float32, bs *int32, nb int) float32

//go:noescape
func dotQ4KRowsAVX2(w *byte, stride, rows int, q *int8, d *float32, bs *int32, nb int, out *float32)

//go:noescape
func dotQ4KRowsVNNI(w *byte, stride, rows int, q *int8, d *float32, bs *int32, nb int, out *float32)

//go:noescape
func dotQ4_0RowsAVX2(w *byte, stride, rows int, q *int8, d *float32, nb int, out *float32)

//go:noescape
func dotQ6KRowsAVX2(w *byte, stride, rows int, q *int8, d *float32, bs *int32, nb int, out *float32)

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

// dotQ4_0Fast is dotQ4_0Rows on one row (the same bits as a row of it).
func dotQ4_0Fast(w []byte, a *Act) float32 {
	var out [1]float32
	dotQ4_0Rows(w, 1, a, out[:])
	return out[0]
}

func dotQ4_0Rows(w []byte, rows int, a *Act, out []float32) {
	nb := len(a.D)
	if rows == 0 || nb == 0 {
		clear(out[:rows])
		return
	}
	_ = w[18*nb*rows-1]
	_ = out[rows-1]
	_ = a.Q[32*nb-1]
	dotQ4_0RowsAVX2(&w[0], 18*nb, rows, &a.Q[0], &a.D[0], nb, &out[0])
}

// fastDotRows is the kernel this CPU runs for several consecutive rows of
// type t at once (nil: one call per row).
func fastDotRows(t Type) func(w []byte, rows int, a *Act, out []float32) {
	if !hasAVX2() {
		return nil
	}
	switch t {
	case Q4_0:
		return dotQ4_0Rows
	case Q4_K:
		return dotQ4KRows
	case Q6_K:
		return dotQ6KRows
	}
	return nil
}

func dotQ4KRows(w []byte, rows int, a *Act, out []float32) {
	nb := len(a.D)
	if rows == 0 || nb == 0 {
		clear(out[:rows])
		return
	}
	_ = w[144*nb*rows-1]
	_ = out[rows-1]
	_ = a.BSums[16*nb-1]
	if hasVNNI() {
		dotQ4KRowsVNNI(&w[0], 144*nb, rows, &a.Q[0], &a.D[0], &a.BSums[0], nb, &out[0])
		return
	}
	dotQ4KRowsAVX2(&w[0], 144*nb, rows, &a.Q[0], &a.D[0], &a.BSums[0], nb, &out[0])
}

func dotQ6KRows(w []byte, rows int, a *Act, out []float32) {
	nb := len(a.D)
	if rows == 0 || nb == 0 {
		clear(out[:rows])
		return
	}
	_ = w[210*nb*rows-1]
	_ = out[rows-1]
	_ = a.BSums[16*nb-1]
	dotQ6KRowsAVX2(&w[0], 210*nb, rows, &a.Q[0], &a.D[0], &a.BSums[0], nb, &out[0])
}

// The Go side of the K-quant kernels runs once per 256 weights, so it is
// kept to a few integer operations: the eight 6-bit scales and minimums
// of Q4_K are unpacked four at a time from 32-bit words, and the block
// scales are widened from half precision inline.

func dotQ4KFast(w []byte, a *Act) float32 {
	if len(a.D) == 0 {
		return 0
	}
	_ = w[144*len(a.D)-1]
	_ = a.BSums[16*len(a.D)-1]
	return dotQ4KRowAVX2(&w[0], &a.Q[0], &a.D[0], &a.BSums[0], len(a.D))
}

// dotQ4KBlocks is dotQ4KFast with the scales in Go, a block at a time
// (tests check the whole-row kernel against it).
func dotQ4KBlocks(w []byte, a *Act) float32 {
	var sum float32
	for i := range a.D {
		b := (*[144]byte)(w[144*i:])
		isum, msum := dotQ4KBlockAVX2(&b[16], &a.Q[QK*i], &b[4], &a.BSums[16*i])
		sum += a.D[i] * (halfToF32(b[0], b[1])*float32(isum) - halfToF32(b[2], b[3])*float32(msum))
	}
	return sum
}

func dotQ5KFast(w []byte, a *Act) float32 {
	var sum float32
	for i := range a.D {
		b := (*[176]byte)(w[176*i:])
		isum, msum := dotQ5KBlockAVX2(&b[48], &b[16], &a.Q[QK*i], &b[4], &a.BSums[16*i])
		sum += a.D[i] * (halfToF32(b[0], b[1])*float32(isum) - halfToF32(b[2], b[3])*float32(msum))
	}
	return sum
}

func dotQ6KFast(w []byte, a *Act) float32 {
	if len(a.D) == 0 {
		return 0
	}
	_ = w[210*len(a.D)-1]
	_ = a.BSums[16*len(a.D)-1]
	return dotQ6KRowAVX2(&w[0], &a.Q[0], &a.D[0], &a.BSums[0], len(a.D))
}

// dotQ6KBlocks is dotQ6KFast with the scales in Go, a block at a time
// (tests check the whole-row kernel against it).
func dotQ6KBlocks(w []byte, a *Act) float32 {
	var sum float32
	for i := range a.D {
		b := (*[210]byte)(w[210*i:])
		isum := dotQ6KBlockAVX2(&b[0], &b[128], &a.Q[QK*i], (*int8)(unsafe.Pointer(&b[192])), &a.BSums[16*i])
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
