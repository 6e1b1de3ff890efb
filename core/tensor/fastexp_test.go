package tensor

import (
	"math"
	"testing"
)

func TestExpf(t *testing.T) {
	worst := 0.0
	for x := float32(-87); x <= 88; x += 0.001 {
		g := float64(expf(x))
		w := math.Exp(float64(x))
		r := math.Abs(g-w) / w
		if r > worst {
			worst = r
		}
	}
	if worst > 1e-6 {
		t.Fatalf("rel err %g", worst)
	}
	t.Logf("worst rel err %g", worst)
}

func TestVectorExp(t *testing.T) {
	for _, n := range []int{1, 7, 8, 9, 33, 1000} {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(i%97)*0.37 - 30
		}
		var want float64
		for _, v := range x {
			want += math.Exp(float64(v - 2))
		}
		if got := float64(expSum(x, 2)); math.Abs(got-want)/want > 1e-6 {
			t.Fatalf("n=%d: expSum %v, want %v", n, got, want)
		}
		out := make([]float32, n)
		s := expStore(out, x, 2)
		if math.Abs(float64(s)-want)/want > 1e-6 {
			t.Fatalf("n=%d: expStore sum %v", n, s)
		}
		d := make([]float32, n)
		softmaxGrad(d, x, 2, 0.5)
		for i := range x {
			w := 0.5 * math.Exp(float64(x[i]-2))
			if math.Abs(float64(d[i])-w) > 1e-6*math.Max(1, w) || math.Abs(float64(out[i])-2*w) > 2e-6*math.Max(1, w) {
				t.Fatalf("n=%d i=%d: grad %v out %v want %v", n, i, d[i], out[i], w)
			}
		}
	}
}
