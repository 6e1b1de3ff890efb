package quant

import (
	"fmt"
	"unsafe"
)

// Integer dot products of a quantized weight row with an activation row,
// as llama.cpp computes them: the activations are quantized per block to
// int8 (Q8_0 blocks of 32 against the legacy types, Q8_K blocks of 256
// against the K-quants, with their sums for the types that have a
// minimum), each weight block is unpacked to small integers, and the
// int32 sum of products of a (sub-)block is scaled once. The error this
// adds is that of an 8-bit activation, well below the weight's own.

// Act is one activation row quantized for products with weights of one
// type. Its buffers are reused across Quantize calls.
type Act struct {
	typ   Type
	Q     []int8                         // (K) the codes
	D     []float32                      // (K/32) or (K/256) block scales
	S     []float32                      // (K/32) d·Σq per block, for Q4_1 and Q5_1
	BSums []int32                        // (K/16) Σq per 16 elements, for the K-quants
	dot   func(w []byte, a *Act) float32 // the kernel for typ on this CPU
	rows  func(w []byte, rows int, a *Act, out []float32)
}

// ActBlock is the activation block size products with t use.
func ActBlock(t Type) int {
	if t.Block() == QK {
		return QK
	}
	return 32
}

// Quantize fills a with x quantized for products with weights of type t;
// len(x) must be a whole number of t's blocks.
func (a *Act) Quantize(t Type, x []float32) {
	bs := ActBlock(t)
	if len(x)%bs != 0 {
		panic(fmt.Sprintf("quant.Act.Quantize: %d values are not whole blocks of %d", len(x), bs))
	}
	nb := len(x) / bs
	a.typ = t
	if a.dot = fastDot(t, true); a.dot == nil {
		a.dot = dotFuncs[t]
	}
	a.rows = fastDotRows(t)
	a.Q = grow(a.Q, len(x))
	a.D = grow(a.D, nb)
	if bs == QK {
		a.BSums = grow(a.BSums, len(x)/16)
		for i := 0; i < nb; i++ {
			quantQ8K(a.Q[i*QK:(i+1)*QK], &a.D[i], a.BSums[16*i:16*i+16], x[i*QK:(i+1)*QK])
		}
		return
	}
	a.S = grow(a.S, nb)
	for i := 0; i < nb; i++ {
		xs, q := x[32*i:32*i+32], a.Q[32*i:32*i+32]
		var amax float32
		for _, v := range xs {
			amax = max(amax, abs32(v))
		}
		d := amax / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		sum := 0
		for j, v := range xs {
			c := int8(nearestInt(v * id))
			q[j] = c
			sum += int(c)
		}
		a.D[i] = roundF16(d) // Q8_0 stores d as half
		a.S[i] = roundF16(float32(sum) * d)
	}
}

// Retype makes a, quantized for one weight type, serve products with
// weights of type t, and reports whether it can: the codes are the same
// for every type with the same activation block (Q8_K for the K-quants,
// Q8_0 with its sums for the others), so one quantized row serves, say,
// a Q4_K and a Q6_K matrix.
func (a *Act) Retype(t Type) bool {
	if a.dot == nil || ActBlock(t) != ActBlock(a.typ) {
		return false
	}
	if a.typ != t {
		a.typ = t
		if a.dot = fastDot(t, true); a.dot == nil {
			a.dot = dotFuncs[t]
		}
		a.rows = fastDotRows(t)
	}
	return true
}

// quantQ8K is llama.cpp's quantize_row_q8_K for one block of 256.
func quantQ8K(q []int8, d *float32, bsums []int32, x []float32) {
	mx := absMaxSigned(x)
	if mx == 0 {
		*d = 0
		clear(q)
		clear(bsums)
		return
	}
	iscale := -127 / mx
	for j, v := range x {
		q[j] = int8(min(127, nearestInt(iscale*v)))
	}
	for j := range bsums {
		s := int32(0)
		for _, c := range q[16*j : 16*j+16] {
			s += int32(c)
		}
		bsums[j] = s
	}
	*d = 1 / iscale
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// Dot returns the product of one weight row w (its blocks of type t) with
// the activation a, which Quantize prepared for t.
func Dot(t Type, w []byte, a *Act) float32 {
	if a.typ != t {
		panic(fmt.Sprintf("quant.Dot: %v weights with an activation quantized for %v", t, a.typ))
	}
	return a.dot(w, a)
}

// DotRows sets out[r] to the product of row r of w (rows whole rows of
// type t, one after another) with a, for r < rows: Dot per row, in one
// call where the CPU has a kernel for it (the same arithmetic, so the
// same bits).
func DotRows(t Type, w []byte, rows int, a *Act, out []float32) {
	if a.typ != t {
		panic(fmt.Sprintf("quant.DotRows: %v weights with an activation quantized for %v", t, a.typ))
	}
	if f := a.rows; f != nil {
		f(w, rows, a, out)
		return
	}
	if rows == 0 {
		return
	}
	rb := len(w) / rows
	for r := range rows {
		out[r] = a.dot(w[r*rb:(r+1)*rb], a)
	}
}

var dotFuncs = map[Type]func(w []byte, a *Act) float32{
	Q4_0: dotQ4_0, Q4_1: dotQ4_1, Q5_0: dotQ5_0, Q5_1: dotQ5_1, Q8_0: dotQ8_0,
	Q2_K: dotQ2K, Q3_K: dotQ3K, Q4_K: dotQ4K, Q5_K: dotQ5K, Q6_K: dotQ6K,
}

func dotQ4_0(w []byte, a *Act) float32 {
	var sum float32
	for i := range a.D {
		b, q := w[18*i:18*i+18], a.Q[32*i:32*i+32]
		s := int32(0)
		for j := 0; j < 16; j++ {
			c := b[2+j]
			s += int32(int(c&15)-8)*int32(q[j]) + int32(int(c>>4)-8)*int32(q[16+j])
		}
		sum += float32(s) * (f16(b) * a.D[i])
	}
	return sum
}

func dotQ4_1(w []byte, a *Act) float32 {
	var sum float32
	for i := range a.D {
		b, q := w[20*i:20*i+20], a.Q[32*i:32*i+32]
		s := int32(0)
		for j := 0; j < 16; j++ {
			c := b[4+j]
			s += int32(c&15)*int32(q[j]) + int32(c>>4)*int32(q[16+j])
		}
		sum += float32(s)*(f16(b)*a.D[i]) + f16(b[2:])*a.S[i]
	}
	return sum
}

func dotQ5_0(w []byte, a *Act) float32 {
	var sum float32
	for i := range a.D {
		b, q := w[22*i:22*i+22], a.Q[32*i:32*i+32]
		qh := uint32(b[2]) | uint32(b[3])<<8 | uint32(b[4])<<16 | uint32(b[5])<<24
		s := int32(0)
		for j := 0; j < 16; j++ {
			c := b[6+j]
			lo := int32(c&15) | int32(qh>>j&1)<<4 - 16
			hi := int32(c>>4) | int32(qh>>(j+16)&1)<<4 - 16
			s += lo*int32(q[j]) + hi*int32(q[16+j])
		}
		sum += float32(s) * (f16(b) * a.D[i])
	}
	return sum
}

func dotQ5_1(w []byte, a *Act) float32 {
	var sum float32
	for i := range a.D {
		b, q := w[24*i:24*i+24], a.Q[32*i:32*i+32]
		qh := uint32(b[4]) | uint32(b[5])<<8 | uint32(b[6])<<16 | uint32(b[7])<<24
		s := int32(0)
		for j := 0; j < 16; j++ {
			c := b[8+j]
			lo := int32(c&15) | int32(qh>>j&1)<<4
			hi := int32(c>>4) | int32(qh>>(j+16)&1)<<4
			s += lo*int32(q[j]) + hi*int32(q[16+j])
		}
		sum += float32(s)*(f16(b)*a.D[i]) + f16(b[2:])*a.S[i]
	}
	return sum
}

func dotQ8_0(w []byte, a *Act) float32 {
	var sum float32
	for i := range a.D {
		b, q := w[34*i:34*i+34], a.Q[32*i:32*i+32]
		sum += float32(dotI8(asI8(b[2:34]), q)) * (f16(b) * a.D[i])
	}
	return sum
}

func dotQ2K(w []byte, a *Act) float32 {
	var sum float32
	for i := range a.D {
		b, q, bs := w[84*i:84*i+84], a.Q[QK*i:QK*i+QK], a.BSums[16*i:16*i+16]
		sc, qs := b[0:16], b[16:80]
		summs := int32(0)
		for j := range bs {
			summs += int32(sc[j]>>4) * bs[j]
		}
		isum := int32(0)
		is := 0
		for n := 0; n < QK; n += 128 {
			qq := qs[n/4:]
			for shift := 0; shift < 8; shift += 2 {
				for h := 0; h < 2; h++ {
					s := int32(0)
					qa := q[n+shift*16+16*h:]
					for l := 0; l < 16; l++ {
						s += int32((qq[16*h+l]>>shift)&3) * int32(qa[l])
					}
					isum += int32(sc[is]&0xF) * s
					is++
				}
			}
		}
		dall, dmin := a.D[i]*f16(b[80:]), a.D[i]*f16(b[82:])
		sum += dall*float32(isum) - dmin*float32(summs)
	}
	return sum
}

func dotQ3K(w []byte, a *Act) float32 {
	var sum float32
	for i := range a.D {
		b, q := w[110*i:110*i+110], a.Q[QK*i:QK*i+QK]
		hm, qs, sc := b[0:32], b[32:96], b[96:108]
		isum := int32(0)
		is := 0
		m := uint8(1)
		for n := 0; n < QK; n += 128 {
			qq := qs[n/4:]
			for shift := 0; shift < 8; shift += 2 {
				for h := 0; h < 2; h++ {
					s := int32(0)
					qa := q[n+shift*16+16*h:]
					for l := 0; l < 16; l++ {
						v := int32((qq[16*h+l] >> shift) & 3)
						if hm[16*h+l]&m == 0 {
							v -= 4
						}
						s += v * int32(qa[l])
					}
					isum += int32(q3Scale(sc, is)) * s
					is++
				}
				m <<= 1
			}
		}
		sum += a.D[i] * f16(b[108:]) * float32(isum)
	}
	return sum
}

func dotQ4K(w []byte, a *Act) float32 {
	var sum float32
	for i := range a.D {
		b, q, bs := w[144*i:144*i+144], a.Q[QK*i:QK*i+QK], a.BSums[16*i:16*i+16]
		sc, qs := b[4:16], b[16:144]
		isum, summ := int32(0), int32(0)
		for j := 0; j < 4; j++ {
			s1, m1 := scaleMinK4(2*j, sc)
			s2, m2 := scaleMinK4(2*j+1, sc)
			qq, qa := qs[32*j:32*j+32], q[64*j:64*j+64]
			lo, hi := int32(0), int32(0)
			for l, c := range qq {
				lo += int32(c&0xF) * int32(qa[l])
				hi += int32(c>>4) * int32(qa[32+l])
			}
			isum += int32(s1)*lo + int32(s2)*hi
			summ += int32(m1)*(bs[4*j]+bs[4*j+1]) + int32(m2)*(bs[4*j+2]+bs[4*j+3])
		}
		sum += a.D[i]*f16(b[0:])*float32(isum) - a.D[i]*f16(b[2:])*float32(summ)
	}
	return sum
}

func dotQ5K(w []byte, a *Act) float32 {
	var sum float32
	for i := range a.D {
		b, q, bs := w[176*i:176*i+176], a.Q[QK*i:QK*i+QK], a.BSums[16*i:16*i+16]
		sc, qh, qs := b[4:16], b[16:48], b[48:176]
		isum, summ := int32(0), int32(0)
		u1, u2 := uint8(1), uint8(2)
		for j := 0; j < 4; j++ {
			s1, m1 := scaleMinK4(2*j, sc)
			s2, m2 := scaleMinK4(2*j+1, sc)
			qq, qa := qs[32*j:32*j+32], q[64*j:64*j+64]
			lo, hi := int32(0), int32(0)
			for l, c := range qq {
				vl, vh := int32(c&0xF), int32(c>>4)
				if qh[l]&u1 != 0 {
					vl += 16
				}
				if qh[l]&u2 != 0 {
					vh += 16
				}
				lo += vl * int32(qa[l])
				hi += vh * int32(qa[32+l])
			}
			isum += int32(s1)*lo + int32(s2)*hi
			summ += int32(m1)*(bs[4*j]+bs[4*j+1]) + int32(m2)*(bs[4*j+2]+bs[4*j+3])
			u1, u2 = u1<<2, u2<<2
		}
		sum += a.D[i]*f16(b[0:])*float32(isum) - a.D[i]*f16(b[2:])*float32(summ)
	}
	return sum
}

func dotQ6K(w []byte, a *Act) float32 {
	var sum float32
	for i := range a.D {
		b, q := w[210*i:210*i+210], a.Q[QK*i:QK*i+QK]
		ql, qh, sc := b[0:128], b[128:192], b[192:208]
		var sub [16]int32
		for n := 0; n < QK; n += 128 {
			o, oh, os := n/2, n/4, n/16
			for l := 0; l < 32; l++ {
				is := os + l/16
				h := qh[oh+l]
				q1 := int32(ql[o+l]&0xF|(h&3)<<4) - 32
				q2 := int32(ql[o+l+32]&0xF|(h>>2&3)<<4) - 32
				q3 := int32(ql[o+l]>>4|(h>>4&3)<<4) - 32
				q4 := int32(ql[o+l+32]>>4|(h>>6&3)<<4) - 32
				sub[is] += q1 * int32(q[n+l])
				sub[is+2] += q2 * int32(q[n+l+32])
				sub[is+4] += q3 * int32(q[n+l+64])
				sub[is+6] += q4 * int32(q[n+l+96])
			}
		}
		isum := int32(0)
		for j, s := range sub {
			isum += int32(int8(sc[j])) * s
		}
		sum += a.D[i] * f16(b[208:]) * float32(isum)
	}
	return sum
}

// asI8 views bytes as int8 codes.
func asI8(b []byte) []int8 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*int8)(unsafe.Pointer(&b[0])), len(b))
}

// dotI8 is Σ a[i]·b[i] over int8 codes, len(b) >= len(a).
func dotI8(a, b []int8) int32 {
	b = b[:len(a)]
	s := int32(0)
	for i, v := range a {
		s += int32(v) * int32(b[i])
	}
	return s
}
