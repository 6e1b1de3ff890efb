package tensor

import (
	"fmt"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"llmlab/core/tensor/tensortest"
)

var ggmlDTypes = []DType{Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K}

// TestMatMulGGML: products with GGML block weights. The packed GEMM and
// the transposed-free M = 1 path widen the blocks, so they equal the
// products with the dequantised float32 b; the M = 1 product with bᵀ runs
// on integers against x quantized to 8 bits per block, so it agrees to
// the activation's rounding.
func TestMatMulGGML(t *testing.T) {
	for _, dt := range ggmlDTypes {
		for _, tc := range []struct {
			mmCase
			tol float64
		}{
			{mmCase{m: 1, n: 70, k: 512, transB: true}, 2e-2},
			{mmCase{m: 1, n: 70, k: 512, transB: true, accumulate: true}, 2e-2},
			{mmCase{m: 1, n: 512, k: 70}, 1e-5},
			{mmCase{m: 19, n: 70, k: 512, transB: true}, bf16Tol()}, // the bf16 GEMM where the CPU has it
			{mmCase{m: 3, n: 70, k: 512, transB: true}, 1e-5},       // a decode step of a few sequences (gemv's several-row path)
			{mmCase{m: 9, n: 256, k: 70, accumulate: true}, 1e-5},
		} {
			t.Run(fmt.Sprintf("%v/%v", dt, tc.mmCase), func(t *testing.T) {
				dst, a, b := tc.operands(5)
				qb, err := Quantize(b, dt)
				if err != nil {
					t.Fatal(err)
				}
				if qb.StorageBytes() >= b.StorageBytes()/3 {
					t.Fatalf("%v holds %d bytes for %d float32s", dt, qb.StorageBytes(), b.Numel())
				}
				fb := FromF32(qb.Float32s(), b.Shape...)
				want := dst.Clone()
				matMulNaive(want, a, fb, tc.opts())
				(&CPU{Threads: 2}).MatMul(dst, a, qb, tc.opts())
				var scale float64
				for _, v := range want.F32 {
					scale = max(scale, math.Abs(float64(v)))
				}
				tensortest.Close(t, "GGML blocks vs dequantised", dst.F32, want.F32, tc.tol*max(1, scale))
			})
		}
	}
}

func TestGGMLWidenAndAt(t *testing.T) {
	x := New(3, 256)
	for i := range x.F32 {
		x.F32[i] = float32(math.Sin(float64(i)))
	}
	for _, dt := range ggmlDTypes {
		q := x.Convert(dt)
		all := q.Float32s()
		part := make([]float32, 77)
		WidenRow(part, q, 300) // starts inside a block, crosses blocks and a row
		for i, v := range part {
			if v != all[300+i] || q.At(300+i) != v {
				t.Fatalf("%v: element %d: WidenRow %g, At %g, Float32s %g", dt, 300+i, v, q.At(300+i), all[300+i])
			}
		}
		if _, err := FromBlocks(dt, q.Q[:len(q.Q)-1], 3, 256); err == nil {
			t.Errorf("%v: FromBlocks took a short buffer", dt)
		}
		if dt.String() == "" || dt.Size() != 1 {
			t.Errorf("%v: String %q Size %d", dt, dt.String(), dt.Size())
		}
	}
	if _, err := Quantize(New(2, 100), Q4_K); err == nil {
		t.Error("Q4_K took rows of 100")
	}
}

// bf16Tol is the tolerance of many rows against GGML weights: float32
// rounding, or on a CPU with AVX512_BF16 (gemm_bf16.go, checked exactly
// in TestGEMMBF16) both operands' bfloat16 rounding, as the M = 1 path
// has the activation's 8-bit rounding.
func bf16Tol() float64 {
	if bf16Micro() != nil {
		return 2e-2
	}
	return 1e-5
}

// TestGGMLSharedActivation: the M = 1 products keep the last quantized
// input and reuse it for the next product with the same input (a Q4_K
// and a Q6_K matrix share Q8_K codes; Q4_0 and Q8_0 share Q8_0 ones).
// Each result must equal that of a fresh backend, which quantizes anew,
// including after the input changes in place (step buffers are reused)
// and after a product whose weights need the other activation format.
func TestGGMLSharedActivation(t *testing.T) {
	const k = 512
	x := FromF32(tensortest.Rand(3, k, 1), 1, k)
	weights := map[DType]*Tensor{}
	for i, dt := range []DType{Q4_K, Q6_K, Q4_0, Q8_0} {
		w, err := Quantize(FromF32(tensortest.Rand(uint64(10+i), 40*k, 1), 40, k), dt)
		if err != nil {
			t.Fatal(err)
		}
		weights[dt] = w
	}
	shared := &CPU{Threads: 2}
	opts := MatMulOpts{TransB: true}
	for i, step := range []struct {
		dt     DType
		change bool // x changes in place before this product
	}{{Q4_K, false}, {Q6_K, false}, {Q4_K, false}, {Q4_0, false}, {Q8_0, false}, {Q6_K, false},
		{Q6_K, true}, {Q4_K, false}, {Q8_0, true}, {Q4_0, false}} {
		if step.change {
			x.F32[7] += 0.25
		}
		got, want := New(1, 40), New(1, 40)
		shared.MatMul(got, x, weights[step.dt], opts)
		(&CPU{Threads: 2}).MatMul(want, x, weights[step.dt], opts)
		if diff := cmp.Diff(want.F32, got.F32); diff != "" {
			t.Errorf("product %d (%v): shared activation differs from a fresh one (-want +got):\n%s", i, step.dt, diff)
		}
	}
}
