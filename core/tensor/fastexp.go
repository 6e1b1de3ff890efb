package tensor

import "math"

// expf is exp for float32 inputs, good to about 3e-7 relative over the range that
// softmax sees (x <= 0 after the max is subtracted) and saturating below
// -87. It splits x·log2(e) into an integer n and a fraction f in [-0.5,
// 0.5], evaluates 2^f with a degree-7 polynomial and scales by 2^n in the
// exponent bits: about four times faster than math.Exp.
func expf(x float32) float32 {
	if x < -87.3 {
		return 0
	}
	if x > 88.3 {
		return float32(math.Inf(1))
	}
	t := float64(x) * 1.4426950408889634 // in float64: float32 would cost 5e-6 at |x| ~ 80
	n := float64(int64(t+256.5)) - 256   // floor(t+0.5) for t > -256, without a call
	f := float32(t - n)
	// 2^f on [-0.5, 0.5]: the Taylor series of exp(f·ln 2) to degree 7.
	p := float32(1.525273380405984e-05)
	p = p*f + 1.5403530393381606e-04
	p = p*f + 1.3333558146428443e-03
	p = p*f + 9.618129107628477e-03
	p = p*f + 5.550410866482158e-02
	p = p*f + 2.402265069591007e-01
	p = p*f + 6.931471805599453e-01
	p = p*f + 1.0
	return math.Float32frombits(math.Float32bits(p) + uint32(int32(n))<<23 /* n in [-126, 128] */)
}
