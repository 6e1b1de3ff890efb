package tensor

import (
	"fmt"

	"llmlab/core/quant"
)

// GGML block types: frozen weights stored as GGUF stores them, the raw
// blocks of core/quant in Tensor.Q (Scale unused), row after row. A row
// (the last dimension) must be a whole number of blocks, as in GGUF.
// Kernels read them two ways: the packed GEMM and the embedding widen
// them a block at a time (dequant), and the M = 1 product (generation)
// runs on integers against the activation quantized per block (gemv.go),
// as llama.cpp does.
const (
	Q4_0 DType = 16 + iota // 32-element blocks, 4.5 bits per weight
	Q4_1                   // 5.0
	Q5_0                   // 5.5
	Q5_1                   // 6.0
	Q8_0                   // 8.5
	Q2_K                   // 256-element super-blocks, 2.625
	Q3_K                   // 3.4375
	Q4_K                   // 4.5
	Q5_K                   // 5.5
	Q6_K                   // 6.5625
)

var ggmlTypes = [...]quant.Type{quant.Q4_0, quant.Q4_1, quant.Q5_0, quant.Q5_1, quant.Q8_0,
	quant.Q2_K, quant.Q3_K, quant.Q4_K, quant.Q5_K, quant.Q6_K}

// GGML returns the GGML type of a block DType.
func (d DType) GGML() (quant.Type, bool) {
	if d >= Q4_0 && int(d-Q4_0) < len(ggmlTypes) {
		return ggmlTypes[d-Q4_0], true
	}
	return 0, false
}

// FromGGML returns the DType that stores GGML type t: F32, F16, BF16 or a
// block type.
func FromGGML(t quant.Type) (DType, bool) {
	switch t {
	case quant.F32:
		return F32, true
	case quant.F16:
		return F16, true
	case quant.BF16:
		return BF16, true
	}
	for i, g := range ggmlTypes {
		if g == t {
			return Q4_0 + DType(i), true
		}
	}
	return 0, false
}

// isGGML reports whether d is one of the block types above.
func (d DType) isGGML() bool { _, ok := d.GGML(); return ok }

// FromBlocks wraps raw GGML blocks (not copied: they may be a mapped
// file) as a tensor of the given shape.
func FromBlocks(dt DType, blocks []byte, shape ...int) (*Tensor, error) {
	qt, ok := dt.GGML()
	if !ok {
		return nil, fmt.Errorf("tensor.FromBlocks: %v is not a GGML block type", dt)
	}
	s := Shape(append([]int(nil), shape...))
	if len(s) == 0 {
		return nil, fmt.Errorf("tensor.FromBlocks: a %v tensor needs a shape", dt)
	}
	rb, err := qt.RowBytes(s[len(s)-1])
	if err != nil {
		return nil, err
	}
	rows := 1
	for _, d := range s[:len(s)-1] {
		rows *= d
	}
	if want := rows * rb; len(blocks) != want {
		return nil, fmt.Errorf("tensor.FromBlocks: %v %v needs %d bytes, got %d", dt, s, want, len(blocks))
	}
	return &Tensor{Shape: s, DType: dt, Q: blocks}, nil
}

// QuantizeGGML returns t stored as the GGML block type dt, quantized with
// llama.cpp's reference quantizers.
func QuantizeGGML(t *Tensor, dt DType) (*Tensor, error) {
	qt, ok := dt.GGML()
	if !ok {
		return nil, fmt.Errorf("tensor.QuantizeGGML: %v is not a GGML block type", dt)
	}
	rb, err := qt.RowBytes(t.Cols())
	if err != nil {
		return nil, fmt.Errorf("tensor.QuantizeGGML: %v: %w", t.Shape, err)
	}
	out := &Tensor{Shape: append(Shape(nil), t.Shape...), DType: dt, Q: make([]byte, t.Rows()*rb)}
	cols := t.Cols()
	row := make([]float32, cols)
	for r := 0; r < t.Rows(); r++ {
		WidenRow(row, t, r*cols)
		quant.Quantize(qt, out.Q[r*rb:(r+1)*rb], row)
	}
	return out, nil
}

// dequantGGML writes len(dst) elements of the block tensor t from flat
// offset off: whole blocks straight into dst, partial ones through a
// block on the stack.
func dequantGGML(dst []float32, t *Tensor, off int) {
	qt, _ := t.DType.GGML()
	bs, bb := qt.Block(), qt.BlockBytes()
	var buf [quant.QK]float32
	for i := 0; i < len(dst); {
		j := off + i
		blk, in := j/bs, j%bs
		if in == 0 && len(dst)-i >= bs {
			n := (len(dst) - i) / bs
			quant.Dequantize(qt, dst[i:i+n*bs], t.Q[blk*bb:(blk+n)*bb])
			i += n * bs
			continue
		}
		quant.Dequantize(qt, buf[:bs], t.Q[blk*bb:(blk+1)*bb])
		m := min(bs-in, len(dst)-i)
		copy(dst[i:i+m], buf[in:in+m])
		i += m
	}
}
