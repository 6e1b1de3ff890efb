// Package tensor holds the engine's one data type, Tensor, and the Backend
// interface: a small set of coarse, fused kernels (matmul, norms, activations,
// RoPE, attention, cross-entropy, AdamW), each with its backward pass.
//
// A Tensor is a concrete struct with flat row-major storage, like image.RGBA:
// float32 for compute, and float16/bfloat16 for frozen weights, which kernels
// widen as they read them (never up front). Shapes are plain []int; kernels
// view a tensor as a matrix of Rows() x Cols() (the last dimension is Cols).
//
// # Storage
//
// A tensor's data lives in exactly one place, which the tensor knows:
//
//   - on the host: F32 (DType F32), Half (F16, BF16) or Q and Scale (the
//     quantized types: codes or raw block bytes, and their scales). This is
//     what the CPU, BLAS and Vulkan backends use, and it is unchanged: the
//     fields are plain slices, read and written in place.
//   - in a backend's device memory: Dev (a Memory and an address), every
//     host slice nil. Backends that implement Memory (storage.go) make
//     these: the autograd arena's slab, parameters moved there by a tape,
//     optimizer moments, the KV cache. OnDevice tells them apart.
//
// Kernels take whatever they are given: a device backend uses its own
// device tensors in place and copies host ones in for the call. Host code
// that reads data goes through the edges: Host (a host copy), Copy, Fill,
// CopyCols, and the methods below (At, Float32s, Bytes, Zero, Clone), which
// all work on device tensors too, through the Memory, at the cost of a copy
// and a wait. Reading .F32 of a device tensor finds nil: code on the hot
// path of training and decoding must not, and does not.
//
// A new storage type (GGUF blocks such as Q4_K or Q8_0) is a new DType
// whose host storage is its raw block bytes in Q (Scale unused) and whose
// device storage is the same bytes; Size, StorageBytes and the dequantise
// path (quant.go) are the places that learn it.
//
// The CPU backend (cpu*.go) is always available. It parallelises over rows,
// heads or tiles with a fixed split that does not depend on the number of
// threads, so every result is bit-identical whatever GOMAXPROCS is.
package tensor

import (
	"fmt"
	"math"
	"strings"
	"unsafe"

	"github.com/x448/float16"
)

// DType is the element type of a tensor's storage.
type DType uint8

const (
	F32  DType = iota // float32, the compute type
	F16               // IEEE half, storage only
	BF16              // bfloat16, storage only
	Q8                // int8 per output channel, storage only (quant.go)
	NF4               // 4-bit NormalFloat in blocks of 64, storage only (quant.go)
)

// Size is the number of bytes of one element.
func (d DType) Size() int {
	switch d {
	case F32:
		return 4
	case Q8, NF4:
		return 1 // NF4: half a byte, rounded up
	}
	if d.isGGML() {
		return 1 // GGML blocks: under a byte, rounded up
	}
	return 2
}

// String returns the safetensors name of the type ("F32", "F16", "BF16").
func (d DType) String() string {
	switch d {
	case F32:
		return "F32"
	case F16:
		return "F16"
	case BF16:
		return "BF16"
	case Q8:
		return "Q8"
	case NF4:
		return "NF4"
	}
	if g, ok := d.GGML(); ok {
		return g.String()
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

// ParseDType accepts the safetensors names, case-insensitively.
func ParseDType(s string) (DType, error) {
	switch strings.ToUpper(s) {
	case "F32", "FLOAT32":
		return F32, nil
	case "F16", "FLOAT16":
		return F16, nil
	case "BF16", "BFLOAT16":
		return BF16, nil
	}
	return 0, fmt.Errorf("unsupported dtype %q (want F32, F16 or BF16)", s)
}

// Shape lists a tensor's dimensions, outermost first.
type Shape []int

// Numel is the number of elements (1 for a scalar shape).
func (s Shape) Numel() int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// Equal reports whether two shapes are identical.
func (s Shape) Equal(o Shape) bool {
	if len(s) != len(o) {
		return false
	}
	for i := range s {
		if s[i] != o[i] {
			return false
		}
	}
	return true
}

func (s Shape) String() string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// Tensor is a dense row-major array. Exactly one storage holds the data:
// on the host, F32 or Half or Q (with Scale) according to DType; or, when
// Dev is set, a backend's device memory (see the package doc).
type Tensor struct {
	Shape Shape
	DType DType
	F32   []float32 // data when DType == F32
	Half  []uint16  // raw bits when DType == F16 or BF16
	Q     []byte    // codes when DType is Q8 or NF4
	Scale []float32 // their scales: per row (Q8) or per block of 64 (NF4)
	Dev   Device    // device storage (then the slices above are nil)
}

// New returns a zeroed float32 tensor.
func New(shape ...int) *Tensor {
	s := Shape(append([]int(nil), shape...))
	return &Tensor{Shape: s, DType: F32, F32: make([]float32, s.Numel())}
}

// NewOf returns a zeroed tensor of the given type.
func NewOf(dt DType, shape ...int) *Tensor {
	if dt == F32 {
		return New(shape...)
	}
	s := Shape(append([]int(nil), shape...))
	return &Tensor{Shape: s, DType: dt, Half: make([]uint16, s.Numel())}
}

// FromF32 wraps data (not copied) as a float32 tensor of the given shape.
// It panics if the sizes disagree: that is a programming error.
func FromF32(data []float32, shape ...int) *Tensor {
	s := Shape(append([]int(nil), shape...))
	if s.Numel() != len(data) {
		panic(fmt.Sprintf("tensor.FromF32: %d values for shape %v", len(data), s))
	}
	return &Tensor{Shape: s, DType: F32, F32: data}
}

// Numel is the number of elements.
func (t *Tensor) Numel() int { return t.Shape.Numel() }

// Cols is the size of the last dimension.
func (t *Tensor) Cols() int {
	if len(t.Shape) == 0 {
		return 1
	}
	return t.Shape[len(t.Shape)-1]
}

// Rows is the product of all dimensions but the last.
func (t *Tensor) Rows() int {
	c := t.Cols()
	if c == 0 {
		return 0
	}
	return t.Numel() / c
}

// At returns element i (flat index), widened to float32.
func (t *Tensor) At(i int) float32 {
	if t.OnDevice() {
		return t.Host().At(i) // an edge: tests and logging, never a loop
	}
	switch t.DType {
	case F16:
		return float16.Frombits(t.Half[i]).Float32()
	case BF16:
		return BF16ToF32(t.Half[i])
	case F32:
		return t.F32[i]
	}
	var v [1]float32
	dequant(v[:], t, i)
	return v[0]
}

// Float32s returns the data widened to float32: the tensor's own slice when
// it is already F32, else a new copy.
func (t *Tensor) Float32s() []float32 {
	if t.OnDevice() {
		return t.Host().Float32s()
	}
	if t.DType == F32 {
		return t.F32
	}
	out := make([]float32, t.Numel())
	WidenRow(out, t, 0)
	return out
}

// WidenRow writes len(dst) elements of t starting at flat offset off into
// dst as float32. It is how kernels read half-precision weights.
func WidenRow(dst []float32, t *Tensor, off int) {
	if t.OnDevice() {
		t = t.Host()
	}
	switch t.DType {
	case F32:
		copy(dst, t.F32[off:off+len(dst)])
	case F16:
		src := t.Half[off : off+len(dst)]
		for i, h := range src {
			dst[i] = float16.Frombits(h).Float32()
		}
	case BF16:
		src := t.Half[off : off+len(dst)]
		for i, h := range src {
			dst[i] = math.Float32frombits(uint32(h) << 16)
		}
	default: // Q8, NF4 and the GGML block types (ggml.go)
		dequant(dst, t, off)
	}
}

// BF16ToF32 widens one bfloat16 value.
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// F32ToBF16 narrows with round-to-nearest-even (NaN stays NaN).
func F32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// Convert returns a copy of t stored as dt.
func (t *Tensor) Convert(dt DType) *Tensor {
	if dt == t.DType {
		return t.Clone()
	}
	if dt.Quantized() {
		q, err := Quantize(t, dt)
		if err != nil {
			panic(err)
		}
		return q
	}
	src := t.Float32s()
	out := NewOf(dt, t.Shape...)
	switch dt {
	case F32:
		copy(out.F32, src)
	case F16:
		for i, f := range src {
			out.Half[i] = float16.Fromfloat32(f).Bits()
		}
	case BF16:
		for i, f := range src {
			out.Half[i] = F32ToBF16(f)
		}
	}
	return out
}

// Clone returns a deep copy; of a device tensor, a copy on the host.
func (t *Tensor) Clone() *Tensor {
	if t.OnDevice() {
		return t.Host()
	}
	out := &Tensor{Shape: append(Shape(nil), t.Shape...), DType: t.DType}
	if t.F32 != nil {
		out.F32 = append([]float32(nil), t.F32...)
	}
	if t.Half != nil {
		out.Half = append([]uint16(nil), t.Half...)
	}
	if t.Q != nil {
		out.Q = append([]byte(nil), t.Q...)
		out.Scale = append([]float32(nil), t.Scale...)
	}
	return out
}

// Zero sets every element to 0.
func (t *Tensor) Zero() {
	if t.OnDevice() {
		t.Dev.Mem.Fill(t, 0)
		return
	}
	clear(t.F32)
	clear(t.Half)
}

// Bytes returns the storage as little-endian bytes, without copying; of a
// device tensor, a copy from the device.
func (t *Tensor) Bytes() []byte {
	if t.OnDevice() {
		return t.Host().Bytes()
	}
	if t.DType.isGGML() {
		return t.Q
	}
	if t.DType == F32 {
		if len(t.F32) == 0 {
			return nil
		}
		return unsafe.Slice((*byte)(unsafe.Pointer(&t.F32[0])), 4*len(t.F32))
	}
	if len(t.Half) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&t.Half[0])), 2*len(t.Half))
}

// Reshape returns a tensor sharing t's storage with a new shape of the same
// number of elements.
func (t *Tensor) Reshape(shape ...int) *Tensor {
	s := Shape(append([]int(nil), shape...))
	if s.Numel() != t.Numel() {
		panic(fmt.Sprintf("tensor.Reshape: %v to %v", t.Shape, s))
	}
	if (t.DType == Q8 || t.DType.isGGML()) && len(s) > 0 && s[len(s)-1] != t.Cols() {
		panic(fmt.Sprintf("tensor.Reshape: Q8 %v to %v changes the rows its scales belong to", t.Shape, s))
	}
	return &Tensor{Shape: s, DType: t.DType, F32: t.F32, Half: t.Half, Q: t.Q, Scale: t.Scale, Dev: t.Dev}
}

func (t *Tensor) String() string { return fmt.Sprintf("Tensor(%v %v)", t.DType, t.Shape) }
