package tensor

import (
	"math"
	"sync"
)

// Attention over many queries at once (a prompt, a training sequence) as
// two small GEMMs per tile of MR queries, on the GEMM's micro-kernel:
//
//	S (MR, nk) = Q_tile (MR, D) · K_tileᵀ (D, nk)     scores, then mask,
//	                                                   scale, softcap, softmax
//	O (MR, D)  = P (MR, nk) · V (nk, D)               P normalised per row
//
// where nk covers every key some query of the tile sees. The row-at-a-time
// path (cpu_attn_go.go) spends its time in the call and the horizontal sum
// of one short dot product per (query, key); here each K and V element
// loaded is used MR times from registers. A masked key gets probability 0,
// which adds exactly nothing, so a query's result depends only on its tile
// (tiles start at multiples of MR), never on the thread count.
//
// Memory per worker: K and V of one (sequence, kv head) packed, and the
// tile's scores, O((S+P)·(D+MR)).

// attnTiledMin is the fewest queries per sequence that take the tiled
// path; decoding (one query) keeps the row path, which streams K and V.
const attnTiledMin = 8

// attnScratch is one worker's buffers for the tiled path.
type attnScratch struct {
	kp   []float32 // (nkp/NR, D, NR) key panels
	vp   []float32 // (dp/NR, nkp, NR) value panels
	qp   []float32 // (D, MR) the tile's queries
	pp   []float32 // (nkp, MR) the tile's probabilities
	sc   []float32 // (MR, nkp) scores
	tile []float32 // (MR, dp) output tile
	cnt  []int32   // (MR) visible keys per row
}

var attnScratchPool = sync.Pool{New: func() any { return new(attnScratch) }}

// attentionTiled is Attention for o.Queries >= attnTiledMin.
func (c *CPU) attentionTiled(kern *gemmKernel, out, lse, q, k, v *Tensor, o *AttentionOpts) {
	B, H, KVH, D, T, S, stride, P, scale := o.Dims()
	g := H / KVH
	mr, nr := kern.mr, kern.nr
	tiles := (T + mr - 1) / mr
	// Tasks: (sequence, head, run of query tiles), at least 16 of them when
	// there are enough tiles, so the causal triangle spreads over the
	// threads. The cut depends on the shape only: with a window, a run's
	// first key (j0) shifts where a row's scores sit in the lanes of its
	// sums, so a cut made by thread count would change the last bits.
	runs := max(1, min(tiles, (16+B*H-1)/(B*H)))
	per := (tiles + runs - 1) / runs
	runs = (tiles + per - 1) / per
	c.parallel(B*H*runs, 1, func(lo, hi int) {
		s := attnScratchPool.Get().(*attnScratch)
		defer attnScratchPool.Put(s)
		for task := lo; task < hi; task++ {
			bh, run := task/runs, task%runs
			b, h := bh/H, bh%H
			kh := h / g
			t0, t1 := run*per, min((run+1)*per, tiles)
			// Keys the run's queries can see: the prefix, then keys
			// [j0, j1) (causal: up to the last query's position).
			j0, j1 := 0, min(S, o.Offset+min(T, t1*mr))
			if o.Window > 0 {
				j0 = max(0, o.Offset+t0*mr-o.Window+1)
			}
			j1 = max(j0, j1)
			nk := P + j1 - j0
			nkp := (nk + nr - 1) / nr * nr
			dp := (D + nr - 1) / nr * nr
			s.pack(o, k, v, b, kh, j0, nk, nkp, dp, D, P, stride, KVH, nr)
			s.qp = grow(s.qp, D*mr)
			s.pp = grow(s.pp, nkp*mr)
			s.sc = grow(s.sc, mr*nkp)
			s.tile = grow(s.tile, mr*dp)
			if cap(s.cnt) < mr {
				s.cnt = make([]int32, mr)
			}
			s.cnt = s.cnt[:mr]
			for tt := t0; tt < t1; tt++ {
				i0 := tt * mr
				rows := min(mr, T-i0)
				// This tile's keys: up to its last query's position.
				tk := min(nk, P+max(0, min(S, o.Offset+i0+rows)-j0))
				tkp := (tk + nr - 1) / nr * nr
				s.tileForward(kern, out, lse, q, o, b, h, i0, rows, j0, tk, tkp, nkp, dp, D, T, S, H, P, stride, scale)
			}
		}
	})
}

// pack lays out keys [j0, j0+nk-P) of kv head kh of sequence b, after the
// P prefix rows, as NR-key panels (D, NR), and their values as (nkp, NR)
// panels of NR value columns, zero padded.
func (s *attnScratch) pack(o *AttentionOpts, k, v *Tensor, b, kh, j0, nk, nkp, dp, D, P, stride, KVH, nr int) {
	s.kp = grow(s.kp, nkp*D)
	s.vp = grow(s.vp, dp*nkp)
	row := func(t *Tensor, pre *Tensor, n int) []float32 {
		if n < P {
			return pre.F32[(kh*P+n)*D:][:D]
		}
		return t.F32[((b*stride+j0+n-P)*KVH+kh)*D:][:D]
	}
	for p0 := 0; p0 < nkp; p0 += nr {
		panel := s.kp[p0*D : (p0+nr)*D]
		for jj := 0; jj < nr; jj++ {
			n := p0 + jj
			if n >= nk {
				for d := 0; d < D; d++ {
					panel[d*nr+jj] = 0
				}
				continue
			}
			for d, x := range row(k, o.PrefixK, n) {
				panel[d*nr+jj] = x
			}
		}
	}
	for c0 := 0; c0 < dp; c0 += nr {
		panel := s.vp[c0*nkp : (c0+nr)*nkp]
		w := min(nr, D-c0)
		for n := 0; n < nkp; n++ {
			dst := panel[n*nr : (n+1)*nr]
			if n >= nk {
				clear(dst)
				continue
			}
			copy(dst[:w], row(v, o.PrefixV, n)[c0:c0+w])
			clear(dst[w:])
		}
	}
}

// tileForward computes queries [i0, i0+rows) of head h of sequence b
// against the first tk packed keys (tkp rounded up to NR).
func (s *attnScratch) tileForward(kern *gemmKernel, out, lse, q *Tensor, o *AttentionOpts,
	b, h, i0, rows, j0, tk, tkp, nkp, dp, D, T, S, H, P, stride int, scale float32) {
	mr, nr := kern.mr, kern.nr
	// Q tile, (D, MR), zero rows past the end.
	qp := s.qp[:D*mr]
	if rows < mr {
		clear(qp)
	}
	for r := range rows {
		for d, x := range q.F32[((b*T+i0+r)*H+h)*D:][:D] {
			qp[d*mr+r] = x * scale // scores come out scaled
		}
	}
	sc := s.sc[:mr*tkp]
	for p0 := 0; p0 < tkp; p0 += nr {
		kern.micro(D, &qp[0], &s.kp[p0*D], &sc[p0], tkp, 0)
	}
	// Mask, scale, softcap and softmax each row; P goes out transposed,
	// (tkp, MR), as the second product's packed A. A masked score is set
	// to -Inf: the exponential's lower clamp turns it into at most
	// 2^-126, which cannot change the row's sum (at least 1, from the
	// maximum), and its probability is written as 0.
	pp := s.pp[:tkp*mr]
	clear(pp)
	// The keys a row can see are the prefix and one run [xlo, xhi] of
	// the packed keys; segment ids may also hide keys inside the run.
	for r := 0; r < mr; r++ {
		s.cnt[r] = 0
		if r >= rows {
			continue
		}
		i := i0 + r
		xlo, xhi := P, P+min(S-1, o.Offset+i)-j0 // causal
		if o.Window > 0 {
			xlo = max(xlo, P+o.Offset+i-o.Window+1-j0)
		}
		xhi = min(xhi, tk-1)
		row := sc[r*tkp : r*tkp+tk]
		li := (b*H+h)*T + i
		if o.Softcap == 0 && P == 0 {
			// The common case: one run of keys, some hidden by segment
			// ids (generation sets them for left padding).
			if xhi < xlo {
				lse.F32[li] = float32(math.Inf(-1))
				continue
			}
			run := row[xlo : xhi+1]
			var ks []int32
			var qs int32
			if o.QSeg != nil {
				ks, qs = o.KSeg[b*stride+j0+xlo:][:len(run)], o.QSeg[b*T+i]
				for x, k := range ks {
					if k != qs {
						run[x] = float32(math.Inf(-1))
					}
				}
			}
			m := maxF32(run)
			if math.IsInf(float64(m), -1) {
				lse.F32[li] = float32(math.Inf(-1))
				continue
			}
			l := expStore(run, run, m)
			inv := 1 / l
			for x, e := range run {
				if ks == nil || ks[x] == qs {
					pp[(xlo+x)*mr+r] = e * inv
				}
			}
			s.cnt[r] = 1
			lse.F32[li] = m + float32(math.Log(float64(l)))
			continue
		}
		seen := func(x int) bool {
			return x < P || x >= xlo && x <= xhi && (o.QSeg == nil || o.QSeg[b*T+i] == o.KSeg[b*stride+j0+x-P])
		}
		m := float32(math.Inf(-1))
		for x := range row {
			if !seen(x) {
				row[x] = float32(math.Inf(-1))
				continue
			}
			sv := row[x]
			if o.Softcap > 0 {
				sv = o.Softcap * float32(math.Tanh(float64(sv/o.Softcap)))
			}
			row[x] = sv
			m = max(m, sv)
			s.cnt[r]++
		}
		if s.cnt[r] == 0 {
			lse.F32[li] = float32(math.Inf(-1))
			continue
		}
		l := expStore(row, row, m)
		inv := 1 / l
		for x, e := range row {
			if seen(x) {
				pp[x*mr+r] = e * inv
			}
		}
		lse.F32[li] = m + float32(math.Log(float64(l)))
	}
	if tk == 0 {
		for r := range rows {
			clear(out.F32[((b*T+i0+r)*H+h)*D:][:D])
		}
		return
	}
	tile := s.tile[:mr*dp]
	for c0 := 0; c0 < dp; c0 += nr {
		kern.micro(tk, &pp[0], &s.vp[c0*nkp], &tile[c0], dp, 0)
	}
	for r := range rows {
		oi := out.F32[((b*T+i0+r)*H+h)*D:][:D]
		if s.cnt[r] == 0 {
			clear(oi)
			continue
		}
		copy(oi, tile[r*dp:r*dp+D])
	}
}

// maxF32 is the largest of x (len(x) > 0), four lanes at a time.
func maxF32(x []float32) float32 {
	m0, m1, m2, m3 := x[0], x[0], x[0], x[0]
	i := 0
	for ; i+4 <= len(x); i += 4 {
		m0, m1, m2, m3 = max(m0, x[i]), max(m1, x[i+1]), max(m2, x[i+2]), max(m3, x[i+3])
	}
	for ; i < len(x); i++ {
		m0 = max(m0, x[i])
	}
	return max(max(m0, m1), max(m2, m3))
}
