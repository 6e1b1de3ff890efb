//go:build (linux && !android) || darwin || freebsd

package blas

import (
	"fmt"
	"runtime"
	"testing"

	"llmlab/core/tensor"
	"llmlab/core/tensor/tensortest"
)

// BenchmarkVsCPU runs the CPU backend's MatMul and this BLAS's sgemm on the
// same y = x·Wᵀ problems, one after the other, so their ratio comes from
// one run. On machines that set OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE,
// unset them for this command only to get OpenBLAS's best kernel:
//
//	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE go test -run X -bench VsCPU ./gpu/blas/
func BenchmarkVsCPU(b *testing.B) {
	l := openOrSkip(b)
	shapes := [][3]int{{1024, 768, 768}, {1024, 3072, 768}, {1024, 768, 3072}, {256, 288, 288}, {1, 768, 768}, {1, 3072, 768}}
	for _, s := range shapes {
		m, n, k := s[0], s[1], s[2]
		x := tensortest.Rand(1, m*k, 1) // (M, K)
		w := tensortest.Rand(2, n*k, 1) // (N, K)
		y := make([]float32, m*n)       // (M, N)
		flops := tensor.GEMMFlops(m, n, k)
		for _, th := range []int{1, runtime.NumCPU()} {
			name := fmt.Sprintf("%dx%dx%d/t%d", m, n, k, th)
			b.Run(name+"/llmlab", func(b *testing.B) {
				cpu := &tensor.CPU{Threads: th}
				dst, a, wt := tensor.FromF32(y, m, n), tensor.FromF32(x, m, k), tensor.FromF32(w, n, k)
				o := tensor.MatMulOpts{TransB: true}
				cpu.MatMul(dst, a, wt, o)
				for b.Loop() {
					cpu.MatMul(dst, a, wt, o)
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
			b.Run(name+"/blas", func(b *testing.B) {
				l.SetThreads(th)
				l.Sgemm(false, true, m, n, k, 1, x, k, w, k, 0, y, n)
				for b.Loop() {
					l.Sgemm(false, true, m, n, k, 1, x, k, w, k, 0, y, n)
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
