//go:build (linux && !android) || darwin || freebsd

package blas

import (
	"llmlab/core/tensor"
	"math"
	"math/rand/v2"
	"testing"
)

func openOrSkip(t testing.TB) *Lib {
	l, err := Open()
	if err != nil {
		t.Skipf("no BLAS library here (install libopenblas0 to run this): %v", err)
	}
	return l
}

func TestSgemmMatchesNaive(t *testing.T) {
	l := openOrSkip(t)
	r := rand.New(rand.NewPCG(1, 2))
	rnd := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = r.Float32()*2 - 1
		}
		return s
	}
	for _, tc := range []struct {
		name           string
		m, n, k        int
		transA, transB bool
		alpha, beta    float32
	}{
		{"plain", 5, 7, 3, false, false, 1, 0},
		{"transB", 17, 9, 33, false, true, 1, 0},
		{"transA accumulate", 8, 6, 13, true, false, 1, 1},
		{"both scaled", 3, 4, 5, true, true, 0.5, -2},
		{"empty k", 3, 4, 0, false, false, 1, 0.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b, c := rnd(tc.m*tc.k), rnd(tc.k*tc.n), rnd(tc.m*tc.n)
			lda, ldb := tc.k, tc.n
			if tc.transA {
				lda = tc.m
			}
			if tc.transB {
				ldb = tc.k
			}
			want := make([]float32, len(c))
			for i := range tc.m {
				for j := range tc.n {
					var s float64
					for p := range tc.k {
						av := a[i*tc.k+p]
						if tc.transA {
							av = a[p*tc.m+i]
						}
						bv := b[p*tc.n+j]
						if tc.transB {
							bv = b[j*tc.k+p]
						}
						s += float64(av) * float64(bv)
					}
					want[i*tc.n+j] = float32(float64(tc.alpha)*s + float64(tc.beta)*float64(c[i*tc.n+j]))
				}
			}
			l.Sgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, tc.n)
			for i := range c {
				if math.Abs(float64(c[i]-want[i])) > 1e-4 {
					t.Fatalf("%s: c[%d] = %v, want %v", l.Name(), i, c[i], want[i])
				}
			}
		})
	}
}

func TestBackendMatchesCPU(t *testing.T) {
	l, err := Open()
	if err != nil {
		t.Skipf("no BLAS library on this machine: %v", err)
	}
	cpu := tensor.NewCPU(2)
	be := NewBackend(cpu, l)
	for _, o := range []tensor.MatMulOpts{{TransB: true}, {}, {TransA: true, Accumulate: true}} {
		M, N, K := 70, 90, 110
		a := tensor.New(M, K)
		if o.TransA {
			a = tensor.New(K, M)
		}
		w := tensor.New(K, N)
		if o.TransB {
			w = tensor.New(N, K)
		}
		for i := range a.F32 {
			a.F32[i] = float32(i%13) / 13
		}
		for i := range w.F32 {
			w.F32[i] = float32(i%7) / 7
		}
		want, got := tensor.New(M, N), tensor.New(M, N)
		for i := range want.F32 {
			want.F32[i], got.F32[i] = 0.5, 0.5
		}
		cpu.MatMul(want, a, w, o)
		be.MatMul(got, a, w, o)
		for i := range want.F32 {
			if d := want.F32[i] - got.F32[i]; d > 1e-3 || d < -1e-3 {
				t.Fatalf("%+v: element %d: blas %v, cpu %v", o, i, got.F32[i], want.F32[i])
			}
		}
	}
}
