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
