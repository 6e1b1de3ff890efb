package tensor

import (
	"fmt"
	"math"
)

// NewRoPETable precomputes cos/sin for rotate-half RoPE the way HF Llama
// does in float32: inv_freq = 1/theta^(2i/dim), angle = pos*inv_freq.
func NewRoPETable(dim, maxPos int, theta float64) *RoPETable {
	half := dim / 2
	t := &RoPETable{Dim: dim, MaxPos: maxPos, Cos: make([]float32, maxPos*half), Sin: make([]float32, maxPos*half)}
	for i := 0; i < half; i++ {
		inv := float32(1 / math.Pow(theta, float64(float32(2*i)/float32(dim))))
		for p := 0; p < maxPos; p++ {
			ang := float32(p) * inv
			t.Cos[p*half+i] = float32(math.Cos(float64(ang)))
			t.Sin[p*half+i] = float32(math.Sin(float64(ang)))
		}
	}
	return t
}

func (c *CPU) rope(dst, x *Tensor, pos []int32, tab *RoPETable, sign float32, acc bool) {
	D := tab.Dim
	half := D / 2
	N := len(pos)
	H := x.Numel() / (N * D)
	if H*N*D != x.Numel() {
		panic(fmt.Sprintf("tensor.RoPE: x %v is not (%d, H, %d)", x.Shape, N, D))
	}
	c.parallel(N, 8, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			p := int(pos[n])
			if p < 0 || p >= tab.MaxPos {
				panic(fmt.Sprintf("tensor.RoPE: position %d outside table of %d", p, tab.MaxPos))
			}
			cs, sn := tab.Cos[p*half:(p+1)*half], tab.Sin[p*half:(p+1)*half]
			for h := 0; h < H; h++ {
				off := (n*H + h) * D
				xr, dr := x.F32[off:off+D], dst.F32[off:off+D]
				for i := 0; i < half; i++ {
					a, b := xr[i], xr[i+half]
					s := sign * sn[i]
					o1 := a*cs[i] - b*s
					o2 := b*cs[i] + a*s
					if acc {
						dr[i] += o1
						dr[i+half] += o2
					} else {
						dr[i], dr[i+half] = o1, o2
					}
				}
			}
		}
	})
}

func (c *CPU) RoPE(dst, x *Tensor, pos []int32, tab *RoPETable) { c.rope(dst, x, pos, tab, 1, false) }

// RoPEBackward adds the inverse rotation (the transpose) of dy into dx.
func (c *CPU) RoPEBackward(dx, dy *Tensor, pos []int32, tab *RoPETable) {
	c.rope(dx, dy, pos, tab, -1, true)
}

// Dims resolves o's defaults: the key stride (KStride, or Keys), the
// prefix length P (rows of PrefixK per KV head, 0 without one) and the
// scale (Scale, or 1/sqrt(D)), with the sizes as given.
func (o *AttentionOpts) Dims() (B, H, KVH, D, T, S, stride, P int, scale float32) {
	B, H, KVH, D, T, S = o.Batch, o.Heads, o.KVHeads, o.HeadDim, o.Queries, o.Keys
	stride = o.KStride
	if stride == 0 {
		stride = S
	}
	if o.PrefixK != nil {
		P = o.PrefixK.Numel() / (KVH * D)
	}
	scale = o.Scale
	if scale == 0 {
		scale = float32(1 / math.Sqrt(float64(D)))
	}
	return
}

// visible reports whether query i of sequence b sees key j.
func (o *AttentionOpts) visible(b, i, j, T, stride int) bool {
	if j > o.Offset+i || o.Window > 0 && o.Offset+i-j >= o.Window {
		return false
	}
	if o.QSeg != nil && o.QSeg[b*T+i] != o.KSeg[b*stride+j] {
		return false
	}
	return true
}

// keyRows returns, for query i of sequence b, the prefix and key rows it
// sees, as offsets into the prefix (kh*P+j)*D and k ((b*stride+j)*KVH+kh)*D,
// appended to idx (prefix entries are encoded as -1-j).
func (o *AttentionOpts) keyRows(idx []int32, b, i, T, S, stride, P int) []int32 {
	idx = idx[:0]
	for j := 0; j < P; j++ {
		idx = append(idx, int32(-1-j))
	}
	last := min(S-1, o.Offset+i)
	first := 0
	if o.Window > 0 {
		first = max(0, o.Offset+i-o.Window+1)
	}
	for j := first; j <= last; j++ {
		if o.QSeg != nil && o.QSeg[b*T+i] != o.KSeg[b*stride+j] {
			continue
		}
		idx = append(idx, int32(j))
	}
	return idx
}

// Attention computes, per (sequence, head, query), the scores against the
// visible keys, a softmax and the weighted sum of values: eight queries or
// more in tiles on the GEMM's micro-kernel (attn_tiled.go), fewer one row
// at a time. Nothing of size T×S is materialised.
func (c *CPU) Attention(out, lse, q, k, v *Tensor, o *AttentionOpts) {
	if o.Queries >= attnTiledMin {
		c.attentionTiled(gemmKernels(), out, lse, q, k, v, o)
		return
	}
	c.attentionRows(out, lse, q, k, v, o)
}

// attentionRows is Attention one query at a time: decoding, where K and V
// stream from memory once per head.
func (c *CPU) attentionRows(out, lse, q, k, v *Tensor, o *AttentionOpts) {
	B, H, KVH, D, T, S, stride, P, scale := o.Dims()
	g := H / KVH
	c.parallel(B*H, 1, func(lo, hi int) {
		sp := scratch(S + P)
		defer scratchPool.Put(sp)
		sc := *sp
		idx := make([]int32, 0, S+P)
		for bh := lo; bh < hi; bh++ {
			b, h := bh/H, bh%H
			kh := h / g
			for i := 0; i < T; i++ {
				qi := q.F32[((b*T+i)*H+h)*D:][:D]
				oi := out.F32[((b*T+i)*H+h)*D:][:D]
				idx = o.keyRows(idx, b, i, T, S, stride, P)
				if len(idx) == 0 {
					clear(oi)
					lse.F32[(b*H+h)*T+i] = float32(math.Inf(-1))
					continue
				}
				m := float32(math.Inf(-1))
				for n, j := range idx {
					var kr []float32
					if j < 0 {
						kr = o.PrefixK.F32[(kh*P+int(-1-j))*D:][:D]
					} else {
						kr = k.F32[((b*stride+int(j))*KVH+kh)*D:][:D]
					}
					s := dotAsm(qi, kr) * scale
					if o.Softcap > 0 {
						s = o.Softcap * float32(math.Tanh(float64(s/o.Softcap)))
					}
					sc[n] = s
					m = max(m, s)
				}
				l := expStore(sc[:len(idx)], sc[:len(idx)], m)
				clear(oi)
				inv := 1 / l
				for n, j := range idx {
					var vr []float32
					if j < 0 {
						vr = o.PrefixV.F32[(kh*P+int(-1-j))*D:][:D]
					} else {
						vr = v.F32[((b*stride+int(j))*KVH+kh)*D:][:D]
					}
					axpyAsm(oi, vr, sc[n]*inv)
				}
				lse.F32[(b*H+h)*T+i] = m + float32(math.Log(float64(l)))
			}
		}
	})
}

// AttentionBackward recomputes each query's probabilities from q, k and
// lse, then dv += p·dout, ds = p·(dout·v − dout·out), dq += ds·k·scale,
// dk += ds·q·scale. Work is split by (sequence, kv head) so each worker
// owns the dk, dv rows it writes; prefix gradients go to per-worker
// partials summed in a fixed order.
func (c *CPU) AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse *Tensor, o *AttentionOpts) {
	B, H, KVH, D, T, S, stride, P, scale := o.Dims()
	g := H / KVH
	var pk, pv []float32
	if P > 0 && o.DPrefixK != nil {
		pk = make([]float32, B*KVH*P*D)
		pv = make([]float32, B*KVH*P*D)
	}
	c.parallel(B*KVH, 1, func(lo, hi int) {
		idx := make([]int32, 0, S+P)
		for bk := lo; bk < hi; bk++ {
			b, kh := bk/KVH, bk%KVH
			for h := kh * g; h < (kh+1)*g; h++ {
				for i := 0; i < T; i++ {
					l := lse.F32[(b*H+h)*T+i]
					if math.IsInf(float64(l), -1) {
						continue
					}
					qi := q.F32[((b*T+i)*H+h)*D:][:D]
					doi := dout.F32[((b*T+i)*H+h)*D:][:D]
					oi := out.F32[((b*T+i)*H+h)*D:][:D]
					var dqi []float32
					if dq != nil {
						dqi = dq.F32[((b*T+i)*H+h)*D:][:D]
					}
					di := dotAsm(doi, oi)
					idx = o.keyRows(idx, b, i, T, S, stride, P)
					for _, j := range idx {
						var kr, vr, dkr, dvr []float32
						if j < 0 {
							jj := int(-1 - j)
							kr, vr = o.PrefixK.F32[(kh*P+jj)*D:][:D], o.PrefixV.F32[(kh*P+jj)*D:][:D]
							if pk != nil {
								dkr, dvr = pk[((b*KVH+kh)*P+jj)*D:][:D], pv[((b*KVH+kh)*P+jj)*D:][:D]
							}
						} else {
							off := ((b*stride+int(j))*KVH + kh) * D
							kr, vr = k.F32[off:][:D], v.F32[off:][:D]
							if dk != nil {
								dkr = dk.F32[off:][:D]
							}
							if dv != nil {
								dvr = dv.F32[off:][:D]
							}
						}
						s, dcap := dotAsm(qi, kr)*scale, float32(1)
						if o.Softcap > 0 {
							th := float32(math.Tanh(float64(s / o.Softcap)))
							s, dcap = o.Softcap*th, 1-th*th
						}
						p := expf(s - l)
						if dvr != nil {
							axpyAsm(dvr, doi, p)
						}
						ds := p * (dotAsm(doi, vr) - di) * dcap * scale
						if dqi != nil {
							axpyAsm(dqi, kr, ds)
						}
						if dkr != nil {
							axpyAsm(dkr, qi, ds)
						}
					}
				}
			}
		}
	})
	if pk != nil {
		for b := 0; b < B; b++ {
			for kh := 0; kh < KVH; kh++ {
				axpy(o.DPrefixK.F32[kh*P*D:][:P*D], pk[(b*KVH+kh)*P*D:][:P*D], 1)
				axpy(o.DPrefixV.F32[kh*P*D:][:P*D], pv[(b*KVH+kh)*P*D:][:P*D], 1)
			}
		}
	}
}

func (c *CPU) AdamW(p, g, m, v *Tensor, o AdamWOpts) {
	bc1 := 1 - math.Pow(float64(o.Beta1), float64(o.Step))
	bc2 := 1 - math.Pow(float64(o.Beta2), float64(o.Step))
	decay := float32(1 - float64(o.LR)*float64(o.WeightDecay))
	stepSize := float32(float64(o.LR) / bc1)
	bc2s := float32(math.Sqrt(bc2))
	b1, b2 := o.Beta1, o.Beta2
	c.parallel(p.Numel(), 1<<14, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			gi := g.F32[i]
			p.F32[i] *= decay
			m.F32[i] = b1*m.F32[i] + (1-b1)*gi
			v.F32[i] = b2*v.F32[i] + (1-b2)*gi*gi
			den := float32(math.Sqrt(float64(v.F32[i])))/bc2s + o.Eps
			p.F32[i] -= stepSize * m.F32[i] / den
		}
	})
}

func (c *CPU) SumSquares(x *Tensor) float64 {
	n := x.Numel()
	const chunk = 1 << 14
	parts := make([]float64, (n+chunk-1)/chunk)
	c.parallel(len(parts), 1, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			var s float64
			for _, v := range x.F32[ch*chunk : min((ch+1)*chunk, n)] {
				s += float64(v) * float64(v)
			}
			parts[ch] = s
		}
	})
	var s float64
	for _, p := range parts {
		s += p
	}
	return s
}

// NewRoPETableFreqs builds a table from given inverse frequencies (dim/2),
// with cos and sin multiplied by scale (scaled RoPE's attention factor):
// Cos[p*dim/2+i] = cos(p * inv[i]) * scale.
func NewRoPETableFreqs(dim, maxPos int, inv []float32, scale float32) *RoPETable {
	half := dim / 2
	if len(inv) != half {
		panic(fmt.Sprintf("tensor.NewRoPETableFreqs: %d frequencies for dimension %d", len(inv), dim))
	}
	t := &RoPETable{Dim: dim, MaxPos: maxPos, Cos: make([]float32, maxPos*half), Sin: make([]float32, maxPos*half)}
	for i, f := range inv {
		for p := 0; p < maxPos; p++ {
			ang := float32(p) * f
			t.Cos[p*half+i] = float32(math.Cos(float64(ang))) * scale
			t.Sin[p*half+i] = float32(math.Sin(float64(ang))) * scale
		}
	}
	return t
}
