//go:build amd64 && !purego

package tensor

import "golang.org/x/sys/cpu"

//go:noescape
func vdotAVX2(a, b *float32, n int) float32

//go:noescape
func vaxpyAVX2(d, x *float32, n int, s float32)

var haveAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

func hasDotAsm() bool { return haveAVX2 }

func dotAsm(a, b []float32) float32 {
	if len(a) == 0 {
		return 0
	}
	if !haveAVX2 {
		return dot(a, b)
	}
	_ = b[len(a)-1]
	return vdotAVX2(&a[0], &b[0], len(a))
}

func axpyAsm(d, x []float32, s float32) {
	if len(d) == 0 {
		return
	}
	if !haveAVX2 {
		axpy(d, x, s)
		return
	}
	_ = x[len(d)-1]
	vaxpyAVX2(&d[0], &x[0], len(d), s)
}
