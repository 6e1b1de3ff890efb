//go:build !amd64 || purego

package tensor

func expSum(x []float32, m float32) float32 {
	var s float32
	for _, v := range x {
		s += expf(v - m)
	}
	return s
}

func expStore(out, x []float32, m float32) float32 {
	var s float32
	for i, v := range x {
		out[i] = expf(v - m)
		s += out[i]
	}
	return s
}

func softmaxGrad(d, x []float32, l, g float32) {
	for i, v := range x {
		d[i] += g * expf(v-l)
	}
}

// swiglu sets dst[i] = g·σ(g)·up[i] for g = gate[i].
func swiglu(dst, gate, up []float32) { swigluGo(dst, gate, up[:len(dst)]) }
