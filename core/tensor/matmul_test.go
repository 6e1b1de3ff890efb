package tensor_test

import (
	"fmt"
	"testing"

	"llmlab/core/tensor"
	"llmlab/core/tensor/tensortest"
)

// refMatMul is the naive triple loop in float64.
func refMatMul(a, b []float32, M, N, K int, ta, tb bool) []float32 {
	out := make([]float32, M*N)
	for i := 0; i < M; i++ {
		for j := 0; j < N; j++ {
			var s float64
			for k := 0; k < K; k++ {
				av := a[i*K+k]
				if ta {
					av = a[k*M+i]
				}
				bv := b[k*N+j]
				if tb {
					bv = b[j*K+k]
				}
				s += float64(av) * float64(bv)
			}
			out[i*N+j] = float32(s)
		}
	}
	return out
}

func TestMatMul(t *testing.T) {
	sizes := [][3]int{{1, 1, 1}, {3, 7, 5}, {6, 16, 8}, {7, 33, 17}, {13, 65, 129}, {65, 40, 300}, {1, 300, 70}, {2, 50, 33}}
	for _, s := range sizes {
		M, N, K := s[0], s[1], s[2]
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				for _, dt := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16} {
					name := fmt.Sprintf("%dx%dx%d/ta=%v/tb=%v/%v", M, N, K, ta, tb, dt)
					t.Run(name, func(t *testing.T) {
						a := tensortest.Rand(1, M*K, 1)
						bw := tensortest.Rand(2, K*N, 1)
						bt := tensor.FromF32(bw, K, N)
						if tb {
							bt = tensor.FromF32(bw, N, K)
						}
						bt = bt.Convert(dt)
						bwide := bt.Float32s()
						want := refMatMul(a, bwide, M, N, K, ta, tb)
						at := tensor.FromF32(a, M, K)
						if ta {
							at = tensor.FromF32(a, K, M)
						}
						for _, th := range []int{1, 3} {
							got := tensor.New(M, N)
							tensor.NewCPU(th).MatMul(got, at, bt, tensor.MatMulOpts{TransA: ta, TransB: tb})
							tensortest.Close(t, "product", got.F32, want, 1e-4)
							// accumulate adds
							tensor.NewCPU(th).MatMul(got, at, bt, tensor.MatMulOpts{TransA: ta, TransB: tb, Accumulate: true})
							twice := make([]float32, len(want))
							for i, w := range want {
								twice[i] = 2 * w
							}
							tensortest.Close(t, "accumulate", got.F32, twice, 1e-4)
						}
					})
				}
			}
		}
	}
}

func TestMatMulThreadInvariantAndBatch(t *testing.T) {
	M, N, K := 100, 70, 520
	a := tensor.FromF32(tensortest.Rand(3, 2*M*K, 1), 2*M, K)
	b := tensor.FromF32(tensortest.Rand(4, 2*N*K, 1), 2*N, K)
	var first []float32
	for _, th := range []int{1, 2, 5} {
		got := tensor.New(2*M, N)
		tensor.NewCPU(th).MatMul(got, a, b, tensor.MatMulOpts{TransB: true, Batch: 2})
		if first == nil {
			first = got.F32
			for bi := 0; bi < 2; bi++ {
				want := refMatMul(a.F32[bi*M*K:(bi+1)*M*K], b.F32[bi*N*K:(bi+1)*N*K], M, N, K, false, true)
				tensortest.Close(t, "batch", got.F32[bi*M*N:(bi+1)*M*N], want, 1e-4)
			}
			continue
		}
		for i := range first {
			if first[i] != got.F32[i] {
				t.Fatalf("threads %d: element %d differs bitwise (%v vs %v)", th, i, got.F32[i], first[i])
			}
		}
	}
}

func BenchmarkMatMul(b *testing.B) {
	for _, s := range [][3]int{{1024, 768, 768}, {1024, 3072, 768}, {1024, 768, 3072}, {256, 288, 288}, {1, 3072, 768}} {
		for _, th := range []int{1, 2} {
			M, N, K := s[0], s[1], s[2]
			b.Run(fmt.Sprintf("%dx%dx%d/t%d", M, N, K, th), func(b *testing.B) {
				x := tensor.FromF32(tensortest.Rand(1, M*K, 1), M, K)
				w := tensor.FromF32(tensortest.Rand(2, N*K, 1), N, K)
				y := tensor.New(M, N)
				c := tensor.NewCPU(th)
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					c.MatMul(y, x, w, tensor.MatMulOpts{TransB: true})
				}
				b.ReportMetric(2*float64(M*N*K)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
