package model

import (
	"llmlab/core/autograd"
	"llmlab/core/tensor"
)

// A windowed layer's cache is a ring of W = Cache.Window slots: the token
// with overall index n (counting every token the cache has taken) lives in
// slot n mod W. A query at position p sees keys p-W+1..p, so W slots are
// all a layer ever needs, the query's own key included.
//
// Decoding one token, the new key goes into its slot first; the query then
// sees every filled slot, and since a softmax does not depend on the order
// of its keys, the ring is read in place, unmasked (but for segments).
// A chunk of several tokens needs the causal, windowed mask in order: the
// last W-1 cached keys are copied, oldest first, in front of the chunk's
// own, attention runs on that (at most W-1+T rows), and the chunk's last W
// keys are then stored.
//
// Every row of the batch shares Cache.Len (rows are left-padded, as
// core/generate lays them out), so all rows use the same slot; a decoder
// whose rows advance independently would need a position per row here.

// ringSegments updates the slots' segment ids for this call and returns
// the key segments the windowed layers attend with (nil without
// segments). It runs once per forward pass, before the layers.
func (kc *Cache) ringSegments(in Inputs) []int32 {
	if in.Seg == nil {
		return nil
	}
	W, B, T, past := kc.Window, in.B, in.T, kc.Len
	if T == 1 {
		for b := 0; b < B; b++ {
			kc.RingSeg[b*W+past%W] = in.Seg[b]
		}
		return kc.RingSeg
	}
	n := min(past, W-1)
	S := n + T
	ks := make([]int32, B*S)
	for b := 0; b < B; b++ {
		for j := 0; j < n; j++ {
			ks[b*S+j] = kc.RingSeg[b*W+(past-n+j)%W]
		}
		copy(ks[b*S+n:], in.Seg[b*T:(b+1)*T])
		for i := max(0, T-W); i < T; i++ {
			kc.RingSeg[b*W+(past+i)%W] = in.Seg[b*T+i]
		}
	}
	return ks
}

// ringKV stores the new keys and values k, v (B*T, KVH*D) of windowed
// layer l and returns what attention reads, (B, rows, KVH, D) each, with
// opts set for it (keys, stride, offset, window and key segments).
func (kc *Cache) ringKV(t *autograd.Tape, l int, k, v *tensor.Tensor, in Inputs, kseg []int32, opts *tensor.AttentionOpts) (*tensor.Tensor, *tensor.Tensor) {
	W, B, T, past := kc.Window, in.B, in.T, kc.Len
	kr, vr := kc.K[l], kc.V[l] // (B, W, KVH, D)
	w := k.Numel() / (B * T)   // KVH*D
	if T == 1 {
		slot := past % W
		storeRows(kr, k, B, 1, slot, W)
		storeRows(vr, v, B, 1, slot, W)
		n := min(past+1, W)
		opts.Keys, opts.KStride, opts.Offset, opts.Window = n, W, n-1, 0
		if kseg != nil {
			opts.QSeg, opts.KSeg = in.Seg, kseg
		}
		return kr, vr
	}
	n := min(past, W-1)
	S := n + T
	tk, tv := t.Alloc(B, S, kr.Shape[2], kr.Shape[3]), t.Alloc(B, S, vr.Shape[2], vr.Shape[3])
	if sameMemory(tk, tv, kr, vr, k, v) {
		// Strided copies, all rows of the batch at once, wherever the
		// tensors live: the last n ring slots (oldest first, in at most
		// two runs around the ring's end), then the chunk; then the
		// chunk's last keys into their slots.
		for _, p := range [2][3]*tensor.Tensor{{tk, kr, k}, {tv, vr, v}} {
			dst, ring, src := p[0].Reshape(B, S*w), p[1].Reshape(B, W*w), p[2].Reshape(B, T*w)
			if n > 0 {
				first := ((past-n)%W + W) % W
				run := min(n, W-first)
				tensor.CopyCols(dst, 0, ring, first*w, run*w)
				if run < n {
					tensor.CopyCols(dst, run*w, ring, 0, (n-run)*w)
				}
			}
			tensor.CopyCols(dst, n*w, src, 0, T*w)
			i0 := max(0, T-W)
			slot := (past + i0) % W
			run := min(T-i0, W-slot)
			tensor.CopyCols(ring, slot*w, src, i0*w, run*w)
			if i0+run < T {
				tensor.CopyCols(ring, 0, src, (i0+run)*w, (T-i0-run)*w)
			}
		}
		opts.Keys, opts.KStride, opts.Offset, opts.Window = S, S, n, W
		if kseg != nil {
			opts.QSeg, opts.KSeg = in.Seg, kseg
		}
		return tk, tv
	}
	// Row copies on the host, for a cache the device could not hold while
	// the step's tensors are there: OnHost copies the tensors down and
	// back (correct, slow; a prefill of a windowed layer only).
	tensor.OnHost(func() {
		for b := 0; b < B; b++ {
			for j := 0; j < n; j++ {
				src := (b*W + (past-n+j)%W) * w
				dst := (b*S + j) * w
				copy(tk.F32[dst:dst+w], kr.F32[src:src+w])
				copy(tv.F32[dst:dst+w], vr.F32[src:src+w])
			}
			copy(tk.F32[(b*S+n)*w:(b*S+S)*w], k.F32[b*T*w:(b+1)*T*w])
			copy(tv.F32[(b*S+n)*w:(b*S+S)*w], v.F32[b*T*w:(b+1)*T*w])
			for i := max(0, T-W); i < T; i++ {
				dst, src := (b*W+(past+i)%W)*w, (b*T+i)*w
				copy(kr.F32[dst:dst+w], k.F32[src:src+w])
				copy(vr.F32[dst:dst+w], v.F32[src:src+w])
			}
		}
	}, tk, tv, kr, vr, k, v)
	opts.Keys, opts.KStride, opts.Offset, opts.Window = S, S, n, W
	if kseg != nil {
		opts.QSeg, opts.KSeg = in.Seg, kseg
	}
	return tk, tv
}

// sameMemory reports whether every tensor lives in the same place: all on
// the host or all in one device memory.
func sameMemory(ts ...*tensor.Tensor) bool {
	for _, x := range ts[1:] {
		if x.Dev.Mem != ts[0].Dev.Mem {
			return false
		}
	}
	return true
}
