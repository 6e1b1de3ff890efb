package tensor

import (
	"fmt"
	"math"
	"testing"

	"llmlab/core/tensor/tensortest"
)

// TestQuantizeErrors: Q8 codes are within half a step of the value, NF4
// codes are the nearest level (by brute force), scales are as documented.
func TestQuantizeErrors(t *testing.T) {
	x := FromF32(tensortest.Rand(1, 7*150, 1), 7, 150)
	x.F32[5] = 0
	q8, err := Quantize(x, Q8)
	if err != nil {
		t.Fatal(err)
	}
	nf, err := Quantize(x, NF4)
	if err != nil {
		t.Fatal(err)
	}
	d8, dn := q8.Float32s(), nf.Float32s()
	for i, v := range x.F32 {
		step := q8.Scale[i/150]
		if math.Abs(float64(d8[i]-v)) > float64(step)/2+1e-7 {
			t.Fatalf("Q8 %d: %v -> %v (step %v)", i, v, d8[i], step)
		}
		amax := nf.Scale[i/NF4Block]
		best := float32(math.Inf(1))
		for _, l := range nf4Levels {
			best = min(best, float32(math.Abs(float64(l*amax-v))))
		}
		if got := float32(math.Abs(float64(dn[i] - v))); got > best*(1+1e-5)+1e-7 {
			t.Fatalf("NF4 %d: %v -> %v, error %v, nearest level is %v away", i, v, dn[i], got, best)
		}
	}
	if d8[5] != 0 || dn[5] != 0 {
		t.Error("zero does not survive quantization")
	}
	if len(q8.Q) != 1050 || len(q8.Scale) != 7 || len(nf.Q) != 525 || len(nf.Scale) != 17 {
		t.Errorf("sizes: Q8 %d codes %d scales, NF4 %d bytes %d scales", len(q8.Q), len(q8.Scale), len(nf.Q), len(nf.Scale))
	}
	if got, want := nf.StorageBytes(), 525+4*17; got != want {
		t.Errorf("NF4 storage %d bytes, want %d", got, want)
	}
	for i := 0; i < x.Numel(); i += 97 {
		if nf.At(i) != dn[i] || q8.At(i) != d8[i] {
			t.Fatalf("At(%d) disagrees with Float32s", i)
		}
	}
}

// TestMatMulQuantized: products with a quantized b (dequantised in the
// kernels' packing and in the matrix-vector path) equal the products with
// the dequantised float32 b, for both layouts and both kernels.
func TestMatMulQuantized(t *testing.T) {
	for _, dt := range []DType{Q8, NF4} {
		for _, tc := range []mmCase{
			{m: 1, n: 70, k: 131, transB: true},
			{m: 1, n: 131, k: 70},
			{m: 19, n: 70, k: 131, transB: true},
			{m: 5, n: 70, k: 131, transB: true, accumulate: true},
			{m: 19, n: 131, k: 70, accumulate: true},
			{m: 33, n: 300, k: 200, transB: true},
		} {
			for _, kern := range kernelSets() {
				t.Run(fmt.Sprintf("%v/%s/%v", dt, kern.name, tc), func(t *testing.T) {
					dst, a, b := tc.operands(5)
					qb, err := Quantize(b, dt)
					if err != nil {
						t.Fatal(err)
					}
					fb := FromF32(qb.Float32s(), b.Shape...)
					want := dst.Clone()
					(&CPU{Threads: 2}).matMul(kern, want, a, fb, tc.opts())
					(&CPU{Threads: 2}).matMul(kern, dst, a, qb, tc.opts())
					tensortest.Close(t, "quantized vs dequantised", dst.F32, want.F32, 1e-5)
				})
			}
		}
	}
}
