//go:build amd64 && !purego && !noasm

package quant

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The whole-row K-quant kernels (scales in assembly) against the block
// kernels with the scales in Go, on rows of 1 to 9 blocks with tiny
// (subnormal half) and saturating weights. They sum 8 float lanes per row
// instead of a scalar per block, so they agree to float32 rounding.
func TestDotRowKernelsMatchBlocks(t *testing.T) {
	if !hasAVX2() {
		t.Skip("no AVX2+FMA+F16C on this CPU")
	}
	r := rand.New(rand.NewPCG(9, 10))
	for _, tc := range []struct {
		typ         Type
		row, blocks func([]byte, *Act) float32
	}{
		{Q4_K, dotQ4KFast, dotQ4KBlocks},
		{Q6_K, dotQ6KFast, dotQ6KBlocks},
	} {
		for nb := 1; nb <= 9; nb++ {
			k := nb * QK
			w, x := make([]float32, k), make([]float32, k)
			for i := range w {
				w[i] = float32(r.NormFloat64())
				x[i] = float32(r.NormFloat64())
				switch {
				case i/QK == 1:
					w[i] *= 1e-7 // subnormal half scales
				case i%97 == 0:
					w[i], x[i] = 40, -30
				}
			}
			n, _ := tc.typ.RowBytes(k)
			q := make([]byte, n)
			Quantize(tc.typ, q, w)
			var a Act
			a.Quantize(tc.typ, x)
			want, got := tc.blocks(q, &a), tc.row(q, &a)
			var norm float64 // Σ|terms| bounds the rounding of any order
			for i := range a.D {
				norm += math.Abs(float64(tc.blocks(q[i*n/nb:(i+1)*n/nb], blockAct(&a, i))))
			}
			if math.Abs(float64(got-want)) > 1e-6*norm+1e-30 {
				t.Errorf("%v, %d blocks: row kernel %g, block kernel %g", tc.typ, nb, got, want)
			}
			if g := dotFuncs[tc.typ](q, &a); math.Abs(float64(got-g)) > 1e-4*math.Abs(float64(g))+1e-3 {
				t.Errorf("%v, %d blocks: row kernel %g, Go %g", tc.typ, nb, got, g)
			}
		}
	}
}

// blockAct is block i of a as an activation of its own.
func blockAct(a *Act, i int) *Act {
	return &Act{typ: a.typ, Q: a.Q[QK*i : QK*(i+1)], D: a.D[i : i+1], BSums: a.BSums[16*i : 16*(i+1)], dot: a.dot}
}

// BenchmarkDotKQuantRows: rows of 768 and 2048 weights (3 and 8 blocks,
// a small model's shapes, where the per-block work outside the integer
// loop counts), whole-row kernels against scales in Go.
func BenchmarkDotKQuantRows(b *testing.B) {
	if !hasAVX2() {
		b.Skip("no AVX2+FMA+F16C on this CPU")
	}
	r := rand.New(rand.NewPCG(7, 8))
	for _, k := range []int{768, 2048} {
		const rows = 256
		w, x := make([]float32, rows*k), make([]float32, k)
		for i := range w {
			w[i] = float32(r.NormFloat64())
		}
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		for _, tc := range []struct {
			typ         Type
			row, blocks func([]byte, *Act) float32
		}{
			{Q4_K, dotQ4KFast, dotQ4KBlocks},
			{Q6_K, dotQ6KFast, dotQ6KBlocks},
		} {
			n, _ := tc.typ.RowBytes(k)
			q := make([]byte, rows*n)
			Quantize(tc.typ, q, w)
			var a Act
			a.Quantize(tc.typ, x)
			for name, f := range map[string]func([]byte, *Act) float32{"row": tc.row, "blocks": tc.blocks} {
				b.Run(tc.typ.String()+"/"+name+"/"+string(rune('0'+k/256)), func(b *testing.B) {
					b.SetBytes(int64(rows * n))
					for b.Loop() {
						for r := 0; r < rows; r++ {
							f(q[r*n:(r+1)*n], &a)
						}
					}
				})
			}
		}
	}
}

// TestDotQ4_0RowsKernel: the Q4_0 rows kernel (two blocks per step, an
// odd block last) against the Go code on rows of 1 to 9 blocks, one to
// three rows at a time, with saturating weights and activations; and a
// row of it alone gives the same bits as within several.
func TestDotQ4_0RowsKernel(t *testing.T) {
	if !hasAVX2() {
		t.Skip("no AVX2+FMA+F16C on this CPU")
	}
	r := rand.New(rand.NewPCG(13, 14))
	for nb := 1; nb <= 9; nb++ {
		for rows := 1; rows <= 3; rows++ {
			k := nb * 32
			w, x := make([]float32, rows*k), make([]float32, k)
			for i := range w {
				w[i] = float32(r.NormFloat64())
				if i%37 == 0 {
					w[i] = 40
				}
			}
			for i := range x {
				x[i] = float32(r.NormFloat64())
				if i%41 == 0 {
					x[i] = -30
				}
			}
			n, _ := Q4_0.RowBytes(k)
			q := make([]byte, rows*n)
			for i := range rows {
				Quantize(Q4_0, q[i*n:(i+1)*n], w[i*k:(i+1)*k])
			}
			var a Act
			a.Quantize(Q4_0, x)
			got := make([]float32, rows)
			dotQ4_0Rows(q, rows, &a, got)
			for i := range rows {
				row := q[i*n : (i+1)*n]
				if want := dotQ4_0(row, &a); math.Abs(float64(got[i]-want)) > 1e-5*math.Abs(float64(want))+1e-4 {
					t.Errorf("%d blocks, row %d of %d: kernel %g, Go %g", nb, i, rows, got[i], want)
				}
				if one := dotQ4_0Fast(row, &a); math.Float32bits(one) != math.Float32bits(got[i]) {
					t.Errorf("%d blocks, row %d of %d: %g alone, %g among %d rows", nb, i, rows, one, got[i], rows)
				}
			}
		}
	}
}

// TestDotQ4KRowsVNNI: the AVX-512 VNNI Q4_K rows kernel gives the bits
// of the AVX2 one (exact integer sums, the same float steps), on rows of
// 1 to 5 super-blocks with subnormal-scale and saturating blocks.
func TestDotQ4KRowsVNNI(t *testing.T) {
	if !hasVNNI() {
		t.Skip("no AVX-512 VNNI on this CPU")
	}
	r := rand.New(rand.NewPCG(15, 16))
	for nb := 1; nb <= 5; nb++ {
		const rows = 3
		k := nb * QK
		w, x := make([]float32, rows*k), make([]float32, k)
		for i := range w {
			w[i] = float32(r.NormFloat64())
			switch {
			case i/QK == 1:
				w[i] *= 1e-7
			case i%97 == 0:
				w[i] = 40
			}
		}
		for i := range x {
			x[i] = float32(r.NormFloat64())
			if i%89 == 0 {
				x[i] = -30
			}
		}
		n, _ := Q4_K.RowBytes(k)
		q := make([]byte, rows*n)
		for i := range rows {
			Quantize(Q4_K, q[i*n:(i+1)*n], w[i*k:(i+1)*k])
		}
		var a Act
		a.Quantize(Q4_K, x)
		avx2, vnni := make([]float32, rows), make([]float32, rows)
		dotQ4KRowsAVX2(&q[0], n, rows, &a.Q[0], &a.D[0], &a.BSums[0], nb, &avx2[0])
		dotQ4KRowsVNNI(&q[0], n, rows, &a.Q[0], &a.D[0], &a.BSums[0], nb, &vnni[0])
		for i := range rows {
			if math.Float32bits(avx2[i]) != math.Float32bits(vnni[i]) {
				t.Errorf("%d blocks, row %d: VNNI %g, AVX2 %g", nb, i, vnni[i], avx2[i])
			}
		}
	}
}
