//go:build amd64 && !purego && !noasm

package tensor

import (
	"fmt"
	"math"
	"testing"

	"llmlab/core/tensor/tensortest"
)

// The bfloat16 GEMM against a float64 product of the same bf16-rounded
// operands: the kernel, the packing (edge tiles, an odd reduction block,
// several N blocks) and accumulation, to float32 rounding.
func TestGEMMBF16(t *testing.T) {
	if bf16Micro() == nil {
		t.Skip("no AVX512_BF16 on this CPU")
	}
	for _, tc := range []struct {
		m, n, k    int
		dt         DType
		accumulate bool
	}{
		{19, 70, 512, Q4_K, false},
		{64, 100, 800, Q8_0, false}, // reduction blocks of 267 and 266
		{17, 1100, 256, Q6_K, true}, // two N blocks
		{24, 96, 256, Q4_0, false},  // whole tiles
	} {
		t.Run(fmt.Sprintf("%v/%dx%dx%d", tc.dt, tc.m, tc.n, tc.k), func(t *testing.T) {
			a := FromF32(tensortest.Rand(1, tc.m*tc.k, 1), tc.m, tc.k)
			b, err := Quantize(FromF32(tensortest.Rand(2, tc.n*tc.k, 1), tc.n, tc.k), tc.dt)
			if err != nil {
				t.Fatal(err)
			}
			dst := FromF32(tensortest.Rand(3, tc.m*tc.n, 1), tc.m, tc.n)
			want := make([]float32, tc.m*tc.n)
			bw := b.Float32s()
			round := func(x float32) float64 { return float64(math.Float32frombits(toBF16(x) << 16)) }
			for i := range tc.m {
				for j := range tc.n {
					var s float64
					for k := range tc.k {
						s += round(a.F32[i*tc.k+k]) * round(bw[j*tc.k+k])
					}
					if tc.accumulate {
						s += float64(dst.F32[i*tc.n+j])
					}
					want[i*tc.n+j] = float32(s)
				}
			}
			o := MatMulOpts{TransB: true, Accumulate: tc.accumulate}
			if !useBF16(&avx512Kernel, &gemmProblem{b: b, transB: true}) {
				t.Fatal("the product does not take the bf16 path")
			}
			got := dst.Clone()
			(&CPU{Threads: 3}).matMul(&avx512Kernel, got, a, b, o)
			tensortest.Close(t, "bf16 GEMM", got.F32, want, 2e-4)
			one := dst.Clone()
			(&CPU{Threads: 1}).matMul(&avx512Kernel, one, a, b, o)
			for i := range one.F32 {
				if math.Float32bits(one.F32[i]) != math.Float32bits(got.F32[i]) {
					t.Fatalf("element %d: 1 thread %v, 3 threads %v", i, one.F32[i], got.F32[i])
				}
			}
		})
	}
}

func TestToBF16(t *testing.T) {
	for _, tc := range []struct {
		x    float32
		want uint32
	}{
		{1, 0x3f80}, {-2, 0xc000}, {0, 0},
		{math.Float32frombits(0x3f808000), 0x3f80}, // a tie rounds to even
		{math.Float32frombits(0x3f818000), 0x3f82},
		{math.Float32frombits(0x3f808001), 0x3f81},
	} {
		if got := toBF16(tc.x); got != tc.want {
			t.Errorf("toBF16(%v) = %#x, want %#x", tc.x, got, tc.want)
		}
	}
}

// BenchmarkGEMMBF16: a 512-token prompt through a 2048×768 Q4_K weight,
// the bf16 path against the float32 GEMM (SetBytes is the flop count:
// MB/s reads as MFLOP/s).
func BenchmarkGEMMBF16(b *testing.B) {
	a := FromF32(tensortest.Rand(1, 512*768, 1), 512, 768)
	w, _ := Quantize(FromF32(tensortest.Rand(2, 2048*768, 1), 2048, 768), Q4_K)
	dst := New(512, 2048)
	c := &CPU{Threads: 1}
	// The float32 GEMM on the dequantised weights: the same kernel set,
	// whose AVX-512 micro-kernel the bf16 one is derived from.
	wf := FromF32(w.Float32s(), 2048, 768)
	for name, b16 := range map[string]bool{"bf16": true, "f32": false} {
		if b16 && bf16Micro() == nil {
			continue
		}
		wt := wf
		if b16 {
			wt = w
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(GEMMFlops(512, 2048, 768)))
			for b.Loop() {
				c.MatMul(dst, a, wt, MatMulOpts{TransB: true})
			}
		})
	}
}
