package quant

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// The goldens come from llama.cpp's library (tools/golden/ggml_quants.py):
// input.f32 is 8 rows of 512, TYPE.bin what ggml_quantize_chunk wrote for
// them, TYPE.f32 what dequantize_row_TYPE read back.

var goldenTypes = []Type{Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K}

func readF32(t *testing.T, name string) []float32 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

func TestQuantizeMatchesLlamaCpp(t *testing.T) {
	x := readF32(t, "input.f32")
	for _, typ := range goldenTypes {
		t.Run(typ.String(), func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("testdata", typ.String()+".bin"))
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(want))
			Quantize(typ, got, x)
			bb, bs := typ.BlockBytes(), typ.Block()
			bad := 0
			for blk := 0; blk < len(want)/bb; blk++ {
				g, w := got[blk*bb:(blk+1)*bb], want[blk*bb:(blk+1)*bb]
				if string(g) != string(w) {
					if bad < 3 {
						t.Errorf("block %d (row %d): differs from llama.cpp's\n got %x\nwant %x", blk, blk*bs/512, g, w)
					}
					bad++
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d blocks differ", bad, len(want)/bb)
			}
		})
	}
}

func TestDequantizeMatchesLlamaCpp(t *testing.T) {
	for _, typ := range goldenTypes {
		t.Run(typ.String(), func(t *testing.T) {
			blocks, err := os.ReadFile(filepath.Join("testdata", typ.String()+".bin"))
			if err != nil {
				t.Fatal(err)
			}
			want := readF32(t, typ.String()+".f32")
			got := make([]float32, len(want))
			Dequantize(typ, got, blocks)
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("element %d: got %g, llama.cpp reads %g", i, got[i], want[i])
				}
			}
		})
	}
}

// TestRoundTrip bounds the error of every block by a fraction of the
// block's range: what the format's bits allow, with room for the
// search-based K-quant scales.
func TestRoundTrip(t *testing.T) {
	bound := map[Type]float64{ // max |error| / max |x| per block
		Q8_0: 0.57 / 127, Q4_0: 1.0 / 8, Q4_1: 1.05 / 15, Q5_0: 1.0 / 16, Q5_1: 1.05 / 31,
		Q6_K: 0.03, Q5_K: 0.06, Q4_K: 0.12, Q3_K: 0.3, Q2_K: 0.6,
	}
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 64*QK)
	for i := range x {
		x[i] = float32(r.NormFloat64()) * float32(math.Pow(10, float64(i/QK%5-2)))
	}
	for _, typ := range goldenTypes {
		t.Run(typ.String(), func(t *testing.T) {
			n, _ := typ.RowBytes(len(x))
			q := make([]byte, n)
			Quantize(typ, q, x)
			y := make([]float32, len(x))
			Dequantize(typ, y, q)
			bs := typ.Block()
			worst := 0.0
			for b := 0; b < len(x)/bs; b++ {
				var amax, emax float64
				for i := b * bs; i < (b+1)*bs; i++ {
					amax = max(amax, math.Abs(float64(x[i])))
					emax = max(emax, math.Abs(float64(x[i]-y[i])))
				}
				worst = max(worst, emax/amax)
			}
			if worst > bound[typ] {
				t.Errorf("worst block error %.4f of the block's max, bound %.4f", worst, bound[typ])
			}
			t.Logf("worst block error %.4f of the block's max (%.2f bits/weight)", worst, typ.BitsPerWeight())
		})
	}
}

// TestDot checks the integer products against float products of the
// dequantized weights with the unquantized activations: the difference
// is the 8-bit activation rounding only.
func TestDot(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const k = 4 * QK
	w := make([]float32, k)
	x := make([]float32, k)
	for i := range w {
		w[i] = float32(r.NormFloat64()) * 0.05
		x[i] = float32(r.NormFloat64())
	}
	for _, typ := range goldenTypes {
		t.Run(typ.String(), func(t *testing.T) {
			n, _ := typ.RowBytes(k)
			q := make([]byte, n)
			Quantize(typ, q, w)
			wd := make([]float32, k)
			Dequantize(typ, wd, q)
			var want, norm float64
			for i := range wd {
				want += float64(wd[i]) * float64(x[i])
				norm += math.Abs(float64(wd[i]) * float64(x[i]))
			}
			var a Act
			a.Quantize(typ, x)
			got := float64(Dot(typ, q, &a))
			if d := math.Abs(got - want); d > 0.01*norm {
				t.Errorf("dot %g, float dot of the dequantized row %g (|diff| %g > 1%% of Σ|w·x| %g)", got, want, d, norm)
			}
		})
	}
}

func TestRowBytes(t *testing.T) {
	for _, tc := range []struct {
		typ  Type
		n    int
		want int
		err  bool
	}{
		{Q4_K, 512, 288, false}, {Q8_0, 64, 68, false}, {Q6_K, 100, 0, true}, {F32, 3, 12, false}, {Type(99), 32, 0, true},
	} {
		got, err := tc.typ.RowBytes(tc.n)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%v.RowBytes(%d) = %d, %v; want %d (error %v)", tc.typ, tc.n, got, err, tc.want, tc.err)
		}
	}
}

// TestDotKernelsAgree: the assembly kernels against the Go ones, on rows
// with extreme codes and activations.
func TestDotKernelsAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const k = 8 * QK
	w, x := make([]float32, k), make([]float32, k)
	for i := range w {
		w[i] = float32(r.NormFloat64())
		x[i] = float32(r.NormFloat64())
		if i%97 == 0 {
			w[i], x[i] = 40, -30 // saturating blocks
		}
	}
	for _, typ := range goldenTypes {
		for _, vnni := range []bool{false, true} {
			fast := fastDot(typ, vnni)
			if fast == nil {
				continue
			}
			n, _ := typ.RowBytes(k)
			q := make([]byte, n)
			Quantize(typ, q, w)
			var a Act
			a.Quantize(typ, x)
			want, got := dotFuncs[typ](q, &a), fast(q, &a)
			if d := math.Abs(float64(got - want)); d > 1e-4*math.Abs(float64(want))+1e-3 {
				t.Errorf("%v (vnni %v): assembly %g, Go %g", typ, vnni, got, want)
			}
		}
	}
}

func BenchmarkDot(b *testing.B) {
	const k, rows = 4096, 256
	r := rand.New(rand.NewPCG(7, 8))
	w, x := make([]float32, rows*k), make([]float32, k)
	for i := range w {
		w[i] = float32(r.NormFloat64())
	}
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	for _, typ := range goldenTypes {
		n, _ := typ.RowBytes(k)
		q := make([]byte, rows*n)
		Quantize(typ, q, w)
		var a Act
		a.Quantize(typ, x)
		kernels := map[string]func([]byte, *Act) float32{"go": dotFuncs[typ]}
		if f := fastDot(typ, false); f != nil {
			kernels["avx2"] = f
		}
		if f := fastDot(typ, true); f != nil {
			kernels["best"] = f
		}
		for name, f := range kernels {
			b.Run(typ.String()+"/"+name, func(b *testing.B) {
				b.SetBytes(int64(rows * n))
				for range b.N {
					for r := 0; r < rows; r++ {
						f(q[r*n:(r+1)*n], &a)
					}
				}
			})
		}
	}
}

func TestHalfToF32(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		want := f16([]byte{byte(h), byte(h >> 8)})
		got := halfToF32Ref(byte(h), byte(h>>8))
		if math.Float32bits(got) != math.Float32bits(want) && !(want != want && got != got) {
			t.Fatalf("half %#04x: %g, want %g", h, got, want)
		}
	}
}

// DotRows gives, bit for bit, Dot of each row (the K-quants' several-row
// kernels on AVX2, one call per row elsewhere).
func TestDotRows(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	const k, rows = 3 * QK, 5
	w, x := make([]float32, rows*k), make([]float32, k)
	for i := range w {
		w[i] = float32(r.NormFloat64())
	}
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	for _, typ := range goldenTypes {
		n, _ := typ.RowBytes(k)
		q := make([]byte, rows*n)
		Quantize(typ, q, w)
		var a Act
		a.Quantize(typ, x)
		for _, m := range []int{0, 1, rows} {
			got := make([]float32, rows)
			for i := range got {
				got[i] = -1
			}
			DotRows(typ, q[:m*n], m, &a, got)
			for i := range m {
				if want := Dot(typ, q[i*n:(i+1)*n], &a); math.Float32bits(got[i]) != math.Float32bits(want) {
					t.Errorf("%v, %d rows: row %d %g, Dot %g", typ, m, i, got[i], want)
				}
			}
			for i := m; i < rows; i++ {
				if got[i] != -1 {
					t.Errorf("%v, %d rows: wrote out[%d]", typ, m, i)
				}
			}
		}
	}
}
