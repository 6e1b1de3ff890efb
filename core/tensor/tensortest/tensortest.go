// Package tensortest holds helpers that kernel and module tests share:
// central-difference gradient checks and closeness assertions with the
// worst element reported.
package tensortest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// Rand fills n float32 values uniformly in [-scale, scale) from a seeded source.
func Rand(seed uint64, n int, scale float32) []float32 {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	out := make([]float32, n)
	for i := range out {
		out[i] = (r.Float32()*2 - 1) * scale
	}
	return out
}

// MaxDiff returns the largest |a-b| relative to max(1, |b|), and its index.
func MaxDiff(a, b []float32) (float64, int) {
	worst, at := 0.0, -1
	for i := range a {
		d := math.Abs(float64(a[i]) - float64(b[i]))
		d /= math.Max(1, math.Abs(float64(b[i])))
		if d > worst || math.IsNaN(d) {
			worst, at = d, i
			if math.IsNaN(d) {
				return math.Inf(1), i
			}
		}
	}
	return worst, at
}

// Close fails t when got and want differ by more than tol (relative to
// max(1, |want|)) anywhere, naming the worst index.
func Close(t testing.TB, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d values, want %d", what, len(got), len(want))
	}
	d, i := MaxDiff(got, want)
	if d > tol {
		t.Errorf("%s: max diff %.3g at %d (got %v, want %v), tolerance %.1g", what, d, i, got[i], want[i], tol)
	}
}

// GradCheck compares an analytic gradient with central differences.
//
// loss computes a scalar from the current contents of x (it is called with
// x perturbed in place, one element at a time; compute in float64 where you
// can). analytic is d loss / d x. Up to maxChecks elements are probed (all
// when 0), chosen evenly. The check passes for an element when
// |num-ana| <= atol + rtol*max(|num|,|ana|).
func GradCheck(t testing.TB, what string, x []float32, analytic []float32, loss func() float64, eps float32, atol, rtol float64, maxChecks int) {
	t.Helper()
	if err := gradCheck(x, analytic, loss, eps, atol, rtol, maxChecks); err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

func gradCheck(x []float32, analytic []float32, loss func() float64, eps float32, atol, rtol float64, maxChecks int) error {
	if len(x) != len(analytic) {
		return fmt.Errorf("gradient has %d values for %d inputs", len(analytic), len(x))
	}
	step := 1
	if maxChecks > 0 && len(x) > maxChecks {
		step = len(x) / maxChecks
	}
	bad := 0
	var first error
	for i := 0; i < len(x); i += step {
		old := x[i]
		x[i] = old + eps
		lp := loss()
		x[i] = old - eps
		lm := loss()
		x[i] = old
		num := (lp - lm) / (2 * float64(eps))
		ana := float64(analytic[i])
		if math.Abs(num-ana) > atol+rtol*math.Max(math.Abs(num), math.Abs(ana)) {
			bad++
			if first == nil {
				first = fmt.Errorf("element %d: analytic %.6g, numeric %.6g", i, ana, num)
			}
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d gradient elements off; first: %w", bad, first)
	}
	return nil
}
