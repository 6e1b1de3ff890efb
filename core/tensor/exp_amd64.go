//go:build amd64 && !purego

package tensor

//go:noescape
func expSumAVX2(x *float32, n int, m float32) float32

//go:noescape
func expStoreAVX2(out, x *float32, n int, m float32) float32

//go:noescape
func softmaxGradAVX2(d, x *float32, n int, lse, w float32)

// expSum returns Σ exp(x[i] - m).
func expSum(x []float32, m float32) float32 {
	n8 := 0
	var s float32
	if hasDotAsm() && len(x) >= 8 {
		n8 = len(x) &^ 7
		s = expSumAVX2(&x[0], n8, m)
	}
	for _, v := range x[n8:] {
		s += expf(v - m)
	}
	return s
}

// expStore sets out[i] = exp(x[i] - m) and returns their sum.
func expStore(out, x []float32, m float32) float32 {
	n8 := 0
	var s float32
	out = out[:len(x)]
	if hasDotAsm() && len(x) >= 8 {
		n8 = len(x) &^ 7
		s = expStoreAVX2(&out[0], &x[0], n8, m)
	}
	for i := n8; i < len(x); i++ {
		out[i] = expf(x[i] - m)
		s += out[i]
	}
	return s
}

// softmaxGrad adds g·exp(x[i] - l) into d[i].
func softmaxGrad(d, x []float32, l, g float32) {
	n8 := 0
	d = d[:len(x)]
	if hasDotAsm() && len(x) >= 8 {
		n8 = len(x) &^ 7
		softmaxGradAVX2(&d[0], &x[0], n8, l, g)
	}
	for i := n8; i < len(x); i++ {
		d[i] += g * expf(x[i]-l)
	}
}

//go:noescape
func swigluAVX2(dst, gate, up *float32, n int)

// swiglu sets dst[i] = g·σ(g)·up[i] for g = gate[i].
func swiglu(dst, gate, up []float32) {
	n8 := 0
	if hasDotAsm() && len(dst) >= 8 {
		n8 = len(dst) &^ 7
		swigluAVX2(&dst[0], &gate[0], &up[0], n8)
	}
	swigluGo(dst[n8:], gate[n8:len(dst)], up[n8:len(dst)])
}
