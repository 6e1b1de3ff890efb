//go:build !amd64 || purego || noasm

package tensor

// gemmKernels returns the portable kernels: this build has no assembly.
func gemmKernels() *gemmKernel { return &goKernel }

// kernelSets lists the kernel sets this build can run.
func kernelSets() []*gemmKernel { return []*gemmKernel{&goKernel} }
