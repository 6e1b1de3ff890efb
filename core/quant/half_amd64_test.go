//go:build amd64 && !purego && !noasm

package quant

func halfToF32Ref(lo, hi byte) float32 { return halfToF32(lo, hi) }
