package tensor

import "sync"

// Small vector helpers shared by the attention and loss kernels: a pool of
// scratch buffers, and plain-Go dot and axpy (the assembly versions are in
// vec_amd64.s).

var scratchPool = sync.Pool{New: func() any { return new([]float32) }}

// scratch returns a pooled float32 buffer of n values; put it back with
// scratchPool.Put.
func scratch(n int) *[]float32 {
	p := scratchPool.Get().(*[]float32)
	if cap(*p) < n {
		*p = make([]float32, n)
	}
	*p = (*p)[:n]
	return p
}

func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func axpy(d, x []float32, s float32) {
	x = x[:len(d)]
	for i := range d {
		d[i] += s * x[i]
	}
}
