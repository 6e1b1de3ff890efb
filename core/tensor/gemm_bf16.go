package tensor

import (
	"math"
	"unsafe"
)

// Products of many rows with GGML block weights (a prompt, a QLoRA
// forward), on bfloat16 dot products where the CPU has them
// (AVX512_BF16: VDPBF16PS does two multiply-adds per lane where an FMA
// does one, twice the GEMM's throughput).
//
// The driver is the packed GEMM's (gemm.go): b is widened from its blocks
// once per (KC, NC) block, both operands are rounded to bfloat16 (8
// significant bits, round to nearest even) while they are packed, in
// pairs of consecutive k, and the products accumulate in float32. The
// rounding is that of the weights' own grid or finer for the 4- to 6-bit
// types, and of an int8 activation per block as llama.cpp quantizes them;
// F32, F16 and BF16 weights keep the float32 GEMM. Tiles and reduction
// blocks depend on the shape only, so results are the same for any thread
// count.

// bf16MR and bf16NR are micro8x48BF16's tile.
const bf16MR, bf16NR = 8, 48

// useBF16 reports whether p takes this path with kernel set kern: the
// default AVX-512 set (tests of the other sets keep float32), GGML block
// weights, c = a·bᵀ, and a bf16 kernel on this CPU.
func useBF16(kern *gemmKernel, p *gemmProblem) bool {
	return bf16Kernel(kern) && p.b.DType.isGGML() && p.transB && !p.transA
}

// toBF16 rounds x to bfloat16 (nearest, ties to even), as bits.
func toBF16(x float32) uint32 {
	u := math.Float32bits(x)
	return (u + 0x7fff + u>>16&1) >> 16
}

// gemmBF16 computes one slab as gemm does, on bf16 pairs.
func (c *CPU) gemmBF16(sh *gemmShared) {
	p := &sh.prob
	kern := p.kern
	micro := bf16Micro()
	kc0, nc0 := gemmBlocking(kern, p.n, p.k)
	kp0 := (kc0 + 1) / 2
	threads := c.threads()
	sh.b16 = growU32(sh.b16, kp0*nc0)
	st := &sh.st
	st.p, st.kern, st.micro16 = p, kern, micro
	st.mp = (p.m + bf16MR - 1) / bf16MR
	for jc := 0; jc < p.n; jc += nc0 {
		nc := min(nc0, p.n-jc)
		np := (nc + bf16NR - 1) / bf16NR
		gm, gn := max(1, st.mp/(4*threads)), np
		if st.mp < 2*threads {
			gm = 1
			gn = max(1, (np+(4*threads+st.mp-1)/st.mp-1)/((4*threads+st.mp-1)/st.mp))
		}
		for pc := 0; pc < p.k; pc += kc0 {
			kc := min(kc0, p.k-pc)
			st.jc, st.nc, st.pc, st.kc = jc, nc, pc, kc
			st.np, st.gm, st.gn = np, gm, gn
			st.b16 = sh.b16[:(kc+1)/2*np*bf16NR]
			st.tasks = np
			c.gemmRun(st, min(threads, np), (*gemmStep).packTaskBF16)
			st.tasks = ((st.mp + gm - 1) / gm) * ((np + gn - 1) / gn)
			c.gemmRun(st, min(threads, st.tasks), (*gemmStep).computeTaskBF16)
		}
	}
	st.p, st.b16, st.micro16 = nil, nil, nil
}

// packTaskBF16 packs panel q of the current block: NR rows of b (N, K),
// each widened from its blocks and written as (kc/2, NR) bf16 pairs.
func (st *gemmStep) packTaskBF16(s *gemmScratch, q int) {
	p, kc := st.p, st.kc
	kp := (kc + 1) / 2
	j0 := st.jc + q*bf16NR
	w := min(bf16NR, st.jc+st.nc-j0)
	dst := st.b16[q*kp*bf16NR : (q+1)*kp*bf16NR]
	s.row = grow(s.row, 2*kp)
	row := s.row
	row[len(row)-1] = 0 // an odd kc's padding
	for c := range bf16NR {
		if c >= w {
			for i := range kp {
				dst[i*bf16NR+c] = 0
			}
			continue
		}
		p.widen(row[:kc], p.bOff+(j0+c)*p.k+st.pc)
		for i := range kp {
			dst[i*bf16NR+c] = toBF16(row[2*i]) | toBF16(row[2*i+1])<<16
		}
	}
}

// computeTaskBF16 is computeTask on bf16 pairs.
func (st *gemmStep) computeTaskBF16(s *gemmScratch, t int) {
	p, kc := st.p, st.kc
	kp := (kc + 1) / 2
	tn := (st.np + st.gn - 1) / st.gn
	ti, tj := t/tn, t%tn
	p0, p1 := ti*st.gm, min((ti+1)*st.gm, st.mp)
	q0, q1 := tj*st.gn, min((tj+1)*st.gn, st.np)
	s.a16 = growU32(s.a16, kp*bf16MR)
	s.tile = grow(s.tile, bf16MR*bf16NR)
	accum := 1
	if st.pc == 0 && !p.accumulate {
		accum = 0
	}
	a16 := s.a16
	for pi := p0; pi < p1; pi++ {
		i0 := pi * bf16MR
		h := min(bf16MR, p.m-i0)
		// A panel: (kc/2, MR) pairs of rows i0.. of a (M, K).
		for r := range bf16MR {
			if r >= h {
				for i := range kp {
					a16[i*bf16MR+r] = 0
				}
				continue
			}
			x := p.a[(i0+r)*p.k+st.pc:][:kc]
			for i := 0; i < kc/2; i++ {
				a16[i*bf16MR+r] = toBF16(x[2*i]) | toBF16(x[2*i+1])<<16
			}
			if kc%2 == 1 {
				a16[(kp-1)*bf16MR+r] = toBF16(x[kc-1])
			}
		}
		ap := (*float32)(unsafe.Pointer(&a16[0]))
		for q := q0; q < q1; q++ {
			j0 := st.jc + q*bf16NR
			w := min(bf16NR, p.n-j0)
			bq := (*float32)(unsafe.Pointer(&st.b16[q*kp*bf16NR]))
			if h == bf16MR && w == bf16NR {
				st.micro16(kp, ap, bq, &p.c[i0*p.n+j0], p.n, accum)
				continue
			}
			st.micro16(kp, ap, bq, &s.tile[0], bf16NR, 0)
			for r := range h {
				crow := p.c[(i0+r)*p.n+j0 : (i0+r)*p.n+j0+w]
				trow := s.tile[r*bf16NR : r*bf16NR+w]
				if accum != 0 {
					for j, v := range trow {
						crow[j] += v
					}
				} else {
					copy(crow, trow)
				}
			}
		}
	}
}

func growU32(s []uint32, n int) []uint32 {
	if cap(s) < n {
		return make([]uint32, n)
	}
	return s[:n]
}
