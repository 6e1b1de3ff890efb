package tensor

import (
	"math"
	"testing"

	"llmlab/core/tensor/tensortest"
)

// The vector SwiGLU against the scalar one, gates from -120 to 120
// (the exponential saturates at both ends), lengths with tails.
func TestSwiGLUKernel(t *testing.T) {
	for _, n := range []int{1, 7, 8, 29, 1000} {
		g := tensortest.Rand(1, n, 1)
		u := tensortest.Rand(2, n, 1)
		for i := range g {
			g[i] *= float32(1 + i%5*30) // up to ±120
		}
		g[0] = float32(math.Copysign(0, -1))
		want, got := make([]float32, n), make([]float32, n)
		swigluGo(want, g, u)
		swiglu(got, g, u)
		for i := range got {
			if d := math.Abs(float64(got[i] - want[i])); d > 2e-6*math.Max(1, math.Abs(float64(want[i]))) || math.IsNaN(float64(got[i])) {
				t.Fatalf("n=%d, gate %v, up %v: %v, want %v", n, g[i], u[i], got[i], want[i])
			}
		}
	}
}
