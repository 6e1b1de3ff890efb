package tensor

import (
	"fmt"
	"math"
)

// rowChunk is the fixed number of rows whose partial sums one piece of a
// cross-row reduction computes; fixed so results never depend on Threads.
const rowChunk = 64

func mustSame(op string, a, b *Tensor) {
	if a.Numel() != b.Numel() {
		panic(fmt.Sprintf("tensor.%s: %v vs %v", op, a.Shape, b.Shape))
	}
}

// widen returns the F32 view of a small parameter (norm weights, biases):
// the slice itself when F32, else a widened copy.
func widen(t *Tensor) []float32 {
	if t == nil {
		return nil
	}
	if t.DType == F32 {
		return t.F32
	}
	return t.Float32s()
}

// reduceRows runs part(lo, hi, acc) over fixed chunks of n rows, each
// chunk into its own accumulator of width w, then sums the chunk
// accumulators in order into dst (dst += Σ chunks).
func (c *CPU) reduceRows(dst []float32, n, w int, part func(lo, hi int, acc []float32)) {
	chunks := (n + rowChunk - 1) / rowChunk
	if chunks <= 1 {
		acc := make([]float32, w)
		part(0, n, acc)
		for i, v := range acc {
			dst[i] += v
		}
		return
	}
	accs := make([]float32, chunks*w)
	c.parallel(chunks, 1, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			part(ch*rowChunk, min((ch+1)*rowChunk, n), accs[ch*w:(ch+1)*w])
		}
	})
	for ch := 0; ch < chunks; ch++ {
		for i, v := range accs[ch*w : (ch+1)*w] {
			dst[i] += v
		}
	}
}

func (c *CPU) Embedding(dst *Tensor, ids []int32, table *Tensor) {
	C := table.Cols()
	if dst.Numel() != len(ids)*C {
		panic(fmt.Sprintf("tensor.Embedding: dst %v for %d ids of width %d", dst.Shape, len(ids), C))
	}
	V := table.Rows()
	c.parallel(len(ids), 64, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			id := int(ids[i])
			if id < 0 || id >= V {
				panic(fmt.Sprintf("tensor.Embedding: id %d outside table of %d rows", id, V))
			}
			WidenRow(dst.F32[i*C:(i+1)*C], table, id*C)
		}
	})
}

func (c *CPU) EmbeddingBackward(dtable *Tensor, ids []int32, dy *Tensor) {
	C := dtable.Cols()
	// Parallel over column blocks: each worker owns columns, rows in order.
	c.parallel(C, 64, func(lo, hi int) {
		for i, id := range ids {
			dst := dtable.F32[int(id)*C+lo : int(id)*C+hi]
			src := dy.F32[i*C+lo : i*C+hi]
			for j := range dst {
				dst[j] += src[j]
			}
		}
	})
}

func (c *CPU) LayerNorm(dst, mean, rstd, x, w, b *Tensor, eps float32) {
	N, C := x.Rows(), x.Cols()
	wv, bv := widen(w), widen(b)
	c.parallel(N, 16, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr := x.F32[r*C : (r+1)*C]
			var s float32
			for _, v := range xr {
				s += v
			}
			m := s / float32(C)
			var vs float32
			for _, v := range xr {
				d := v - m
				vs += d * d
			}
			rs := float32(1 / math.Sqrt(float64(vs/float32(C)+eps)))
			mean.F32[r], rstd.F32[r] = m, rs
			out := dst.F32[r*C : (r+1)*C]
			for i, v := range xr {
				o := (v - m) * rs * wv[i]
				if bv != nil {
					o += bv[i]
				}
				out[i] = o
			}
		}
	})
}

func (c *CPU) LayerNormBackward(dx, dw, db, dy, x, w, mean, rstd *Tensor) {
	N, C := x.Rows(), x.Cols()
	wv := widen(w)
	c.parallel(N, 16, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, dyr, dxr := x.F32[r*C:(r+1)*C], dy.F32[r*C:(r+1)*C], dx.F32[r*C:(r+1)*C]
			m, rs := mean.F32[r], rstd.F32[r]
			var dnm, dnx float32
			for i := range xr {
				n := (xr[i] - m) * rs
				d := wv[i] * dyr[i]
				dnm += d
				dnx += d * n
			}
			dnm /= float32(C)
			dnx /= float32(C)
			for i := range xr {
				n := (xr[i] - m) * rs
				dxr[i] += (wv[i]*dyr[i] - dnm - n*dnx) * rs
			}
		}
	})
	if dw != nil || db != nil {
		w2 := 2 * C
		acc := make([]float32, w2)
		c.reduceRows(acc, N, w2, func(lo, hi int, a []float32) {
			for r := lo; r < hi; r++ {
				xr, dyr := x.F32[r*C:(r+1)*C], dy.F32[r*C:(r+1)*C]
				m, rs := mean.F32[r], rstd.F32[r]
				for i := range xr {
					a[i] += (xr[i] - m) * rs * dyr[i]
					a[C+i] += dyr[i]
				}
			}
		})
		if dw != nil {
			for i := 0; i < C; i++ {
				dw.F32[i] += acc[i]
			}
		}
		if db != nil {
			for i := 0; i < C; i++ {
				db.F32[i] += acc[C+i]
			}
		}
	}
}

func (c *CPU) RMSNorm(dst, rstd, x, w *Tensor, eps float32) {
	N, C := x.Rows(), x.Cols()
	wv := widen(w)
	c.parallel(N, 16, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr := x.F32[r*C : (r+1)*C]
			var ss float32
			for _, v := range xr {
				ss += v * v
			}
			rs := float32(1 / math.Sqrt(float64(ss/float32(C)+eps)))
			rstd.F32[r] = rs
			out := dst.F32[r*C : (r+1)*C]
			for i, v := range xr {
				out[i] = v * rs * wv[i]
			}
		}
	})
}

func (c *CPU) RMSNormBackward(dx, dw, dy, x, w, rstd *Tensor) {
	N, C := x.Rows(), x.Cols()
	wv := widen(w)
	c.parallel(N, 16, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, dyr, dxr := x.F32[r*C:(r+1)*C], dy.F32[r*C:(r+1)*C], dx.F32[r*C:(r+1)*C]
			rs := rstd.F32[r]
			var dot float32
			for i := range xr {
				dot += dyr[i] * wv[i] * xr[i]
			}
			k := dot * rs * rs * rs / float32(C)
			for i := range xr {
				dxr[i] += dyr[i]*wv[i]*rs - xr[i]*k
			}
		}
	})
	if dw != nil {
		c.reduceRows(dw.F32, N, C, func(lo, hi int, a []float32) {
			for r := lo; r < hi; r++ {
				xr, dyr := x.F32[r*C:(r+1)*C], dy.F32[r*C:(r+1)*C]
				rs := rstd.F32[r]
				for i := range xr {
					a[i] += xr[i] * rs * dyr[i]
				}
			}
		})
	}
}

const geluK = 0.7978845608028654 // sqrt(2/pi)

func (c *CPU) GELU(dst, x *Tensor) {
	mustSame("GELU", dst, x)
	c.parallel(x.Numel(), 4096, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			v := float64(x.F32[i])
			dst.F32[i] = float32(0.5 * v * (1 + math.Tanh(geluK*(v+0.044715*v*v*v))))
		}
	})
}

func (c *CPU) GELUBackward(dx, dy, x *Tensor) {
	c.parallel(x.Numel(), 4096, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			v := float64(x.F32[i])
			u := geluK * (v + 0.044715*v*v*v)
			th := math.Tanh(u)
			du := geluK * (1 + 3*0.044715*v*v)
			g := 0.5*(1+th) + 0.5*v*(1-th*th)*du
			dx.F32[i] += float32(g) * dy.F32[i]
		}
	})
}

func (c *CPU) SwiGLU(dst, gate, up *Tensor) {
	mustSame("SwiGLU", gate, up)
	c.parallel(gate.Numel(), 4096, func(lo, hi int) {
		swiglu(dst.F32[lo:hi], gate.F32[lo:hi], up.F32[lo:hi])
	})
}

// swigluGo is the reference SwiGLU the vector kernel is tested against.
func swigluGo(dst, gate, up []float32) {
	for i, g := range gate[:len(dst)] {
		s := 1 / (1 + expf(-g))
		dst[i] = g * s * up[i]
	}
}

func (c *CPU) SwiGLUBackward(dgate, dup, dy, gate, up *Tensor) {
	c.parallel(gate.Numel(), 4096, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			g, u, d := gate.F32[i], up.F32[i], dy.F32[i]
			s := 1 / (1 + expf(-g))
			dup.F32[i] += d * g * s
			dgate.F32[i] += d * u * s * (1 + g*(1-s))
		}
	})
}

func (c *CPU) CrossEntropy(loss, lse, logits *Tensor, targets []int32) {
	N, V := logits.Rows(), logits.Cols()
	if len(targets) != N {
		panic(fmt.Sprintf("tensor.CrossEntropy: %d targets for %d rows", len(targets), N))
	}
	c.parallel(N, 4, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row := logits.F32[r*V : (r+1)*V]
			mx := row[0]
			for _, v := range row {
				mx = max(mx, v)
			}
			s := float64(expSum(row, mx))
			l := float32(math.Log(s)) + mx
			lse.F32[r] = l
			if y := targets[r]; y >= 0 {
				loss.F32[r] = l - row[y]
			} else {
				loss.F32[r] = 0
			}
		}
	})
}

func (c *CPU) CrossEntropyBackward(dlogits, dloss, logits, lse *Tensor, targets []int32) {
	N, V := logits.Rows(), logits.Cols()
	c.parallel(N, 4, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			y := targets[r]
			if y < 0 {
				continue
			}
			g := dloss.F32[r]
			row, d := logits.F32[r*V:(r+1)*V], dlogits.F32[r*V:(r+1)*V]
			softmaxGrad(d, row, lse.F32[r], g)
			d[y] -= g
		}
	})
}

func (c *CPU) Add(dst, a, b *Tensor) {
	mustSame("Add", a, b)
	c.parallel(a.Numel(), 1<<14, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			dst.F32[i] = a.F32[i] + b.F32[i]
		}
	})
}

func (c *CPU) Mul(dst, a, b *Tensor) {
	mustSame("Mul", a, b)
	c.parallel(a.Numel(), 1<<14, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			dst.F32[i] = a.F32[i] * b.F32[i]
		}
	})
}

func (c *CPU) AddScaled(dst, a *Tensor, s float32) {
	mustSame("AddScaled", dst, a)
	c.parallel(a.Numel(), 1<<14, func(lo, hi int) {
		d, x := dst.F32[lo:hi], a.F32[lo:hi]
		for i := range d {
			d[i] += s * x[i]
		}
	})
}

func (c *CPU) AddBias(dst, x, bias *Tensor) {
	N, C := x.Rows(), x.Cols()
	bv := widen(bias)
	c.parallel(N, 16, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			d, xr := dst.F32[r*C:(r+1)*C], x.F32[r*C:(r+1)*C]
			for i := range d {
				d[i] = xr[i] + bv[i]
			}
		}
	})
}

func (c *CPU) SumRows(dst, x *Tensor) {
	N, C := x.Rows(), x.Cols()
	c.reduceRows(dst.F32, N, C, func(lo, hi int, a []float32) {
		for r := lo; r < hi; r++ {
			for i, v := range x.F32[r*C : (r+1)*C] {
				a[i] += v
			}
		}
	})
}

func (c *CPU) SplitCols(dsts []*Tensor, x *Tensor) {
	N, C := x.Rows(), x.Cols()
	c.parallel(N, 16, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			off := 0
			for _, d := range dsts {
				w := d.Cols()
				copy(d.F32[r*w:(r+1)*w], x.F32[r*C+off:r*C+off+w])
				off += w
			}
		}
	})
}

func (c *CPU) ConcatCols(dst *Tensor, srcs []*Tensor) {
	N, C := dst.Rows(), dst.Cols()
	c.parallel(N, 16, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			off := 0
			for _, s := range srcs {
				w := s.Cols()
				copy(dst.F32[r*C+off:r*C+off+w], s.F32[r*w:(r+1)*w])
				off += w
			}
		}
	})
}

// geluTanh returns gelu_tanh(x) and its derivative (GPT-2's gelu_new and
// HF's gelu_pytorch_tanh are the same function).
func geluTanh(x float32) (y, dy float32) {
	v := float64(x)
	th := math.Tanh(geluK * (v + 0.044715*v*v*v))
	du := geluK * (1 + 3*0.044715*v*v)
	return float32(0.5 * v * (1 + th)), float32(0.5*(1+th) + 0.5*v*(1-th*th)*du)
}

func (c *CPU) GeGLU(dst, gate, up *Tensor) {
	mustSame("GeGLU", gate, up)
	mustSame("GeGLU", dst, gate)
	c.parallel(gate.Numel(), 4096, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			g, _ := geluTanh(gate.F32[i])
			dst.F32[i] = g * up.F32[i]
		}
	})
}

func (c *CPU) GeGLUBackward(dgate, dup, dy, gate, up *Tensor) {
	mustSame("GeGLUBackward", dgate, gate)
	mustSame("GeGLUBackward", dup, up)
	c.parallel(gate.Numel(), 4096, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			g, dg := geluTanh(gate.F32[i])
			d := dy.F32[i]
			dup.F32[i] += d * g
			dgate.F32[i] += d * up.F32[i] * dg
		}
	})
}

func (c *CPU) Softcap(dst, x *Tensor, cp float32) {
	mustSame("Softcap", dst, x)
	c.parallel(x.Numel(), 4096, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			dst.F32[i] = cp * float32(math.Tanh(float64(x.F32[i]/cp)))
		}
	})
}

func (c *CPU) ReLU(dst, x *Tensor) {
	mustSame("ReLU", dst, x)
	c.parallel(x.Numel(), 4096, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			dst.F32[i] = max(x.F32[i], 0)
		}
	})
}

func (c *CPU) ReLUBackward(dx, dy, y *Tensor) {
	mustSame("ReLUBackward", dx, y)
	c.parallel(y.Numel(), 4096, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			if y.F32[i] > 0 {
				dx.F32[i] += dy.F32[i]
			}
		}
	})
}

func (c *CPU) SoftcapBackward(dx, dy, y *Tensor, cp float32) {
	mustSame("SoftcapBackward", dx, y)
	c.parallel(y.Numel(), 4096, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			t := y.F32[i] / cp
			dx.F32[i] += dy.F32[i] * (1 - t*t)
		}
	})
}
