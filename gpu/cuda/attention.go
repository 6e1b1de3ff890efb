//go:build linux && !android

package cuda

import (
	"fmt"

	"llmlab/core/tensor"
)

// Attention runs as three tiled kernels (kernels.cu): attn_fwd with an
// online softmax per query, and for the backward attn_bwd_dq (per query,
// probabilities recomputed from lse) and attn_bwd_dkdv (per key row, over
// the queries of every head of its group), so no T×S matrix is stored and
// dk, dv need no atomics. A warp owns one query (or key) row and its lanes
// own the head dims, so the kernels take D <= 256; larger heads run on
// the CPU.

// attnWarps and attnTile match ATT_W and ATT_K in kernels.cu.
const (
	attnWarps = 8
	attnTile  = 32
)

type attnShape struct {
	B, H, KVH, D, T, S, stride, P, offset int
	scale                                 float32
	dl                                    int // index into the kernel arrays: DL 1, 2, 4, 8
}

// attnCheck validates the tensors of one attention call against o.
func attnCheck(q, k, v, out, lse *tensor.Tensor, o *tensor.AttentionOpts) attnShape {
	s := attnShape{offset: o.Offset}
	s.B, s.H, s.KVH, s.D, s.T, s.S, s.stride, _, s.scale = o.Dims()
	if s.B < 0 || s.T < 0 || s.S < 0 || s.D <= 0 || s.KVH <= 0 || s.H%s.KVH != 0 || s.S > s.stride {
		panic(fmt.Sprintf("cuda.Attention: bad options %+v", *o))
	}
	if o.PrefixK != nil {
		s.P = o.PrefixK.Numel() / (s.KVH * s.D)
		if s.P*s.KVH*s.D != o.PrefixK.Numel() || o.PrefixV == nil || o.PrefixV.Numel() != o.PrefixK.Numel() {
			panic(fmt.Sprintf("cuda.Attention: prefix k %v, v %v for (KVH=%d, P, D=%d)", o.PrefixK.Shape, o.PrefixV.Shape, s.KVH, s.D))
		}
	}
	qn, kn := s.B*s.T*s.H*s.D, s.B*s.stride*s.KVH*s.D
	if q.Numel() != qn || out.Numel() != qn || lse.Numel() != s.B*s.H*s.T {
		panic(fmt.Sprintf("cuda.Attention: q %v, out %v, lse %v for B=%d T=%d H=%d D=%d", q.Shape, out.Shape, lse.Shape, s.B, s.T, s.H, s.D))
	}
	if k.Numel() != kn || v.Numel() != kn {
		panic(fmt.Sprintf("cuda.Attention: k %v, v %v for B=%d stride=%d KVH=%d D=%d", k.Shape, v.Shape, s.B, s.stride, s.KVH, s.D))
	}
	if o.QSeg != nil && (len(o.QSeg) != s.B*s.T || len(o.KSeg) != s.B*s.stride) {
		panic(fmt.Sprintf("cuda.Attention: %d query and %d key segment ids for B=%d T=%d stride=%d", len(o.QSeg), len(o.KSeg), s.B, s.T, s.stride))
	}
	switch dl := (s.D + 31) / 32; {
	case dl == 1:
		s.dl = 0
	case dl == 2:
		s.dl = 1
	case dl <= 4:
		s.dl = 2
	case dl <= 8:
		s.dl = 3
	default:
		s.dl = -1 // the kernels keep D/32 values per lane: at most 8
	}
	return s
}

// Shared memory of the three kernels, in bytes (see kernels.cu).
func (s attnShape) fwdShm() int { return 4 * (attnTile*(2*s.D+1) + attnWarps*s.D) }
func (s attnShape) dqShm() int  { return 4 * (2*attnTile*(s.D+1) + 2*attnWarps*s.D) }
func (s attnShape) dkvShm() int { return 4 * (2*attnTile*(s.D+1) + 2*attnWarps*s.D + 2*attnTile) }

// segs uploads the optional segment ids (0, 0 when unused).
func segs(op *op, o *tensor.AttentionOpts) (devptr, devptr) {
	if o.QSeg == nil {
		return 0, 0
	}
	return op.ints(o.QSeg), op.ints(o.KSeg)
}

func (b *Backend) Attention(out, lse, q, k, v *tensor.Tensor, o *tensor.AttentionOpts) {
	s := attnCheck(q, k, v, out, lse, o)
	if s.B == 0 || s.T == 0 || s.H == 0 {
		return
	}
	if !b.run(func(op *op) {
		if s.dense(b.attnBudget) {
			b.attentionDense(op, s, o, out, lse, q, k, v)
			return
		}
		if s.dl < 0 || s.fwdShm() > b.maxShm {
			op.fail(errDeclined)
			return
		}
		qs, ks := segs(op, o)
		op.launch(b.k.attnFwd[s.dl], [3]uint32{uint32((s.T + attnWarps - 1) / attnWarps), uint32(s.H), uint32(s.B)}, 32*attnWarps, s.fwdShm(),
			op.out(out), op.out(lse), op.f32(q), op.f32(k), op.f32(v), op.f32(o.PrefixK), op.f32(o.PrefixV), qs, ks,
			int32(s.T), int32(s.S), int32(s.stride), int32(s.H), int32(s.KVH), int32(s.D), int32(s.P), int32(s.offset), s.scale,
			int32(o.Window), o.Softcap)
	}) {
		b.host(func() { b.cpu.Attention(out, lse, q, k, v, o) }, out, lse, q, k, v, o)
	}
}

func (b *Backend) AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse *tensor.Tensor, o *tensor.AttentionOpts) {
	s := attnCheck(q, k, v, out, lse, o)
	if s.B == 0 || s.T == 0 || s.H == 0 {
		return
	}
	mustSame("AttentionBackward", dout, q)
	if dq != nil {
		mustSame("AttentionBackward", dq, q)
	}
	if dk != nil {
		mustSame("AttentionBackward", dk, k)
	}
	if dv != nil {
		mustSame("AttentionBackward", dv, v)
	}
	prefixGrad := s.P > 0 && o.DPrefixK != nil
	if prefixGrad && (o.DPrefixK.Numel() != o.PrefixK.Numel() || o.DPrefixV == nil || o.DPrefixV.Numel() != o.PrefixV.Numel()) {
		panic(fmt.Sprintf("cuda.AttentionBackward: prefix gradients for a prefix of %v", o.PrefixK.Shape))
	}
	if !b.run(func(op *op) {
		if s.dense(b.attnBudget) {
			b.attentionDenseBackward(op, s, o, dq, dk, dv, dout, q, k, v, out, lse)
			return
		}
		if s.dl < 0 || s.dqShm() > b.maxShm || s.dkvShm() > b.maxShm {
			op.fail(errDeclined)
			return
		}
		pq, pk, pv, pdo := op.f32(q), op.f32(k), op.f32(v), op.f32(dout)
		ppk, ppv := op.f32(o.PrefixK), op.f32(o.PrefixV)
		pl := op.f32(lse)
		qs, ks := segs(op, o)
		rows := s.B * s.T * s.H
		di := op.tmp(uintptr(4 * rows))
		op.launch(b.k.attnBwdDi, [3]uint32{uint32((rows + attnWarps - 1) / attnWarps), 1, 1}, 32*attnWarps, 0,
			di, pdo, op.f32(out), int32(s.B), int32(s.T), int32(s.H), int32(s.D))
		dims := []any{int32(s.T), int32(s.S), int32(s.stride), int32(s.H), int32(s.KVH), int32(s.D), int32(s.P), int32(s.offset), s.scale,
			int32(o.Window), o.Softcap}
		if dq != nil {
			args := append([]any{op.inout(dq), pdo, pq, pk, pv, ppk, ppv, pl, di, qs, ks}, dims...)
			op.launch(b.k.attnBwdDq[s.dl], [3]uint32{uint32((s.T + attnWarps - 1) / attnWarps), uint32(s.H), uint32(s.B)}, 32*attnWarps, s.dqShm(), args...)
		}
		var pdpk, pdpv devptr
		if prefixGrad {
			pdpk, pdpv = op.inout(o.DPrefixK), op.inout(o.DPrefixV)
		}
		if dk != nil || dv != nil || prefixGrad {
			rowsU := s.P + s.S
			if rowsU == 0 {
				return
			}
			args := append([]any{op.inout(dk), op.inout(dv), pdpk, pdpv, pdo, pq, pk, pv, ppk, ppv, pl, di, qs, ks}, dims...)
			op.launch(b.k.attnBwdDkdv[s.dl], [3]uint32{uint32((rowsU + attnWarps - 1) / attnWarps), uint32(s.KVH), uint32(s.B)}, 32*attnWarps, s.dkvShm(), args...)
		}
	}) {
		b.host(func() { b.cpu.AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse, o) }, dq, dk, dv, dout, q, k, v, out, lse, o)
	}
}

// ---- dense attention: the scores through cuBLAS ----
//
// A training-sized pass (attnDenseMinT queries or more, no prefix) forms
// the scores of every (query, key) pair with strided-batched products,
// masks and normalises them row by row (attn_softmax) and multiplies by
// the values with another product; the backward pass recomputes the
// scores and runs four more products around attn_ds. The products run on
// tensor cores (TF32) when SetTF32 or SetBF16 is on, so this path is far
// faster than the per-query kernels above, at the price of two score
// buffers of B·H·T·S floats for the op (scratch, not kept), which
// attnDenseBytes bounds: longer passes go a few sequences at a time, and
// one sequence beyond it goes to the kernels. Decoding steps (few
// queries) keep the kernels.

const (
	attnDenseMinT  = 32
	attnDenseBytes = 1 << 30
)

func (s attnShape) dense(budget int64) bool {
	return s.P == 0 && s.T >= attnDenseMinT && s.S > 0 && s.denseChunk(budget) > 0
}

// denseChunk is how many sequences one round of dense attention takes: as
// many as keep a score buffer within budget bytes (0: not even one).
func (s attnShape) denseChunk(budget int64) int {
	per := 4 * int64(s.H) * int64(s.T) * int64(s.S)
	return int(min(int64(s.B), budget/per))
}

// attnPtrs are the device addresses of one dense attention call's
// tensors (0 for those it lacks), so a round can start at sequence b0.
type attnPtrs struct {
	q, k, v, out, lse, dout, dq, dk, dv, qseg, kseg devptr
}

// from returns p advanced to sequence b0.
func (p attnPtrs) from(s attnShape, b0 int) attnPtrs {
	adv := func(x devptr, elems int) devptr {
		if x == 0 {
			return 0
		}
		return x + devptr(4*b0*elems)
	}
	qn, kn := s.T*s.H*s.D, s.stride*s.KVH*s.D
	return attnPtrs{q: adv(p.q, qn), k: adv(p.k, kn), v: adv(p.v, kn), out: adv(p.out, qn), lse: adv(p.lse, s.H*s.T),
		dout: adv(p.dout, qn), dq: adv(p.dq, qn), dk: adv(p.dk, kn), dv: adv(p.dv, kn),
		qseg: adv(p.qseg, s.T), kseg: adv(p.kseg, s.stride)}
}

// attnCall is one strided-batched product's first item: element offsets
// into a (B, T, H, D) query-like tensor, a (B, stride, KVH, D) key-like one
// and a (B, H, T, S) score buffer.
type attnCall struct{ q, k, s int }

// denseCalls lays the (b, h) pairs out as few batched calls: one per
// (b, head within the group) batching the KV heads, or one per head
// batching the sequences, whichever makes fewer calls. It returns the
// calls, each operand's stride from one batch item to the next, and the
// batch size.
func (s attnShape) denseCalls(dst []attnCall) (calls []attnCall, qs, ks, ss, count int) {
	g := s.H / s.KVH
	qOff := func(b, h int) int { return (b*s.T*s.H + h) * s.D }
	kOff := func(b, kh int) int { return (b*s.stride*s.KVH + kh) * s.D }
	sOff := func(b, h int) int { return (b*s.H + h) * s.T * s.S }
	calls = dst[:0]
	if s.B*g <= s.H {
		for b := 0; b < s.B; b++ {
			for hh := 0; hh < g; hh++ {
				calls = append(calls, attnCall{qOff(b, hh), kOff(b, 0), sOff(b, hh)})
			}
		}
		return calls, g * s.D, s.D, g * s.T * s.S, s.KVH
	}
	for h := 0; h < s.H; h++ {
		calls = append(calls, attnCall{qOff(0, h), kOff(0, h/g), sOff(0, h)})
	}
	return calls, s.T * s.H * s.D, s.stride * s.KVH * s.D, s.H * s.T * s.S, s.B
}

// sbmm queues count products C = alpha·op(A)·op(B) + beta·C (cuBLAS's
// column-major terms; strides in elements) on the op's stream.
func (b *Backend) sbmm(op *op, ta, tb int32, m, n, k int, alpha float32, A devptr, lda, sa int, B devptr, ldb, sb int,
	beta float32, C devptr, ldc, sc, count int) {
	if op.err != nil {
		return
	}
	b.attnAlpha, b.attnBeta = alpha, beta
	var st int32
	if b.prof != nil {
		var ps int32 // declared here: only a profiled product captures it
		b.timed(fmt.Sprintf("attention gemm %dx%dx%d x%d", m, n, k, count), func() {
			ps = b.blas.sgemmSB(b.handle, ta, tb, int32(m), int32(n), int32(k), &b.attnAlpha, A, int32(lda), int64(sa),
				B, int32(ldb), int64(sb), &b.attnBeta, C, int32(ldc), int64(sc), int32(count))
		})
		st = ps
	} else {
		st = b.blas.sgemmSB(b.handle, ta, tb, int32(m), int32(n), int32(k), &b.attnAlpha, A, int32(lda), int64(sa),
			B, int32(ldb), int64(sb), &b.attnBeta, C, int32(ldc), int64(sc), int32(count))
	}
	if st != 0 {
		op.fail(fmt.Errorf("cublasSgemmStridedBatched (%d, %d, %d, batch %d): %s", m, n, k, count, cublasError(st)))
	}
}

// attnMath puts the attention products on TF32 tensor cores when MatMul
// uses reduced precision (TF32 or bf16) and returns the restore.
func (b *Backend) attnMath() func() {
	if !b.bf16 || b.tf32 {
		return func() {}
	}
	if b.blas.setMathMode(b.handle, cublasTF32TensorOp) != 0 {
		return func() {}
	}
	return func() { b.blas.setMathMode(b.handle, cublasDefaultMath) }
}

// scores queues sc = scale·x·yᵀ for every (b, h): x query-like (q or
// dout), y key-like (k or v).
func (b *Backend) scores(op *op, s attnShape, calls []attnCall, qs, ks, ss, count int, sc, x, y devptr, scale float32) {
	for _, c := range calls {
		b.sbmm(op, cublasOpT, cublasOpN, s.S, s.T, s.D, scale, y+devptr(4*c.k), s.KVH*s.D, ks,
			x+devptr(4*c.q), s.H*s.D, qs, 0, sc+devptr(4*c.s), s.S, ss, count)
	}
}

func (b *Backend) attentionDense(op *op, s attnShape, o *tensor.AttentionOpts, out, lse, q, k, v *tensor.Tensor) {
	defer b.attnMath()()
	p := attnPtrs{q: op.f32(q), k: op.f32(k), v: op.f32(v), out: op.out(out), lse: op.out(lse)}
	p.qseg, p.kseg = segs(op, o)
	n := s.denseChunk(b.attnBudget)
	sc := op.tmp(uintptr(4 * n * s.H * s.T * s.S))
	for b0 := 0; b0 < s.B; b0 += n {
		c := s
		c.B = min(n, s.B-b0)
		b.attentionDenseRound(op, c, o, p.from(s, b0), sc)
	}
}

// attentionDenseRound is the forward pass of sequences b0 .. b0+s.B-1 (p
// starts at b0) with the score buffer sc.
func (b *Backend) attentionDenseRound(op *op, s attnShape, o *tensor.AttentionOpts, p attnPtrs, sc devptr) {
	calls, qs, ks, ss, count := s.denseCalls(b.attnCalls)
	b.attnCalls = calls
	rows := s.B * s.H * s.T
	b.scores(op, s, calls, qs, ks, ss, count, sc, p.q, p.k, s.scale)
	op.launch(b.k.attnSoftmax, [3]uint32{uint32(rows), 1, 1}, 256, 0,
		sc, p.lse, p.qseg, p.kseg, int32(s.T), int32(s.S), int32(s.stride), int32(s.H), int32(s.offset), int32(o.Window), o.Softcap)
	for _, c := range calls {
		b.sbmm(op, cublasOpN, cublasOpN, s.D, s.T, s.S, 1, p.v+devptr(4*c.k), s.KVH*s.D, ks,
			sc+devptr(4*c.s), s.S, ss, 0, p.out+devptr(4*c.q), s.H*s.D, qs, count)
	}
}

func (b *Backend) attentionDenseBackward(op *op, s attnShape, o *tensor.AttentionOpts, dq, dk, dv, dout, q, k, v, out, lse *tensor.Tensor) {
	defer b.attnMath()()
	p := attnPtrs{q: op.f32(q), k: op.f32(k), v: op.f32(v), lse: op.f32(lse), dout: op.f32(dout)}
	if dq != nil {
		p.dq = op.inout(dq)
	}
	if dk != nil {
		p.dk = op.inout(dk)
	}
	if dv != nil {
		p.dv = op.inout(dv)
	}
	p.qseg, p.kseg = segs(op, o)
	rows := s.B * s.H * s.T
	di := op.tmp(uintptr(4 * rows))
	op.launch(b.k.attnBwdDi, [3]uint32{uint32((rows + attnWarps - 1) / attnWarps), 1, 1}, 32*attnWarps, 0,
		di, p.dout, op.f32(out), int32(s.B), int32(s.T), int32(s.H), int32(s.D))
	n := s.denseChunk(b.attnBudget)
	sc, dp := op.tmp(uintptr(4*n*s.H*s.T*s.S)), op.tmp(uintptr(4*n*s.H*s.T*s.S))
	for b0 := 0; b0 < s.B; b0 += n {
		c := s
		c.B = min(n, s.B-b0)
		b.attentionDenseBackwardRound(op, c, o, p.from(s, b0), di+devptr(4*b0*s.H*s.T), sc, dp)
	}
}

// attentionDenseBackwardRound is the backward pass of one round (see
// attentionDenseRound); di starts at the round's first row.
func (b *Backend) attentionDenseBackwardRound(op *op, s attnShape, o *tensor.AttentionOpts, p attnPtrs, di, sc, dp devptr) {
	calls, qs, ks, ss, count := s.denseCalls(b.attnCalls)
	b.attnCalls = calls
	rows := s.B * s.H * s.T
	b.scores(op, s, calls, qs, ks, ss, count, sc, p.q, p.k, s.scale)
	b.scores(op, s, calls, qs, ks, ss, count, dp, p.dout, p.v, 1)
	op.launch(b.k.attnDS, [3]uint32{uint32(rows), 1, 1}, 256, 0,
		sc, dp, p.lse, di, p.qseg, p.kseg, int32(s.T), int32(s.S), int32(s.stride), int32(s.H), int32(s.offset), int32(o.Window), o.Softcap, s.scale)
	// key-like gradients: dv += pᵀ·dout, dk += dsᵀ·q (summed over the
	// heads of a group, call after call).
	kgrad := func(pd, w, x devptr) {
		for _, c := range calls {
			b.sbmm(op, cublasOpN, cublasOpT, s.D, s.S, s.T, 1, x+devptr(4*c.q), s.H*s.D, qs,
				w+devptr(4*c.s), s.S, ss, 1, pd+devptr(4*c.k), s.KVH*s.D, ks, count)
		}
	}
	if p.dv != 0 {
		kgrad(p.dv, sc, p.dout)
	}
	if p.dk != 0 {
		kgrad(p.dk, dp, p.q)
	}
	if p.dq != 0 {
		for _, c := range calls {
			b.sbmm(op, cublasOpN, cublasOpN, s.D, s.T, s.S, 1, p.k+devptr(4*c.k), s.KVH*s.D, ks,
				dp+devptr(4*c.s), s.S, ss, 1, p.dq+devptr(4*c.q), s.H*s.D, qs, count)
		}
	}
}
