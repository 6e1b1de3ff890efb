package tensor

import (
	"fmt"
	"runtime"
	"testing"

	"llmlab/core/tensor/tensortest"
)

// benchShapes are (M, N, K) of GPT-2 small's projections at 1024 tokens and
// of a tiny model, run as y = x·Wᵀ (TransB, nn.Linear's layout).
var benchShapes = [][3]int{{1024, 768, 768}, {1024, 3072, 768}, {1024, 768, 3072}, {256, 288, 288}}

// BenchmarkMatMul reports GFLOP/s for the training shapes with one thread
// and with all of them, for the forward (TransB) and the two backward
// layouts of a Linear layer.
func BenchmarkMatMul(b *testing.B) {
	for _, s := range benchShapes {
		for _, th := range []int{1, runtime.NumCPU()} {
			for _, op := range []string{"xWt", "dyW", "dytx"} {
				if op != "xWt" && s != benchShapes[0] {
					continue
				}
				b.Run(fmt.Sprintf("%dx%dx%d/%s/t%d", s[0], s[1], s[2], op, th), func(b *testing.B) {
					benchMatMul(b, &CPU{Threads: th}, s[0], s[1], s[2], op, F32)
				})
			}
		}
	}
}

// BenchmarkMatVec is generation at batch 1: y = x·Wᵀ with M = 1, reported
// as GB/s of weights read (it is memory-bound) and GFLOP/s.
func BenchmarkMatVec(b *testing.B) {
	for _, s := range [][3]int{{1, 768, 768}, {1, 3072, 768}, {1, 50304, 768}} {
		for _, dt := range []DType{F32, BF16, F16} {
			for _, th := range []int{1, runtime.NumCPU()} {
				b.Run(fmt.Sprintf("%dx%dx%d/%v/t%d", s[0], s[1], s[2], dt, th), func(b *testing.B) {
					benchMatMul(b, &CPU{Threads: th}, s[0], s[1], s[2], "xWt", dt)
				})
			}
		}
	}
}

func benchMatMul(b *testing.B, cpu *CPU, m, n, k int, op string, dt DType) {
	var dst, x, w *Tensor
	var o MatMulOpts
	switch op {
	case "xWt": // y (M, N) = x (M, K) · W (N, K)ᵀ
		dst, x, w = New(m, n), FromF32(tensortest.Rand(1, m*k, 1), m, k), FromF32(tensortest.Rand(2, n*k, 1), n, k)
		o.TransB = true
	case "dyW": // dx (M, N) = dy (M, K) · W (K, N)
		dst, x, w = New(m, n), FromF32(tensortest.Rand(1, m*k, 1), m, k), FromF32(tensortest.Rand(2, k*n, 1), k, n)
	case "dytx": // dW (M, N) += dy (K, M)ᵀ · x (K, N)
		dst, x, w = New(m, n), FromF32(tensortest.Rand(1, k*m, 1), k, m), FromF32(tensortest.Rand(2, k*n, 1), k, n)
		o.TransA, o.Accumulate = true, true
	}
	if dt != F32 {
		w = w.Convert(dt)
	}
	cpu.MatMul(dst, x, w, o)
	b.ResetTimer()
	for b.Loop() {
		cpu.MatMul(dst, x, w, o)
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(GEMMFlops(m, n, k)/sec/1e9, "GFLOP/s")
	if m == 1 {
		b.ReportMetric(float64(n*k*dt.Size())/sec/1e9, "GB/s")
	}
}
