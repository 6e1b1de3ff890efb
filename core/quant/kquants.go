package quant

// The K-quants: super-blocks of 256 elements cut into sub-blocks of 16
// or 32 that each have a small integer scale (and minimum), themselves
// scaled by the super-block's f16 d (and dmin). Byte layouts, in order:
//
//	Q2_K  scales[16] (4-bit scale | 4-bit min << 4), qs[64] (2 bits), d, dmin      84 bytes
//	Q3_K  hmask[32] (high bit), qs[64] (low 2 bits), scales[12] (16 × 6 bits), d 110 bytes
//	Q4_K  d, dmin, scales[12] (8 × 6-bit scale and min), qs[128] (4 bits)       144 bytes
//	Q5_K  d, dmin, scales[12], qh[32] (fifth bit), qs[128]                      176 bytes
//	Q6_K  ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] (int8), d       210 bytes
//
// The 2-bit codes of Q2_K/Q3_K: byte l of each 32-byte group of qs holds
// elements l, l+32, l+64, l+96 of a 128-element half in bits 0-1, 2-3,
// 4-5, 6-7. Q4_K/Q5_K: byte l of each 32-byte group holds elements l and
// l+32 of a 64-element quarter. Q6_K's ql: bytes l and l+32 of each 64
// hold elements l, l+32 (low nibbles) and l+64, l+96 (high nibbles).

const groupMaxEps = 1e-15

// makeQXQuants is llama.cpp's make_qx_quants with rmse_type 1 and no
// importance weights (weights x²): symmetric codes in [0, 2·nmax) and the
// scale that minimises the weighted error over 19 trial scales.
func makeQXQuants(nmax int, x []float32, L []int8) float32 {
	var mx, amax float32
	for _, v := range x {
		if a := abs32(v); a > amax {
			amax, mx = a, v
		}
	}
	if amax < groupMaxEps {
		clear(L[:len(x)])
		return 0
	}
	iscale := float32(-nmax) / mx
	var sumlx, suml2 float32
	for i, v := range x {
		l := max(-nmax, min(nmax-1, nearestInt(iscale*v)))
		L[i] = int8(nmax + l)
		w := v * v
		fl := float32(l)
		sumlx += float32(w*v) * fl
		suml2 += float32(w*fl) * fl
	}
	var scale float32
	if suml2 != 0 {
		scale = sumlx / suml2
	}
	best := scale * sumlx
	for is := -9; is <= 9; is++ {
		if is == 0 {
			continue
		}
		iscale = -(float32(nmax) + float32(0.1)*float32(is)) / mx
		sumlx, suml2 = 0, 0
		for _, v := range x {
			l := max(-nmax, min(nmax-1, nearestInt(iscale*v)))
			w := v * v
			fl := float32(l)
			sumlx += float32(w*v) * fl
			suml2 += float32(w*fl) * fl
		}
		if suml2 > 0 && float32(sumlx*sumlx) > float32(best*suml2) {
			for i, v := range x {
				l := max(-nmax, min(nmax-1, nearestInt(iscale*v)))
				L[i] = int8(nmax + l)
			}
			scale = sumlx / suml2
			best = scale * sumlx
		}
	}
	return scale
}

// makeQ3Quants is make_q3_quants with do_rmse: codes in [0, 2·nmax) and a
// scale refined by moving one code at a time while the weighted error
// falls (five rounds at most).
func makeQ3Quants(nmax int, x []float32, L []int8) float32 {
	var mx, amax float32
	for _, v := range x {
		if a := abs32(v); a > amax {
			amax, mx = a, v
		}
	}
	if amax < groupMaxEps {
		clear(L[:len(x)])
		return 0
	}
	iscale := float32(-nmax) / mx
	var sumlx, suml2 float32
	for i, v := range x {
		l := max(-nmax, min(nmax-1, nearestInt(iscale*v)))
		L[i] = int8(l)
		w := v * v
		fl := float32(l)
		sumlx += float32(w*v) * fl
		suml2 += float32(w*fl) * fl
	}
	for itry := 0; itry < 5; itry++ {
		changed := 0
		for i, v := range x {
			w := v * v
			fl := float32(L[i])
			slx := sumlx - float32(w*v)*fl
			if slx > 0 {
				sl2 := suml2 - float32(w*fl)*fl
				nl := max(-nmax, min(nmax-1, nearestInt(float32(v*sl2)/slx)))
				if nl != int(L[i]) {
					fn := float32(nl)
					slx += float32(w*v) * fn
					sl2 += float32(w*fn) * fn
					if sl2 > 0 && float32(float32(slx*slx)*suml2) > float32(float32(sumlx*sumlx)*sl2) {
						L[i] = int8(nl)
						sumlx, suml2 = slx, sl2
						changed++
					}
				}
			}
		}
		if changed == 0 {
			break
		}
	}
	for i := range x {
		L[i] += int8(nmax)
	}
	if suml2 > 0 {
		return sumlx / suml2
	}
	return 0
}

// makeQKX2Quants is make_qkx2_quants: asymmetric codes in [0, nmax] with
// a scale and a minimum (returned negated in *theMin) fitted by weighted
// least squares over nstep+1 trial scales.
func makeQKX2Quants(nmax int, x, weights []float32, L, Laux []uint8, theMin *float32, rmin, rdelta float32, nstep int, useMad bool) float32 {
	n := len(x)
	mn, mx := x[0], x[0]
	sumW := weights[0]
	sumX := sumW * x[0]
	for i := 1; i < n; i++ {
		if x[i] < mn {
			mn = x[i]
		}
		if x[i] > mx {
			mx = x[i]
		}
		w := weights[i]
		sumW += w
		sumX += float32(w * x[i])
	}
	if mn > 0 {
		mn = 0
	}
	if mx == mn {
		clear(L[:n])
		*theMin = -mn
		return 0
	}
	fnmax := float32(nmax)
	iscale := fnmax / (mx - mn)
	scale := 1 / iscale
	var bestErr float32
	for i := 0; i < n; i++ {
		l := max(0, min(nmax, nearestInt(iscale*(x[i]-mn))))
		L[i] = uint8(l)
		diff := float32(scale*float32(l)) + mn - x[i]
		if useMad {
			diff = abs32(diff)
		} else {
			diff *= diff
		}
		bestErr += float32(weights[i] * diff)
	}
	if nstep < 1 {
		*theMin = -mn
		return scale
	}
	for is := 0; is <= nstep; is++ {
		iscale = (rmin + float32(rdelta*float32(is)) + fnmax) / (mx - mn)
		var sumL, sumL2, sumXL float32
		for i := 0; i < n; i++ {
			l := max(0, min(nmax, nearestInt(iscale*(x[i]-mn))))
			Laux[i] = uint8(l)
			w := weights[i]
			fl := float32(l)
			sumL += float32(w * fl)
			sumL2 += float32(w*fl) * fl
			sumXL += float32(w*fl) * x[i]
		}
		D := float32(sumW*sumL2) - float32(sumL*sumL)
		if D > 0 {
			thisScale := (float32(sumW*sumXL) - float32(sumX*sumL)) / D
			thisMin := (float32(sumL2*sumX) - float32(sumL*sumXL)) / D
			if thisMin > 0 {
				thisMin = 0
				thisScale = sumXL / sumL2
			}
			var cur float32
			for i := 0; i < n; i++ {
				diff := float32(thisScale*float32(Laux[i])) + thisMin - x[i]
				if useMad {
					diff = abs32(diff)
				} else {
					diff *= diff
				}
				cur += float32(weights[i] * diff)
			}
			if cur < bestErr {
				copy(L[:n], Laux[:n])
				bestErr = cur
				scale = thisScale
				mn = thisMin
			}
		}
	}
	*theMin = -mn
	return scale
}

// scaleMinK4 unpacks sub-block j's 6-bit scale and minimum of Q4_K/Q5_K.
func scaleMinK4(j int, q []byte) (d, m uint8) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return q[j+4]&0xF | (q[j-4]>>6)<<4, q[j+4]>>4 | (q[j]>>6)<<4
}

// pack2 writes 2-bit codes as Q2_K/Q3_K lay them out.
func pack2(qs []byte, L []uint8) {
	for j := 0; j < QK; j += 128 {
		for l := 0; l < 32; l++ {
			qs[j/4+l] = L[j+l] | L[j+l+32]<<2 | L[j+l+64]<<4 | L[j+l+96]<<6
		}
	}
}

func quantQ2K(b []byte, x []float32) {
	var L, Laux [QK]uint8
	var weights [16]float32
	var mins, scales [16]float32
	var maxScale, maxMin float32
	for j := 0; j < 16; j++ {
		for l := 0; l < 16; l++ {
			weights[l] = abs32(x[16*j+l])
		}
		scales[j] = makeQKX2Quants(3, x[16*j:16*j+16], weights[:], L[16*j:], Laux[:], &mins[j], -0.5, 0.1, 15, true)
		maxScale = max(maxScale, scales[j])
		maxMin = max(maxMin, mins[j])
	}
	sc := b[0:16]
	clear(b)
	if maxScale > 0 {
		iscale := 15 / maxScale
		for j := range sc {
			sc[j] = uint8(nearestInt(iscale * scales[j]))
		}
		putF16(b[80:], maxScale/15)
	}
	if maxMin > 0 {
		iscale := 15 / maxMin
		for j := range sc {
			sc[j] |= uint8(nearestInt(iscale*mins[j])) << 4
		}
		putF16(b[82:], maxMin/15)
	}
	d, dmin := f16(b[80:]), f16(b[82:])
	for j := 0; j < 16; j++ {
		dj := d * float32(sc[j]&0xF)
		if dj == 0 {
			continue
		}
		dm := dmin * float32(sc[j]>>4)
		for i := 0; i < 16; i++ {
			L[16*j+i] = uint8(max(0, min(3, nearestInt((x[16*j+i]+dm)/dj))))
		}
	}
	pack2(b[16:80], L[:])
}

func dequantQ2K(y []float32, b []byte) {
	sc, q := b[0:16], b[16:80]
	d, dmin := f16(b[80:]), f16(b[82:])
	is := 0
	for n := 0; n < QK; n += 128 {
		qq := q[n/4:]
		for shift := 0; shift < 8; shift += 2 {
			for h := 0; h < 2; h++ {
				s := sc[is]
				is++
				dl, ml := d*float32(s&0xF), dmin*float32(s>>4)
				for l := 0; l < 16; l++ {
					y[0] = dl*float32((qq[16*h+l]>>shift)&3) - ml
					y = y[1:]
				}
			}
		}
	}
}

// q3Scale unpacks sub-block j's 6-bit scale of Q3_K (stored +32).
func q3Scale(sc []byte, j int) int {
	var lo uint8
	if j < 8 {
		lo = sc[j] & 0xF
	} else {
		lo = sc[j-8] >> 4
	}
	return int(lo|(sc[8+j%4]>>(2*(j/4))&3)<<4) - 32
}

func quantQ3K(b []byte, x []float32) {
	var L [QK]int8
	var scales [16]float32
	var maxScale, amax float32
	for j := 0; j < 16; j++ {
		scales[j] = makeQ3Quants(4, x[16*j:16*j+16], L[16*j:])
		if s := abs32(scales[j]); s > amax {
			amax, maxScale = s, scales[j]
		}
	}
	clear(b)
	sc := b[96:108]
	if maxScale != 0 {
		iscale := -32 / maxScale
		for j := 0; j < 16; j++ {
			l := int(max(-32, min(31, int8(nearestInt(iscale*scales[j]))))) + 32
			if j < 8 {
				sc[j] = uint8(l & 0xF)
			} else {
				sc[j-8] |= uint8(l&0xF) << 4
			}
			sc[j%4+8] |= uint8(l>>4) << (2 * (j / 4))
		}
		putF16(b[108:], 1/iscale)
	}
	dAll := f16(b[108:])
	for j := 0; j < 16; j++ {
		d := dAll * float32(q3Scale(sc, j))
		if d == 0 {
			continue
		}
		for i := 0; i < 16; i++ {
			L[16*j+i] = int8(max(-4, min(3, nearestInt(x[16*j+i]/d))) + 4)
		}
	}
	hmask := b[0:32]
	var U [QK]uint8
	m, hm := 0, uint8(1)
	for j := 0; j < QK; j++ {
		v := uint8(L[j])
		if v > 3 {
			hmask[m] |= hm
			v -= 4
		}
		U[j] = v
		if m++; m == QK/8 {
			m, hm = 0, hm<<1
		}
	}
	pack2(b[32:96], U[:])
}

func dequantQ3K(y []float32, b []byte) {
	hm, q, sc := b[0:32], b[32:96], b[96:108]
	dAll := f16(b[108:])
	is := 0
	m := uint8(1)
	for n := 0; n < QK; n += 128 {
		qq := q[n/4:]
		for shift := 0; shift < 8; shift += 2 {
			for h := 0; h < 2; h++ {
				dl := dAll * float32(q3Scale(sc, is))
				is++
				for l := 0; l < 16; l++ {
					v := int((qq[16*h+l] >> shift) & 3)
					if hm[16*h+l]&m == 0 {
						v -= 4
					}
					y[0] = dl * float32(v)
					y = y[1:]
				}
			}
			m <<= 1
		}
	}
}

// quantK4 fits Q4_K's or Q5_K's scales: nmax is 15 or 31. It returns the
// codes in L with the block's d, dmin and packed scales written to b.
func quantK4(b []byte, x []float32, L *[QK]uint8, nmax int, rmin, rdelta float32, nstep int) {
	var Laux [32]uint8
	var weights [32]float32
	var mins, scales [8]float32
	var maxScale, maxMin float32
	for j := 0; j < 8; j++ {
		xs := x[32*j : 32*j+32]
		var sumX2 float32
		for _, v := range xs {
			sumX2 += v * v
		}
		avX := sqrt32(sumX2 / 32)
		for l, v := range xs {
			weights[l] = avX + abs32(v)
		}
		scales[j] = makeQKX2Quants(nmax, xs, weights[:], L[32*j:], Laux[:], &mins[j], rmin, rdelta, nstep, false)
		maxScale = max(maxScale, scales[j])
		maxMin = max(maxMin, mins[j])
	}
	var invScale, invMin float32
	if maxScale > 0 {
		invScale = 63 / maxScale
	}
	if maxMin > 0 {
		invMin = 63 / maxMin
	}
	sc := b[4:16]
	clear(sc)
	for j := 0; j < 8; j++ {
		ls := min(63, uint8(nearestInt(invScale*scales[j])))
		lm := min(63, uint8(nearestInt(invMin*mins[j])))
		if j < 4 {
			sc[j], sc[j+4] = ls, lm
		} else {
			sc[j+4] = ls&0xF | (lm&0xF)<<4
			sc[j-4] |= (ls >> 4) << 6
			sc[j] |= (lm >> 4) << 6
		}
	}
	putF16(b[0:], maxScale/63)
	putF16(b[2:], maxMin/63)
	d, dmin := f16(b[0:]), f16(b[2:])
	for j := 0; j < 8; j++ {
		s, m := scaleMinK4(j, sc)
		dj := d * float32(s)
		if dj == 0 {
			continue
		}
		dm := dmin * float32(m)
		for i := 0; i < 32; i++ {
			L[32*j+i] = uint8(max(0, min(nmax, nearestInt((x[32*j+i]+dm)/dj))))
		}
	}
}

func quantQ4K(b []byte, x []float32) {
	var L [QK]uint8
	quantK4(b, x, &L, 15, -1, 0.1, 20)
	q := b[16:144]
	for j := 0; j < QK; j += 64 {
		for l := 0; l < 32; l++ {
			q[j/2+l] = L[j+l] | L[j+l+32]<<4
		}
	}
}

func dequantQ4K(y []float32, b []byte) {
	d, dmin := f16(b[0:]), f16(b[2:])
	sc, q := b[4:16], b[16:144]
	for j, is := 0, 0; j < QK; j, is = j+64, is+2 {
		s1, m1 := scaleMinK4(is, sc)
		s2, m2 := scaleMinK4(is+1, sc)
		d1, mm1 := d*float32(s1), dmin*float32(m1)
		d2, mm2 := d*float32(s2), dmin*float32(m2)
		qq := q[j/2 : j/2+32]
		for l, v := range qq {
			y[j+l] = d1*float32(v&0xF) - mm1
			y[j+32+l] = d2*float32(v>>4) - mm2
		}
	}
}

func quantQ5K(b []byte, x []float32) {
	var L [QK]uint8
	quantK4(b, x, &L, 31, -0.5, 0.1, 15)
	qh, ql := b[16:48], b[48:176]
	clear(qh)
	m1, m2 := uint8(1), uint8(2)
	for n := 0; n < QK; n += 64 {
		for j := 0; j < 32; j++ {
			l1, l2 := L[n+j], L[n+j+32]
			if l1 > 15 {
				l1 -= 16
				qh[j] |= m1
			}
			if l2 > 15 {
				l2 -= 16
				qh[j] |= m2
			}
			ql[n/2+j] = l1 | l2<<4
		}
		m1, m2 = m1<<2, m2<<2
	}
}

func dequantQ5K(y []float32, b []byte) {
	d, dmin := f16(b[0:]), f16(b[2:])
	sc, qh, ql := b[4:16], b[16:48], b[48:176]
	u1, u2 := uint8(1), uint8(2)
	for j, is := 0, 0; j < QK; j, is = j+64, is+2 {
		s1, m1 := scaleMinK4(is, sc)
		s2, m2 := scaleMinK4(is+1, sc)
		d1, mm1 := d*float32(s1), dmin*float32(m1)
		d2, mm2 := d*float32(s2), dmin*float32(m2)
		qq := ql[j/2 : j/2+32]
		for l, v := range qq {
			lo, hi := v&0xF, v>>4
			if qh[l]&u1 != 0 {
				lo += 16
			}
			if qh[l]&u2 != 0 {
				hi += 16
			}
			y[j+l] = d1*float32(lo) - mm1
			y[j+32+l] = d2*float32(hi) - mm2
		}
		u1, u2 = u1<<2, u2<<2
	}
}

func quantQ6K(b []byte, x []float32) {
	var L [QK]int8
	var scales [16]float32
	var maxScale, maxAbs float32
	for ib := 0; ib < 16; ib++ {
		scales[ib] = makeQXQuants(32, x[16*ib:16*ib+16], L[16*ib:])
		if a := abs32(scales[ib]); a > maxAbs {
			maxAbs, maxScale = a, scales[ib]
		}
	}
	clear(b)
	if maxAbs < groupMaxEps {
		return
	}
	iscale := -128 / maxScale
	putF16(b[208:], 1/iscale)
	sc := b[192:208]
	for ib := range sc {
		sc[ib] = byte(int8(min(127, nearestInt(iscale*scales[ib]))))
	}
	d := f16(b[208:])
	for j := 0; j < 16; j++ {
		dj := d * float32(int8(sc[j]))
		if dj == 0 {
			continue
		}
		for i := 0; i < 16; i++ {
			L[16*j+i] = int8(max(-32, min(31, nearestInt(x[16*j+i]/dj))) + 32)
		}
	}
	ql, qh := b[0:128], b[128:192]
	for j := 0; j < QK; j += 128 {
		o, oh := j/2, j/4
		for l := 0; l < 32; l++ {
			a, c, e, g := uint8(L[j+l]), uint8(L[j+l+32]), uint8(L[j+l+64]), uint8(L[j+l+96])
			ql[o+l] = a&0xF | (e&0xF)<<4
			ql[o+l+32] = c&0xF | (g&0xF)<<4
			qh[oh+l] = a>>4 | (c>>4)<<2 | (e>>4)<<4 | (g>>4)<<6
		}
	}
}

func dequantQ6K(y []float32, b []byte) {
	ql, qh, sc := b[0:128], b[128:192], b[192:208]
	d := f16(b[208:])
	for n := 0; n < QK; n += 128 {
		o, oh, os := n/2, n/4, n/16
		for l := 0; l < 32; l++ {
			is := os + l/16
			h := qh[oh+l]
			q1 := int(ql[o+l]&0xF|(h&3)<<4) - 32
			q2 := int(ql[o+l+32]&0xF|(h>>2&3)<<4) - 32
			q3 := int(ql[o+l]>>4|(h>>4&3)<<4) - 32
			q4 := int(ql[o+l+32]>>4|(h>>6&3)<<4) - 32
			y[n+l] = d * float32(int8(sc[is])) * float32(q1)
			y[n+l+32] = d * float32(int8(sc[is+2])) * float32(q2)
			y[n+l+64] = d * float32(int8(sc[is+4])) * float32(q3)
			y[n+l+96] = d * float32(int8(sc[is+6])) * float32(q4)
		}
	}
}
