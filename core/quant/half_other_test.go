//go:build !amd64 || purego || noasm

package quant

func halfToF32Ref(lo, hi byte) float32 { return f16([]byte{lo, hi}) }
