package quant

import (
	"encoding/binary"
	"math"
)

// The legacy block types: 32 elements, one f16 scale d (and a minimum m
// for the _1 types). Element j of the block's first half sits in the low
// nibble of qs[j], element j+16 in the high nibble; Q5's fifth bits are a
// little-endian uint32 qh, bit j for element j.
//
//	Q4_0  d qs[16]              x = d·(q-8)
//	Q4_1  d m qs[16]            x = d·q + m
//	Q5_0  d qh[4] qs[16]        x = d·(q-16)
//	Q5_1  d m qh[4] qs[16]      x = d·q + m
//	Q8_0  d qs[32] (int8)       x = d·q

// absMaxSigned returns the element of largest magnitude, with its sign
// (the first one on ties).
func absMaxSigned(x []float32) float32 {
	var amax, m float32
	for _, v := range x {
		if a := abs32(v); amax < a {
			amax, m = a, v
		}
	}
	return m
}

func minMax(x []float32) (lo, hi float32) {
	lo, hi = math.MaxFloat32, -math.MaxFloat32
	for _, v := range x {
		if v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
	}
	return lo, hi
}

func quantQ4_0(b []byte, x []float32) {
	d := absMaxSigned(x) / -8
	var id float32
	if d != 0 {
		id = 1 / d
	}
	putF16(b, d)
	for j := 0; j < 16; j++ {
		x0, x1 := x[j]*id, x[16+j]*id
		q0, q1 := min(15, int8(x0+8.5)), min(15, int8(x1+8.5))
		b[2+j] = byte(q0) | byte(q1)<<4
	}
}

func dequantQ4_0(y []float32, b []byte) {
	d := f16(b)
	for j := 0; j < 16; j++ {
		q := b[2+j]
		y[j] = float32(int(q&15)-8) * d
		y[16+j] = float32(int(q>>4)-8) * d
	}
}

func quantQ4_1(b []byte, x []float32) {
	lo, hi := minMax(x)
	d := (hi - lo) / 15
	var id float32
	if d != 0 {
		id = 1 / d
	}
	putF16(b, d)
	putF16(b[2:], lo)
	for j := 0; j < 16; j++ {
		x0, x1 := (x[j]-lo)*id, (x[16+j]-lo)*id
		q0, q1 := min(15, int8(x0+0.5)), min(15, int8(x1+0.5))
		b[4+j] = byte(q0) | byte(q1)<<4
	}
}

func dequantQ4_1(y []float32, b []byte) {
	d, m := f16(b), f16(b[2:])
	for j := 0; j < 16; j++ {
		q := b[4+j]
		y[j] = float32(q&15)*d + m
		y[16+j] = float32(q>>4)*d + m
	}
}

func quantQ5_0(b []byte, x []float32) {
	d := absMaxSigned(x) / -16
	var id float32
	if d != 0 {
		id = 1 / d
	}
	putF16(b, d)
	var qh uint32
	for j := 0; j < 16; j++ {
		x0, x1 := x[j]*id, x[16+j]*id
		q0, q1 := uint8(min(31, int8(x0+16.5))), uint8(min(31, int8(x1+16.5)))
		b[6+j] = q0&15 | (q1&15)<<4
		qh |= uint32(q0>>4&1)<<j | uint32(q1>>4&1)<<(j+16)
	}
	binary.LittleEndian.PutUint32(b[2:], qh)
}

func dequantQ5_0(y []float32, b []byte) {
	d := f16(b)
	qh := binary.LittleEndian.Uint32(b[2:])
	for j := 0; j < 16; j++ {
		q := b[6+j]
		h0, h1 := int(qh>>j&1)<<4, int(qh>>(j+16)&1)<<4
		y[j] = float32((int(q&15)|h0)-16) * d
		y[16+j] = float32((int(q>>4)|h1)-16) * d
	}
}

func quantQ5_1(b []byte, x []float32) {
	lo, hi := minMax(x)
	d := (hi - lo) / 31
	var id float32
	if d != 0 {
		id = 1 / d
	}
	putF16(b, d)
	putF16(b[2:], lo)
	var qh uint32
	for j := 0; j < 16; j++ {
		x0, x1 := (x[j]-lo)*id, (x[16+j]-lo)*id
		q0, q1 := uint8(x0+0.5), uint8(x1+0.5)
		b[8+j] = q0&15 | (q1&15)<<4
		qh |= uint32(q0>>4&1)<<j | uint32(q1>>4&1)<<(j+16)
	}
	binary.LittleEndian.PutUint32(b[4:], qh)
}

func dequantQ5_1(y []float32, b []byte) {
	d, m := f16(b), f16(b[2:])
	qh := binary.LittleEndian.Uint32(b[4:])
	for j := 0; j < 16; j++ {
		q := b[8+j]
		h0, h1 := int(qh>>j&1)<<4, int(qh>>(j+16)&1)<<4
		y[j] = float32(int(q&15)|h0)*d + m
		y[16+j] = float32(int(q>>4)|h1)*d + m
	}
}

func quantQ8_0(b []byte, x []float32) {
	var amax float32
	for _, v := range x {
		amax = max(amax, abs32(v))
	}
	d := amax / 127
	var id float32
	if d != 0 {
		id = 1 / d
	}
	putF16(b, d)
	for j, v := range x {
		b[2+j] = byte(int8(math.Round(float64(v * id))))
	}
}

func dequantQ8_0(y []float32, b []byte) {
	d := f16(b)
	for j := range y[:32] {
		y[j] = float32(int8(b[2+j])) * d
	}
}
