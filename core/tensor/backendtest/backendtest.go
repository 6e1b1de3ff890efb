// Package backendtest checks a tensor.Backend against the CPU backend, op
// by op, on seeded random inputs: the test every GPU or library backend
// runs (gpu/vulkan on lavapipe in CI, gpu/cuda where a GPU exists).
//
// Each case runs the op on both backends from identical inputs and
// compares every output with tensortest.Close. Backward kernels add into
// their gradient outputs, so those start from random values rather than
// zeros, and accumulation is checked too. Shapes are small but not
// multiples of any tile size, so edge handling is exercised.
package backendtest

import (
	"fmt"
	"math"
	"testing"

	"llmlab/core/tensor"
	"llmlab/core/tensor/tensortest"
)

// Tol is the relative tolerance (to max(1, |want|)) of the comparisons.
// Float32 kernels that sum in a different order differ by a few ulps times
// the length of the sum; 2e-4 leaves room for sums of a few thousand terms.
const Tol = 2e-4

// Run checks every op of b against a single-threaded CPU backend. A
// backend with its own memory (tensor.MemoryOf) is checked twice: with
// host tensors (copied in and out by each op) and, under "Resident", with
// every float32 argument in its device memory.
func Run(t *testing.T, b tensor.Backend) {
	run(t, b)
	if m := tensor.MemoryOf(b); m != nil {
		t.Run("Resident", func(t *testing.T) { run(t, newResident(b, m)) })
	}
}

func run(t *testing.T, b tensor.Backend) {
	ref := tensor.NewCPU(1)
	c := &checker{b: b, ref: ref}
	t.Run("MatMul", c.matmul)
	t.Run("Embedding", c.embedding)
	t.Run("LayerNorm", c.layerNorm)
	t.Run("RMSNorm", c.rmsNorm)
	t.Run("GELU", c.gelu)
	t.Run("SwiGLU", c.swiglu)
	t.Run("GeGLU", c.geglu)
	t.Run("Softcap", c.softcap)
	t.Run("ReLU", c.relu)
	t.Run("RoPE", c.rope)
	t.Run("Attention", c.attention)
	t.Run("CrossEntropy", c.crossEntropy)
	t.Run("Elementwise", c.elementwise)
	t.Run("Columns", c.columns)
	t.Run("AdamW", c.adamw)
	t.Run("SumSquares", c.sumSquares)
}

type checker struct {
	b, ref tensor.Backend
	seed   uint64
}

// rand returns a fresh F32 tensor of random values in [-scale, scale).
func (c *checker) rand(scale float32, shape ...int) *tensor.Tensor {
	c.seed++
	n := tensor.Shape(shape).Numel()
	return tensor.FromF32(tensortest.Rand(c.seed, n, scale), shape...)
}

// pair returns two copies of one random tensor: one for each backend.
func (c *checker) pair(scale float32, shape ...int) (*tensor.Tensor, *tensor.Tensor) {
	x := c.rand(scale, shape...)
	return x, x.Clone()
}

// ids returns n random ids below v.
func (c *checker) ids(n, v int) []int32 {
	r := tensortest.Rand(c.seed+1000, n, 1)
	c.seed++
	out := make([]int32, n)
	for i, x := range r {
		out[i] = int32(math.Abs(float64(x)) * float64(v))
		if out[i] >= int32(v) {
			out[i] = int32(v - 1)
		}
	}
	return out
}

func same(t *testing.T, what string, got, want *tensor.Tensor, tol float64) {
	t.Helper()
	if !got.Shape.Equal(want.Shape) {
		t.Fatalf("%s: shape %v, want %v", what, got.Shape, want.Shape)
	}
	tensortest.Close(t, what, got.F32, want.F32, tol)
}

// weight returns w converted to dt (quantised for Q8 and NF4).
func weight(t *testing.T, w *tensor.Tensor, dt tensor.DType) *tensor.Tensor {
	t.Helper()
	switch dt {
	case tensor.F32:
		return w
	case tensor.Q8, tensor.NF4:
		q, err := tensor.Quantize(w, dt)
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	return w.Convert(dt)
}

func (c *checker) matmul(t *testing.T) {
	type tc struct {
		m, n, k        int
		transA, transB bool
		acc            bool
		batch          int
		dt             tensor.DType
	}
	var cases []tc
	for _, s := range [][3]int{{1, 1, 1}, {7, 5, 3}, {33, 65, 17}, {64, 64, 64}, {130, 97, 200}, {1, 300, 129}} {
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				cases = append(cases, tc{m: s[0], n: s[1], k: s[2], transA: ta, transB: tb, acc: ta != tb})
			}
		}
	}
	cases = append(cases,
		tc{m: 9, n: 11, k: 13, batch: 3},
		tc{m: 9, n: 11, k: 13, batch: 4, transB: true, acc: true},
		tc{m: 16, n: 8, k: 24, batch: 2, transA: true})
	for _, dt := range []tensor.DType{tensor.F16, tensor.BF16, tensor.Q8, tensor.NF4} {
		cases = append(cases, tc{m: 37, n: 70, k: 128, transB: true, dt: dt}, tc{m: 1, n: 70, k: 192, transB: true, dt: dt, acc: true})
	}
	for _, x := range cases {
		name := fmt.Sprintf("%dx%dx%d/ta=%v/tb=%v/acc=%v/batch=%d/%v", x.m, x.n, x.k, x.transA, x.transB, x.acc, x.batch, x.dt)
		t.Run(name, func(t *testing.T) {
			bt := max(x.batch, 1)
			ashape := []int{bt * x.m, x.k}
			if x.transA {
				ashape = []int{bt * x.k, x.m}
			}
			bshape := []int{bt * x.k, x.n}
			if x.transB {
				bshape = []int{bt * x.n, x.k}
			}
			a := c.rand(1, ashape...)
			w := weight(t, c.rand(1, bshape...), x.dt)
			got, want := c.pair(1, bt*x.m, x.n)
			o := tensor.MatMulOpts{TransA: x.transA, TransB: x.transB, Accumulate: x.acc, Batch: x.batch}
			c.b.MatMul(got, a, w, o)
			c.ref.MatMul(want, a, w, o)
			same(t, "dst", got, want, Tol*math.Sqrt(float64(x.k)))
		})
	}
}

func (c *checker) embedding(t *testing.T) {
	for _, dt := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16} {
		t.Run(dt.String(), func(t *testing.T) {
			const V, C, N = 50, 24, 37
			table := weight(t, c.rand(1, V, C), dt)
			ids := c.ids(N, V)
			got, want := tensor.New(N, C), tensor.New(N, C)
			c.b.Embedding(got, ids, table)
			c.ref.Embedding(want, ids, table)
			same(t, "dst", got, want, 0)
		})
	}
	// Backward: repeated ids accumulate.
	const V, C, N = 20, 33, 60
	ids := c.ids(N, V)
	dy := c.rand(1, N, C)
	got, want := c.pair(1, V, C)
	c.b.EmbeddingBackward(got, ids, dy)
	c.ref.EmbeddingBackward(want, ids, dy)
	same(t, "dtable", got, want, Tol)
}

func (c *checker) layerNorm(t *testing.T) {
	for _, C := range []int{1, 7, 64, 300} {
		for _, bias := range []bool{true, false} {
			t.Run(fmt.Sprintf("C=%d/bias=%v", C, bias), func(t *testing.T) {
				const N = 13
				x, w := c.rand(2, N, C), c.rand(1, C)
				var bb *tensor.Tensor
				if bias {
					bb = c.rand(1, C)
				}
				got, mg, rg := tensor.New(N, C), tensor.New(N), tensor.New(N)
				want, mw, rw := tensor.New(N, C), tensor.New(N), tensor.New(N)
				c.b.LayerNorm(got, mg, rg, x, w, bb, 1e-5)
				c.ref.LayerNorm(want, mw, rw, x, w, bb, 1e-5)
				same(t, "dst", got, want, Tol)
				same(t, "mean", mg, mw, Tol)
				same(t, "rstd", rg, rw, Tol)
				dy := c.rand(1, N, C)
				dxg, dxw := c.pair(1, N, C)
				dwg, dww := c.pair(1, C)
				var dbg, dbw *tensor.Tensor
				if bias {
					dbg, dbw = c.pair(1, C)
				}
				c.b.LayerNormBackward(dxg, dwg, dbg, dy, x, w, mw, rw)
				c.ref.LayerNormBackward(dxw, dww, dbw, dy, x, w, mw, rw)
				same(t, "dx", dxg, dxw, Tol)
				same(t, "dw", dwg, dww, Tol)
				if bias {
					same(t, "db", dbg, dbw, Tol)
				}
				// Frozen weights: no dw, db.
				dxg, dxw = c.pair(1, N, C)
				c.b.LayerNormBackward(dxg, nil, nil, dy, x, w, mw, rw)
				c.ref.LayerNormBackward(dxw, nil, nil, dy, x, w, mw, rw)
				same(t, "dx (frozen)", dxg, dxw, Tol)
			})
		}
	}
}

func (c *checker) rmsNorm(t *testing.T) {
	for _, C := range []int{1, 9, 128, 333} {
		t.Run(fmt.Sprintf("C=%d", C), func(t *testing.T) {
			const N = 11
			x, w := c.rand(2, N, C), c.rand(1, C)
			got, rg := tensor.New(N, C), tensor.New(N)
			want, rw := tensor.New(N, C), tensor.New(N)
			c.b.RMSNorm(got, rg, x, w, 1e-6)
			c.ref.RMSNorm(want, rw, x, w, 1e-6)
			same(t, "dst", got, want, Tol)
			same(t, "rstd", rg, rw, Tol)
			dy := c.rand(1, N, C)
			dxg, dxw := c.pair(1, N, C)
			dwg, dww := c.pair(1, C)
			c.b.RMSNormBackward(dxg, dwg, dy, x, w, rw)
			c.ref.RMSNormBackward(dxw, dww, dy, x, w, rw)
			same(t, "dx", dxg, dxw, Tol)
			same(t, "dw", dwg, dww, Tol)
			dxg, dxw = c.pair(1, N, C)
			c.b.RMSNormBackward(dxg, nil, dy, x, w, rw)
			c.ref.RMSNormBackward(dxw, nil, dy, x, w, rw)
			same(t, "dx (frozen)", dxg, dxw, Tol)
		})
	}
}

func (c *checker) gelu(t *testing.T) {
	const N, C = 17, 45
	x := c.rand(4, N, C)
	got, want := tensor.New(N, C), tensor.New(N, C)
	c.b.GELU(got, x)
	c.ref.GELU(want, x)
	same(t, "dst", got, want, Tol)
	dy := c.rand(1, N, C)
	dg, dw := c.pair(1, N, C)
	c.b.GELUBackward(dg, dy, x)
	c.ref.GELUBackward(dw, dy, x)
	same(t, "dx", dg, dw, Tol)
}

func (c *checker) swiglu(t *testing.T) {
	const N, C = 19, 37
	gate, up := c.rand(4, N, C), c.rand(2, N, C)
	got, want := tensor.New(N, C), tensor.New(N, C)
	c.b.SwiGLU(got, gate, up)
	c.ref.SwiGLU(want, gate, up)
	same(t, "dst", got, want, Tol)
	dy := c.rand(1, N, C)
	dgg, dgw := c.pair(1, N, C)
	dug, duw := c.pair(1, N, C)
	c.b.SwiGLUBackward(dgg, dug, dy, gate, up)
	c.ref.SwiGLUBackward(dgw, duw, dy, gate, up)
	same(t, "dgate", dgg, dgw, Tol)
	same(t, "dup", dug, duw, Tol)
}

func (c *checker) geglu(t *testing.T) {
	const N, C = 19, 37
	gate, up := c.rand(4, N, C), c.rand(2, N, C)
	got, want := tensor.New(N, C), tensor.New(N, C)
	c.b.GeGLU(got, gate, up)
	c.ref.GeGLU(want, gate, up)
	same(t, "dst", got, want, Tol)
	dy := c.rand(1, N, C)
	dgg, dgw := c.pair(1, N, C)
	dug, duw := c.pair(1, N, C)
	c.b.GeGLUBackward(dgg, dug, dy, gate, up)
	c.ref.GeGLUBackward(dgw, duw, dy, gate, up)
	same(t, "dgate", dgg, dgw, Tol)
	same(t, "dup", dug, duw, Tol)
}

func (c *checker) softcap(t *testing.T) {
	const N, C = 13, 301
	x := c.rand(40, N, C)
	got, want := tensor.New(N, C), tensor.New(N, C)
	c.b.Softcap(got, x, 30)
	c.ref.Softcap(want, x, 30)
	same(t, "dst", got, want, Tol)
	dy := c.rand(1, N, C)
	dg, dw := c.pair(1, N, C)
	c.b.SoftcapBackward(dg, dy, want, 30)
	c.ref.SoftcapBackward(dw, dy, want, 30)
	same(t, "dx", dg, dw, Tol)
}

func (c *checker) relu(t *testing.T) {
	const N, C = 13, 301
	x := c.rand(2, N, C)
	got, want := tensor.New(N, C), tensor.New(N, C)
	c.b.ReLU(got, x)
	c.ref.ReLU(want, x)
	same(t, "dst", got, want, 0)
	dy := c.rand(1, N, C)
	dg, dw := c.pair(1, N, C)
	c.b.ReLUBackward(dg, dy, want)
	c.ref.ReLUBackward(dw, dy, want)
	same(t, "dx", dg, dw, 0)
}

func (c *checker) rope(t *testing.T) {
	const N, H, D = 21, 3, 16
	tab := tensor.NewRoPETable(D, 64, 10000)
	pos := c.ids(N, 64)
	x := c.rand(1, N, H, D)
	got, want := tensor.New(N, H, D), tensor.New(N, H, D)
	c.b.RoPE(got, x, pos, tab)
	c.ref.RoPE(want, x, pos, tab)
	same(t, "dst", got, want, Tol)
	// In place.
	xi := x.Clone()
	c.b.RoPE(xi, xi, pos, tab)
	same(t, "dst (in place)", xi, want, Tol)
	dy := c.rand(1, N, H, D)
	dg, dw := c.pair(1, N, H, D)
	c.b.RoPEBackward(dg, dy, pos, tab)
	c.ref.RoPEBackward(dw, dy, pos, tab)
	same(t, "dx", dg, dw, Tol)
}

func (c *checker) attention(t *testing.T) {
	type tc struct {
		name                   string
		B, H, KVH, D, T, S, st int
		P                      int
		seg                    bool
		noKGrad                bool
		window                 int
		softcap                float32
	}
	cases := []tc{
		{name: "mha", B: 2, H: 2, KVH: 2, D: 16, T: 9, S: 9},
		{name: "gqa", B: 1, H: 4, KVH: 2, D: 32, T: 37, S: 37},
		{name: "long", B: 1, H: 2, KVH: 1, D: 64, T: 130, S: 130},
		{name: "decode", B: 2, H: 4, KVH: 2, D: 16, T: 1, S: 11, st: 16, noKGrad: true},
		{name: "cache", B: 2, H: 2, KVH: 2, D: 8, T: 5, S: 12, st: 20},
		{name: "prefix", B: 2, H: 4, KVH: 2, D: 16, T: 7, S: 7, P: 3},
		{name: "segments", B: 2, H: 2, KVH: 1, D: 16, T: 12, S: 12, seg: true},
		{name: "window", B: 2, H: 4, KVH: 2, D: 16, T: 23, S: 23, window: 5},
		{name: "window cache", B: 1, H: 2, KVH: 1, D: 16, T: 3, S: 14, st: 16, window: 4},
		{name: "window long", B: 1, H: 2, KVH: 1, D: 16, T: 200, S: 200, window: 20},
		{name: "window long cache", B: 2, H: 2, KVH: 2, D: 8, T: 7, S: 150, st: 160, window: 30},
		{name: "long cache", B: 1, H: 2, KVH: 1, D: 16, T: 70, S: 170},
		{name: "softcap", B: 1, H: 2, KVH: 2, D: 32, T: 17, S: 17, softcap: 1.5},
		{name: "window softcap prefix segments", B: 2, H: 4, KVH: 2, D: 16, T: 13, S: 13, P: 2, seg: true, window: 4, softcap: 2},
		// Training-sized passes, which a device may run as dense score
		// products: sequences batched (B·group > H), segments, window and
		// softcap together, a cache wider than the keys.
		{name: "dense batch", B: 3, H: 2, KVH: 2, D: 16, T: 40, S: 40},
		{name: "dense window softcap segments", B: 2, H: 4, KVH: 2, D: 16, T: 33, S: 33, seg: true, window: 9, softcap: 2},
		{name: "dense cache", B: 2, H: 2, KVH: 1, D: 8, T: 32, S: 45, st: 50},
	}
	for _, x := range cases {
		t.Run(x.name, func(t *testing.T) {
			st := x.st
			if st == 0 {
				st = x.S
			}
			q := c.rand(1, x.B, x.T, x.H, x.D)
			k := c.rand(1, x.B, st, x.KVH, x.D)
			v := c.rand(1, x.B, st, x.KVH, x.D)
			o := &tensor.AttentionOpts{Batch: x.B, Heads: x.H, KVHeads: x.KVH, HeadDim: x.D, Queries: x.T, Keys: x.S, KStride: x.st, Offset: x.S - x.T,
				Window: x.window, Softcap: x.softcap}
			if x.P > 0 {
				o.PrefixK, o.PrefixV = c.rand(1, x.KVH, x.P, x.D), c.rand(1, x.KVH, x.P, x.D)
			}
			if x.seg {
				o.QSeg, o.KSeg = make([]int32, x.B*x.T), make([]int32, x.B*st)
				for b := 0; b < x.B; b++ {
					for i := 0; i < x.T; i++ {
						o.QSeg[b*x.T+i] = int32(i / 5)
					}
					for j := 0; j < st; j++ {
						o.KSeg[b*st+j] = int32(j / 5)
					}
				}
			}
			got, lg := tensor.New(x.B, x.T, x.H, x.D), tensor.New(x.B, x.H, x.T)
			want, lw := tensor.New(x.B, x.T, x.H, x.D), tensor.New(x.B, x.H, x.T)
			c.b.Attention(got, lg, q, k, v, o)
			c.ref.Attention(want, lw, q, k, v, o)
			same(t, "out", got, want, Tol)
			same(t, "lse", lg, lw, Tol)

			dout := c.rand(1, x.B, x.T, x.H, x.D)
			dqg, dqw := c.pair(1, x.B, x.T, x.H, x.D)
			var dkg, dkw, dvg, dvw *tensor.Tensor
			if !x.noKGrad {
				dkg, dkw = c.pair(1, x.B, st, x.KVH, x.D)
				dvg, dvw = c.pair(1, x.B, st, x.KVH, x.D)
			}
			og, ow := *o, *o
			if x.P > 0 {
				og.DPrefixK, ow.DPrefixK = c.pair(1, x.KVH, x.P, x.D)
				og.DPrefixV, ow.DPrefixV = c.pair(1, x.KVH, x.P, x.D)
			}
			c.b.AttentionBackward(dqg, dkg, dvg, dout, q, k, v, want, lw, &og)
			c.ref.AttentionBackward(dqw, dkw, dvw, dout, q, k, v, want, lw, &ow)
			same(t, "dq", dqg, dqw, Tol)
			if !x.noKGrad {
				same(t, "dk", dkg, dkw, Tol)
				same(t, "dv", dvg, dvw, Tol)
			}
			if x.P > 0 {
				same(t, "dprefix k", og.DPrefixK, ow.DPrefixK, Tol)
				same(t, "dprefix v", og.DPrefixV, ow.DPrefixV, Tol)
			}
		})
	}
}

func (c *checker) crossEntropy(t *testing.T) {
	for _, V := range []int{2, 50, 1000, 5003} {
		t.Run(fmt.Sprintf("V=%d", V), func(t *testing.T) {
			const N = 9
			logits := c.rand(8, N, V)
			targets := c.ids(N, V)
			targets[2], targets[N-1] = -100, -1 // ignored rows
			lossg, lseg := tensor.New(N), tensor.New(N)
			lossw, lsew := tensor.New(N), tensor.New(N)
			c.b.CrossEntropy(lossg, lseg, logits, targets)
			c.ref.CrossEntropy(lossw, lsew, logits, targets)
			same(t, "loss", lossg, lossw, Tol)
			for _, i := range []int{2, N - 1} {
				if lossg.F32[i] != 0 {
					t.Errorf("loss of ignored row %d = %v, want 0", i, lossg.F32[i])
				}
			}
			// lse of ignored rows is not specified; compare the others.
			for _, i := range []int{2, N - 1} {
				lseg.F32[i], lsew.F32[i] = 0, 0
			}
			same(t, "lse", lseg, lsew, Tol)
			dloss := c.rand(1, N)
			dg, dw := c.pair(1, N, V)
			c.ref.CrossEntropy(lossw, lsew, logits, targets)
			c.b.CrossEntropyBackward(dg, dloss, logits, lsew, targets)
			c.ref.CrossEntropyBackward(dw, dloss, logits, lsew, targets)
			same(t, "dlogits", dg, dw, Tol)
		})
	}
}

func (c *checker) elementwise(t *testing.T) {
	const N, C = 23, 41
	a, b := c.rand(1, N, C), c.rand(1, N, C)
	got, want := tensor.New(N, C), tensor.New(N, C)
	c.b.Add(got, a, b)
	c.ref.Add(want, a, b)
	same(t, "Add", got, want, 0)
	c.b.Mul(got, a, b)
	c.ref.Mul(want, a, b)
	same(t, "Mul", got, want, 0)
	// In place, as residual connections do: dst is also an input.
	got, want = a.Clone(), a.Clone()
	c.b.Add(got, got, b)
	c.ref.Add(want, want, b)
	same(t, "Add in place", got, want, 0)
	got, want = c.pair(1, N, C)
	c.b.AddScaled(got, a, -0.37)
	c.ref.AddScaled(want, a, -0.37)
	same(t, "AddScaled", got, want, 1e-6)
	for _, dt := range []tensor.DType{tensor.F32, tensor.F16} {
		bias := weight(t, c.rand(1, C), dt)
		c.b.AddBias(got, a, bias)
		c.ref.AddBias(want, a, bias)
		same(t, "AddBias "+dt.String(), got, want, 1e-6)
	}
	sg, sw := c.pair(1, C)
	x := c.rand(1, 300, C)
	c.b.SumRows(sg, x)
	c.ref.SumRows(sw, x)
	same(t, "SumRows", sg, sw, Tol)
}

func (c *checker) columns(t *testing.T) {
	const N = 15
	widths := []int{3, 16, 1, 29}
	total := 0
	for _, w := range widths {
		total += w
	}
	x := c.rand(1, N, total)
	var gs, ws []*tensor.Tensor
	for _, w := range widths {
		gs = append(gs, tensor.New(N, w))
		ws = append(ws, tensor.New(N, w))
	}
	c.b.SplitCols(gs, x)
	c.ref.SplitCols(ws, x)
	for i := range gs {
		same(t, fmt.Sprintf("SplitCols[%d]", i), gs[i], ws[i], 0)
	}
	got := tensor.New(N, total)
	c.b.ConcatCols(got, ws)
	same(t, "ConcatCols", got, x, 0)
}

func (c *checker) adamw(t *testing.T) {
	for _, n := range []int{1, 1000, 70001} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			pg, pw := c.pair(1, n)
			g := c.rand(1, n)
			mg, mw := c.pair(0.1, n)
			v := c.rand(0.1, n)
			for i := range v.F32 {
				v.F32[i] *= v.F32[i]
			}
			vg, vw := v, v.Clone()
			for step := 1; step <= 3; step++ {
				o := tensor.AdamWOpts{LR: 1e-2, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, Step: step}
				c.b.AdamW(pg, g, mg, vg, o)
				c.ref.AdamW(pw, g, mw, vw, o)
			}
			same(t, "p", pg, pw, 1e-5)
			same(t, "m", mg, mw, 1e-5)
			same(t, "v", vg, vw, 1e-5)
		})
	}
}

func (c *checker) sumSquares(t *testing.T) {
	for _, n := range []int{1, 999, 100003} {
		x := c.rand(3, n)
		got, want := c.b.SumSquares(x), c.ref.SumSquares(x)
		if math.Abs(got-want) > 1e-6*math.Max(1, want) {
			t.Errorf("SumSquares n=%d: %v, want %v", n, got, want)
		}
	}
}
