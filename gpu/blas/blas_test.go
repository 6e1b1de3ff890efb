//go:build linux || darwin || freebsd

package blas

import (
	"math"
	"testing"
)

func TestSgemm(t *testing.T) {
	l, err := Open()
	if err != nil {
		t.Skipf("no BLAS library on this machine (install libopenblas0): %v", err)
	}
	a := []float32{1, 2, 3, 4, 5, 6} // 2x3
	b := []float32{1, 0, 0, 1, 1, 1} // 2x3, used transposed
	c := make([]float32, 4)          // 2x2
	if err := l.Sgemm(false, true, 2, 2, 3, 1, a, 3, b, 3, 0, c, 2); err != nil {
		t.Fatal(err)
	}
	want := []float32{1, 1 + 2 + 3, 4, 4 + 5 + 6} // A·Bᵀ
	for i := range c {
		if math.Abs(float64(c[i]-want[i])) > 1e-6 {
			t.Fatalf("%s sgemm = %v, want %v", l.Name(), c, want)
		}
	}
}
