// Package gpu finds the compute backends this machine can run and opens
// the one a command asks for: CUDA (gpu/cuda), Vulkan (gpu/vulkan), a
// system BLAS (gpu/blas) and the CPU backend that is always there. Every
// library is loaded at run time; a missing or broken one is a reason in
// the probe table and, when it was asked for, a fallback to the CPU with a
// message, never a crash.
package gpu

import (
	"fmt"
	"io"
	"runtime"
	"strings"

	"llmlab/core/tensor"
	"llmlab/gpu/blas"
	"llmlab/gpu/vulkan"
)

// Devices lists the --device values, in the order auto tries them.
var Devices = []string{"cuda", "vulkan", "blas", "cpu"}

// Probe is one backend's entry in the detection table.
type Probe struct {
	Backend string `json:"backend"`
	OK      bool   `json:"ok"`
	Detail  string `json:"detail"` // the device, or why it cannot be used
	// Auto is false for a backend that works but that auto passes over
	// (a Vulkan device that is the CPU itself, such as lavapipe).
	Auto bool `json:"auto"`
}

// Detect probes every backend in order (cuda, vulkan, blas, cpu), opening
// and closing each device, and explains each result.
func Detect(threads int) []Probe {
	var ps []Probe
	for _, name := range Devices {
		b, closeFn, p := open(name, threads)
		if b != nil {
			closeFn()
		}
		ps = append(ps, p)
	}
	return ps
}

// Open returns the backend for a --device value (auto, cuda, vulkan, blas,
// cpu) and a function that releases it. auto takes the first of cuda and
// a GPU Vulkan device, else the CPU. A device that was asked for but cannot
// be opened falls back to the CPU, with the reason written to warn. Only an
// unknown name is an error.
func Open(device string, threads int, warn io.Writer) (tensor.Backend, func(), error) {
	switch device {
	case "", "auto":
		for _, name := range []string{"cuda", "vulkan"} {
			b, closeFn, p := open(name, threads)
			if b != nil && p.Auto {
				return b, closeFn, nil
			}
			if b != nil {
				closeFn()
			}
		}
		return tensor.NewCPU(threads), func() {}, nil
	case "cpu":
		return tensor.NewCPU(threads), func() {}, nil
	case "cuda", "vulkan", "blas":
		b, closeFn, p := open(device, threads)
		if b == nil {
			fmt.Fprintf(warn, "--device %s: %s; using the CPU\n", device, p.Detail)
			return tensor.NewCPU(threads), func() {}, nil
		}
		return b, closeFn, nil
	}
	return nil, nil, fmt.Errorf("unknown --device %q (want auto, %s)", device, strings.Join(Devices, ", "))
}

// open opens one backend, returning nil and the reason when it cannot.
func open(name string, threads int) (tensor.Backend, func(), Probe) {
	p := Probe{Backend: name}
	none := func() {}
	switch name {
	case "cpu":
		p.OK, p.Auto = true, true
		p.Detail = fmt.Sprintf("%s/%s, %d cores, GEMM kernel %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), tensor.CPUFeatures()[0])
		return tensor.NewCPU(threads), none, p
	case "blas":
		l, err := blas.Open()
		if err != nil {
			p.Detail = err.Error()
			return nil, none, p
		}
		p.OK, p.Detail = true, l.Name()+": large float32 products go to its sgemm, the rest stays on the CPU backend"
		return blas.NewBackend(tensor.NewCPU(threads), l), none, p
	case "vulkan":
		vb, err := vulkan.Open(tensor.NewCPU(threads))
		if err != nil {
			p.Detail = err.Error()
			return nil, none, p
		}
		p.OK, p.Detail = true, vb.Name()+"; "+vb.Features().String()
		p.Auto = !vb.IsCPU()
		if !p.Auto {
			p.Detail += " (a CPU device: auto uses the CPU backend, which is faster; --device vulkan forces it)"
		}
		return vb, vb.Close, p
	case "cuda":
		cb, err := openCUDA()
		if err != nil {
			p.Detail = err.Error()
			return nil, none, p
		}
		p.OK, p.Auto, p.Detail = true, true, cb.Name()
		return cb, cb.Close, p
	}
	p.Detail = "unknown backend"
	return nil, none, p
}
