//go:build (linux && !android) || darwin || freebsd

package blas

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"llmlab/core/tensor"
	"llmlab/core/tensor/tensortest"
)

// BenchmarkVsCPU runs the CPU backend's MatMul and this BLAS's sgemm on the
// same y = x·Wᵀ problems, one after the other, so their ratio comes from
// one run. Make sure OpenBLAS runs its best kernel: an OPENBLAS_CORETYPE
// or OPENBLAS_L2_SIZE in the environment can force a slower one, and
// OpenBLAS 0.3.21 does not recognise recent Xeons (it falls back to the
// SSE "Prescott" kernel, ~6× slower), so name the AVX-512 kernel for the
// benchmark command only:
//
//	env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=SkylakeX go test -run X -bench VsCPU ./gpu/blas/
//
// OPENBLAS_VERBOSE=2 prints the kernel OpenBLAS chose.
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
				// OpenBLAS's idle workers spin for a while after a call:
				// let them park before the next (timed) run.
				l.SetThreads(1)
				time.Sleep(200 * time.Millisecond)
			})
		}
	}
}
