// Package quant holds the block formats of GGML (llama.cpp's tensor
// library), the storage of quantized GGUF files: each type is a fixed-size
// block of consecutive elements along a row (32 for the legacy types, 256
// for the K-quants) with its own scales, and a row is a run of blocks.
//
// For each type there is a reference quantizer and a dequantizer, written
// to round exactly as llama.cpp's reference code (ggml-quants.c) does, so
// that a file llmlab writes is the file llama-quantize writes for the same
// weights (without an importance matrix), and a value llmlab reads is the
// value llama.cpp reads. Tests check both against goldens made with
// llama.cpp's own library (tools/golden/ggml_quants.py).
//
// Products with a quantized matrix run on integers, as in llama.cpp: the
// activation row is quantized per block to int8 (Q8_0 for the legacy
// types, Q8_K for the K-quants, see dot.go), and each block contributes an
// int32 sum scaled once by the two blocks' scales.
//
// Floating-point note: the reference quantizers compare rounded sums, so
// every product and sum here is written in float32 exactly as the C code
// orders it (Go rounds each float32 operation; nothing is fused on amd64).
package quant

import (
	"fmt"
	"math"

	"github.com/x448/float16"
)

// Type is a GGML tensor type; the values are the ids GGUF files store.
type Type uint32

const (
	F32     Type = 0
	F16     Type = 1
	Q4_0    Type = 2
	Q4_1    Type = 3
	Q5_0    Type = 6
	Q5_1    Type = 7
	Q8_0    Type = 8
	Q8_1    Type = 9
	Q2_K    Type = 10
	Q3_K    Type = 11
	Q4_K    Type = 12
	Q5_K    Type = 13
	Q6_K    Type = 14
	Q8_K    Type = 15
	IQ2_XXS Type = 16
	IQ2_XS  Type = 17
	IQ3_XXS Type = 18
	IQ1_S   Type = 19
	IQ4_NL  Type = 20
	IQ3_S   Type = 21
	IQ2_S   Type = 22
	IQ4_XS  Type = 23
	I8      Type = 24
	I16     Type = 25
	I32     Type = 26
	I64     Type = 27
	F64     Type = 28
	IQ1_M   Type = 29
	BF16    Type = 30
	TQ1_0   Type = 34
	TQ2_0   Type = 35
	MXFP4   Type = 39
)

// QK is the number of elements in a K-quant super-block.
const QK = 256

type traits struct {
	name        string
	block, size int // elements per block, bytes per block
}

var table = map[Type]traits{
	F32: {"F32", 1, 4}, F16: {"F16", 1, 2}, BF16: {"BF16", 1, 2},
	Q4_0: {"Q4_0", 32, 18}, Q4_1: {"Q4_1", 32, 20}, Q5_0: {"Q5_0", 32, 22}, Q5_1: {"Q5_1", 32, 24},
	Q8_0: {"Q8_0", 32, 34}, Q8_1: {"Q8_1", 32, 36},
	Q2_K: {"Q2_K", QK, 84}, Q3_K: {"Q3_K", QK, 110}, Q4_K: {"Q4_K", QK, 144}, Q5_K: {"Q5_K", QK, 176},
	Q6_K: {"Q6_K", QK, 210}, Q8_K: {"Q8_K", QK, 292},
	IQ2_XXS: {"IQ2_XXS", QK, 66}, IQ2_XS: {"IQ2_XS", QK, 74}, IQ3_XXS: {"IQ3_XXS", QK, 98},
	IQ1_S: {"IQ1_S", QK, 50}, IQ4_NL: {"IQ4_NL", 32, 18}, IQ3_S: {"IQ3_S", QK, 110},
	IQ2_S: {"IQ2_S", QK, 82}, IQ4_XS: {"IQ4_XS", QK, 136}, IQ1_M: {"IQ1_M", QK, 56},
	I8: {"I8", 1, 1}, I16: {"I16", 1, 2}, I32: {"I32", 1, 4}, I64: {"I64", 1, 8}, F64: {"F64", 1, 8},
	TQ1_0: {"TQ1_0", QK, 54}, TQ2_0: {"TQ2_0", QK, 66}, MXFP4: {"MXFP4", 32, 17},
}

// String returns llama.cpp's name of the type ("Q4_K").
func (t Type) String() string {
	if tr, ok := table[t]; ok {
		return tr.name
	}
	return fmt.Sprintf("ggml type %d", uint32(t))
}

// Known reports whether t is a GGML type id (read or not).
func (t Type) Known() bool { _, ok := table[t]; return ok }

// Block is the number of elements per block (1 for plain types).
func (t Type) Block() int { return table[t].block }

// BlockBytes is the size of one block in bytes.
func (t Type) BlockBytes() int { return table[t].size }

// Readable reports whether llmlab reads tensors of type t: the float
// types and the block types with a dequantizer here.
func (t Type) Readable() bool {
	switch t {
	case F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K:
		return true
	}
	return false
}

// Blocked reports whether t is one of the readable block types.
func (t Type) Blocked() bool { return t.Readable() && t.Block() > 1 }

// Writable reports whether Quantize produces t.
func (t Type) Writable() bool { return t.Blocked() }

// RowBytes is the size of a row of n elements, which must be a whole
// number of blocks.
func (t Type) RowBytes(n int) (int, error) {
	tr, ok := table[t]
	if !ok {
		return 0, fmt.Errorf("unknown ggml type %d", uint32(t))
	}
	if n%tr.block != 0 {
		return 0, fmt.Errorf("a row of %d elements is not a whole number of %v blocks of %d", n, t, tr.block)
	}
	return n / tr.block * tr.size, nil
}

// BitsPerWeight is the storage cost of one element.
func (t Type) BitsPerWeight() float64 {
	tr := table[t]
	return float64(8*tr.size) / float64(tr.block)
}

// Dequantize widens the blocks in src into dst: len(dst) must be a whole
// number of blocks and src exactly their bytes.
func Dequantize(t Type, dst []float32, src []byte) {
	bs, bb := t.Block(), t.BlockBytes()
	if bs <= 1 || len(dst)%bs != 0 || len(src) != len(dst)/bs*bb {
		panic(fmt.Sprintf("quant.Dequantize: %v: %d values from %d bytes", t, len(dst), len(src)))
	}
	// Direct calls, not a table of functions: an indirect call would make
	// dst escape, and the kernels widen blocks into buffers on the stack.
	for i := 0; i < len(dst)/bs; i++ {
		y, b := dst[i*bs:(i+1)*bs], src[i*bb:(i+1)*bb]
		switch t {
		case Q4_0:
			dequantQ4_0(y, b)
		case Q4_1:
			dequantQ4_1(y, b)
		case Q5_0:
			dequantQ5_0(y, b)
		case Q5_1:
			dequantQ5_1(y, b)
		case Q8_0:
			dequantQ8_0(y, b)
		case Q2_K:
			dequantQ2K(y, b)
		case Q3_K:
			dequantQ3K(y, b)
		case Q4_K:
			dequantQ4K(y, b)
		case Q5_K:
			dequantQ5K(y, b)
		case Q6_K:
			dequantQ6K(y, b)
		default:
			panic(fmt.Sprintf("quant.Dequantize: %v is not read", t))
		}
	}
}

// Quantize writes src as blocks of t into dst: len(src) must be a whole
// number of blocks and dst exactly their bytes.
func Quantize(t Type, dst []byte, src []float32) {
	bs, bb := t.Block(), t.BlockBytes()
	if bs <= 1 || len(src)%bs != 0 || len(dst) != len(src)/bs*bb {
		panic(fmt.Sprintf("quant.Quantize: %v: %d values into %d bytes", t, len(src), len(dst)))
	}
	f := quantFuncs[t]
	if f == nil {
		panic(fmt.Sprintf("quant.Quantize: %v is not written", t))
	}
	for i := 0; i < len(src)/bs; i++ {
		f(dst[i*bb:(i+1)*bb], src[i*bs:(i+1)*bs])
	}
}

var quantFuncs = map[Type]func(b []byte, x []float32){
	Q4_0: quantQ4_0, Q4_1: quantQ4_1, Q5_0: quantQ5_0, Q5_1: quantQ5_1, Q8_0: quantQ8_0,
	Q2_K: quantQ2K, Q3_K: quantQ3K, Q4_K: quantQ4K, Q5_K: quantQ5K, Q6_K: quantQ6K,
}

// f16 reads a little-endian half at b[0:2].
func f16(b []byte) float32 { return float16.Frombits(uint16(b[0]) | uint16(b[1])<<8).Float32() }

// putF16 writes f rounded to half (to nearest even, as GGML_FP32_TO_FP16).
func putF16(b []byte, f float32) {
	h := float16.Fromfloat32(f).Bits()
	b[0], b[1] = byte(h), byte(h>>8)
}

// roundF16 is f after a trip through half precision.
func roundF16(f float32) float32 { return float16.Fromfloat32(f).Float32() }

// nearestInt rounds to the nearest integer, ties to even (llama.cpp's
// nearest_int, which adds 1.5·2^23 in float32).
func nearestInt(f float32) int { return int(math.RoundToEven(float64(f))) }

func abs32(f float32) float32 { return math.Float32frombits(math.Float32bits(f) &^ (1 << 31)) }

func sqrt32(f float32) float32 { return float32(math.Sqrt(float64(f))) }
