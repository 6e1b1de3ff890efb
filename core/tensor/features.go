package tensor

// CPUFeatures names the kernel sets this build can run on this CPU, the
// one MatMul uses first: "avx512f", "avx2+fma" or "generic" (the portable
// Go kernels, always last). `llmlab devices` prints it.
func CPUFeatures() []string {
	var out []string
	for _, k := range kernelSets() {
		out = append(out, k.name)
	}
	return out
}
