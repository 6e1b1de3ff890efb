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
		if s.dl < 0 || s.fwdShm() > b.maxShm || o.Window > 0 || o.Softcap > 0 { // no kernel for windows or caps yet
			op.fail(errDeclined)
			return
		}
		qs, ks := segs(op, o)
		op.launch(b.k.attnFwd[s.dl], [3]uint32{uint32((s.T + attnWarps - 1) / attnWarps), uint32(s.H), uint32(s.B)}, 32*attnWarps, s.fwdShm(),
			op.out(out), op.out(lse), op.f32(q), op.f32(k), op.f32(v), op.f32(o.PrefixK), op.f32(o.PrefixV), qs, ks,
			int32(s.T), int32(s.S), int32(s.stride), int32(s.H), int32(s.KVH), int32(s.D), int32(s.P), int32(s.offset), s.scale)
	}) {
		b.cpu.Attention(out, lse, q, k, v, o)
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
		if s.dl < 0 || s.dqShm() > b.maxShm || s.dkvShm() > b.maxShm || o.Window > 0 || o.Softcap > 0 {
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
		dims := []any{int32(s.T), int32(s.S), int32(s.stride), int32(s.H), int32(s.KVH), int32(s.D), int32(s.P), int32(s.offset), s.scale}
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
		b.cpu.AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse, o)
	}
}
