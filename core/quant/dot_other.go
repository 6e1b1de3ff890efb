//go:build !amd64 || purego || noasm

package quant

// fastDot: no assembly on this platform; every type uses the Go code.
func fastDot(Type, bool) func(w []byte, a *Act) float32 { return nil }

// fastDotRows: no assembly on this platform.
func fastDotRows(Type) func(w []byte, rows int, a *Act, out []float32) { return nil }
