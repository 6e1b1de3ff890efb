//go:build amd64 && !purego && !noasm

package quant

import "golang.org/x/sys/cpu"

// Assembly kernels (dot_amd64.s) for the types the common files use:
// Q8_0 and Q4_0 rows whole, Q4_K and Q6_K a super-block at a time (the
// scales and minimum terms stay in Go). Chosen at run time: AVX-512 VNNI
// where the CPU has it (Q8_0), AVX2 otherwise, the Go code without AVX2.

//go:noescape
func dotQ8_0AVX2(w *byte, q *int8, d *float32, nb int) float32

//go:noescape
func dotQ8_0VNNI(w *byte, q *int8, d *float32, nb int) float32

//go:noescape
func dotQ4_0AVX2(w *byte, q *int8, d *float32, nb int) float32

//go:noescape
func dotQ4KBlockAVX2(qs *byte, q *int8, sc *[8]int16) int32

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
	case Q4_K:
		return dotQ4KFast
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

func dotQ4_0Fast(w []byte, a *Act) float32 {
	if len(a.D) == 0 {
		return 0
	}
	_ = w[18*len(a.D)-1]
	return dotQ4_0AVX2(&w[0], &a.Q[0], &a.D[0], len(a.D))
}

func dotQ4KFast(w []byte, a *Act) float32 {
	var sum float32
	var sc [8]int16
	for i := range a.D {
		b, bs := w[144*i:144*i+144], a.BSums[16*i:16*i+16]
		summ := int32(0)
		for j := 0; j < 8; j++ {
			s, m := scaleMinK4(j, b[4:16])
			sc[j] = int16(s)
			summ += int32(m) * (bs[2*j] + bs[2*j+1])
		}
		isum := dotQ4KBlockAVX2(&b[16], &a.Q[QK*i], &sc)
		sum += a.D[i]*f16(b[0:])*float32(isum) - a.D[i]*f16(b[2:])*float32(summ)
	}
	return sum
}

func dotQ6KFast(w []byte, a *Act) float32 {
	var sum float32
	var sc [16]int16
	for i := range a.D {
		b, bs := w[210*i:210*i+210], a.BSums[16*i:16*i+16]
		off := int32(0)
		for g := 0; g < 16; g++ {
			sc[g] = int16(int8(b[192+g]))
			off += int32(sc[g]) * bs[g]
		}
		isum := dotQ6KBlockAVX2(&b[0], &b[128], &a.Q[QK*i], &sc) - 32*off
		sum += a.D[i] * f16(b[208:]) * float32(isum)
	}
	return sum
}
