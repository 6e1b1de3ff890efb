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

func (o *AttentionOpts) dims() (B, H, KVH, D, T, S, stride, P int, scale float32) {
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
	if j > o.Offset+i {
		return false
	}
	if o.QSeg != nil && o.QSeg[b*T+i] != o.KSeg[b*stride+j] {
		return false
	}
	return true
}

func (c *CPU) Attention(out, lse, q, k, v *Tensor, o *AttentionOpts) {
	B, H, KVH, D, T, S, stride, P, scale := o.dims()
	g := H / KVH
	c.parallel(B*H, 1, func(lo, hi int) {
		acc := make([]float32, D)
		for bh := lo; bh < hi; bh++ {
			b, h := bh/H, bh%H
			kh := h / g
			for i := 0; i < T; i++ {
				qi := q.F32[((b*T+i)*H+h)*D:][:D]
				m := float32(math.Inf(-1))
				var l float32
				clear(acc)
				add := func(kr, vr []float32) {
					s := dot(qi, kr) * scale
					if s > m {
						corr := float32(math.Exp(float64(m - s)))
						l *= corr
						for d := range acc {
							acc[d] *= corr
						}
						m = s
					}
					p := float32(math.Exp(float64(s - m)))
					l += p
					axpy(acc, vr, p)
				}
				for j := 0; j < P; j++ {
					add(o.PrefixK.F32[(kh*P+j)*D:][:D], o.PrefixV.F32[(kh*P+j)*D:][:D])
				}
				for j := 0; j < S; j++ {
					if !o.visible(b, i, j, T, stride) {
						continue
					}
					add(k.F32[((b*stride+j)*KVH+kh)*D:][:D], v.F32[((b*stride+j)*KVH+kh)*D:][:D])
				}
				oi := out.F32[((b*T+i)*H+h)*D:][:D]
				if l == 0 {
					clear(oi)
					lse.F32[(b*H+h)*T+i] = float32(math.Inf(-1))
					continue
				}
				inv := 1 / l
				for d := range oi {
					oi[d] = acc[d] * inv
				}
				lse.F32[(b*H+h)*T+i] = m + float32(math.Log(float64(l)))
			}
		}
	})
}

func (c *CPU) AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse *Tensor, o *AttentionOpts) {
	B, H, KVH, D, T, S, stride, P, scale := o.dims()
	g := H / KVH
	var pk, pv []float32 // per-(b,kvh) prefix gradient partials
	if P > 0 && o.DPrefixK != nil {
		pk = make([]float32, B*KVH*P*D)
		pv = make([]float32, B*KVH*P*D)
	}
	c.parallel(B*KVH, 1, func(lo, hi int) {
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
					dqi := dq.F32[((b*T+i)*H+h)*D:][:D]
					di := dot(doi, oi)
					visit := func(kr, vr, dkr, dvr []float32) {
						p := float32(math.Exp(float64(dot(qi, kr)*scale - l)))
						if dvr != nil {
							axpy(dvr, doi, p)
						}
						ds := p * (dot(doi, vr) - di) * scale
						axpy(dqi, kr, ds)
						if dkr != nil {
							axpy(dkr, qi, ds)
						}
					}
					for j := 0; j < P; j++ {
						var dkr, dvr []float32
						if pk != nil {
							dkr = pk[((b*KVH+kh)*P+j)*D:][:D]
							dvr = pv[((b*KVH+kh)*P+j)*D:][:D]
						}
						visit(o.PrefixK.F32[(kh*P+j)*D:][:D], o.PrefixV.F32[(kh*P+j)*D:][:D], dkr, dvr)
					}
					for j := 0; j < S; j++ {
						if !o.visible(b, i, j, T, stride) {
							continue
						}
						off := ((b*stride+j)*KVH + kh) * D
						var dkr, dvr []float32
						if dk != nil {
							dkr, dvr = dk.F32[off:][:D], dv.F32[off:][:D]
						}
						visit(k.F32[off:][:D], v.F32[off:][:D], dkr, dvr)
					}
				}
			}
		}
	})
	if pk != nil {
		for b := 0; b < B; b++ {
			for kh := 0; kh < KVH; kh++ {
				src := pk[(b*KVH+kh)*P*D:][:P*D]
				axpy(o.DPrefixK.F32[kh*P*D:][:P*D], src, 1)
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
