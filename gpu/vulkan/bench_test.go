//go:build linux || freebsd

package vulkan

import (
	"math"
	"testing"

	"llmlab/core/tensor"
)

// BenchmarkMatMul times a 512×512×512 product of device tensors with the
// plain and the register-tiled kernel (one submit and wait per product,
// through a one-value read).
func BenchmarkMatMul(b *testing.B) {
	benchProduct(b, 512, 512, 512, []kernelChoice{{"plain", math.MaxInt, true}, {"tiled", 1, true}})
}

// BenchmarkMatVec times one row against a 4096×768 weight stored (N, K),
// a decode step's product, on the plain kernel and the subgroup one.
func BenchmarkMatVec(b *testing.B) {
	benchProduct(b, 1, 4096, 768, []kernelChoice{{"plain", math.MaxInt, true}, {"subgroup", math.MaxInt, false}})
}

type kernelChoice struct {
	name        string
	tiledMin    int
	noSubgroups bool
}

func benchProduct(b *testing.B, M, N, K int, kernels []kernelChoice) {
	be, err := Open(tensor.NewCPU(1))
	if err != nil {
		b.Skipf("no Vulkan device: %v", err)
	}
	defer be.Close()
	mk := func(n int) *tensor.Tensor {
		h := tensor.New(n)
		for i := range h.F32 {
			h.F32[i] = float32(math.Sin(float64(i)))
		}
		d, err := tensor.NewOn(be, n)
		if err != nil {
			b.Fatal(err)
		}
		tensor.Copy(d, h)
		return d
	}
	a, w, dst := mk(M*K), mk(N*K), mk(M*N)
	a.Shape, w.Shape, dst.Shape = tensor.Shape{M, K}, tensor.Shape{N, K}, tensor.Shape{M, N}
	one := tensor.New(1)
	for _, tc := range kernels {
		b.Run(tc.name, func(b *testing.B) {
			if !tc.noSubgroups && !be.d.sgArith {
				b.Skipf("%s has no subgroup arithmetic", be.Name())
			}
			be.tiledMin, be.noSubgroups = tc.tiledMin, tc.noSubgroups
			for b.Loop() {
				be.MatMul(dst, a, w, tensor.MatMulOpts{TransB: true})
				tensor.Copy(one, dst.Offset(0, 1))
			}
			b.ReportMetric(2*float64(M*N*K)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
