package model

import (
	"fmt"
	"strings"

	"llmlab/core/checkpoint"
	"llmlab/core/quant"
	"llmlab/core/tensor"
)

// GGUFQuant is an export type: one tensor type for every matrix, or one of
// llama.cpp's mixtures (_M), which give the tensors that matter most more
// bits. The choices follow llama.cpp's llama_tensor_get_type without an
// importance matrix, so a file exported here has the types llama-quantize
// would give the same model.
type GGUFQuant int

const (
	QuantF32 GGUFQuant = iota
	QuantF16
	QuantBF16
	QuantQ8_0
	QuantQ6_K
	QuantQ5_K_M
	QuantQ4_K_M
	QuantQ4_0
)

var ggufQuantNames = []string{"f32", "f16", "bf16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0"}

func (q GGUFQuant) String() string { return ggufQuantNames[q] }

// ParseGGUFQuant accepts the names above, case-insensitively.
func ParseGGUFQuant(s string) (GGUFQuant, error) {
	for i, n := range ggufQuantNames {
		if strings.EqualFold(s, n) {
			return GGUFQuant(i), nil
		}
	}
	return 0, fmt.Errorf("unknown GGUF type %q (want %s)", s, strings.Join(ggufQuantNames, ", "))
}

// fileType is llama.cpp's general.file_type of the mixture.
func (q GGUFQuant) fileType() uint32 {
	return [...]uint32{0, 1, 32, 7, 18, 17, 15, 2}[q]
}

// base is the type of an ordinary matrix.
func (q GGUFQuant) base() tensor.DType {
	return [...]tensor.DType{tensor.F32, tensor.F16, tensor.BF16, tensor.Q8_0, tensor.Q6_K, tensor.Q5_K, tensor.Q4_K, tensor.Q4_0}[q]
}

// useMoreBits is llama.cpp's choice of layers that get more bits in the _M
// mixtures: the first and last eighth, and every third layer between.
func useMoreBits(layer, layers int) bool {
	return layer < layers/8 || layer >= 7*layers/8 || (layer-layers/8)%3 == 2
}

// TensorType is the type q gives the GGUF tensor name of shape (rows,
// cols), in a model of the given layers, tied says whether token_embd is
// also the output: 1-D tensors stay F32; the output matrix gets Q6_K
// (unless the whole file is Q8_0 or float); attn_v and ffn_down of the
// useMoreBits layers get Q6_K in Q4_K_M and Q5_K_M (a fused qkv counts as
// attn_v). Rows that are not whole K-quant blocks fall back as llama.cpp's
// do (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0), and to F16 when they are
// not whole blocks of 32 either.
func (q GGUFQuant) TensorType(name string, shape tensor.Shape, layers int, tied bool) tensor.DType {
	if len(shape) < 2 {
		return tensor.F32
	}
	dt := q.base()
	if _, ok := dt.GGML(); !ok {
		return dt
	}
	layer := -1
	if rest, ok := strings.CutPrefix(name, "blk."); ok {
		fmt.Sscanf(rest, "%d.", &layer)
	}
	switch {
	case name == "output.weight" || (tied && name == "token_embd.weight"):
		if dt != tensor.Q8_0 {
			dt = tensor.Q6_K
		}
	case strings.HasSuffix(name, "attn_v.weight"), strings.HasSuffix(name, "attn_qkv.weight"),
		strings.Contains(name, "ffn_down"):
		if (q == QuantQ4_K_M || q == QuantQ5_K_M) && useMoreBits(layer, layers) {
			dt = tensor.Q6_K
		}
	}
	cols := shape[len(shape)-1]
	if g, _ := dt.GGML(); cols%g.Block() != 0 {
		switch dt {
		case tensor.Q4_K:
			dt = tensor.Q5_0
		case tensor.Q5_K:
			dt = tensor.Q5_1
		case tensor.Q6_K:
			dt = tensor.Q8_0
		}
		if g, _ := dt.GGML(); cols%g.Block() != 0 {
			dt = tensor.F16
		}
	}
	return dt
}

// QuantStats reports an export: bytes and elements of the matrices, and
// of those whose rows are whole K-quant blocks (where the mixture's types
// apply without fallbacks).
type QuantStats struct {
	Types              map[string]int // tensors per type
	Elems, Bytes       int64          // every tensor
	BlockElems, Blocks int64          // matrices with rows a multiple of 256
}

// BitsPerWeight over every tensor, and over the matrices whose rows are
// whole K-quant blocks.
func (s QuantStats) BitsPerWeight() (all, whole float64) {
	all = 8 * float64(s.Bytes) / float64(max(1, s.Elems))
	whole = 8 * float64(s.Blocks) / float64(max(1, s.BlockElems))
	return all, whole
}

// GGUFQuantized converts the model for llama.cpp and ollama as GGUF does,
// with tensor types chosen by q.
func (m *Transformer) GGUFQuantized(v Vocab, name string, q GGUFQuant) (*checkpoint.GGUFFile, QuantStats, error) {
	st := QuantStats{Types: map[string]int{}}
	f, err := m.GGUF(v, name, tensor.F32)
	if err != nil {
		return nil, st, err
	}
	f.KV["general.file_type"] = q.fileType()
	if _, ok := q.base().GGML(); ok {
		f.KV["general.quantization_version"] = uint32(2)
	}
	tied := true
	for _, t := range f.Tensors {
		if t.Name == "output.weight" {
			tied = false
		}
	}
	for i, t := range f.Tensors {
		dt := q.TensorType(t.Name, t.T.Shape, m.Cfg.Layers, tied)
		if dt != t.T.DType {
			t.T = t.T.Convert(dt)
			f.Tensors[i] = t
		}
		n, b := int64(t.T.Numel()), int64(len(t.T.Bytes()))
		st.Types[dt.String()]++
		st.Elems += n
		st.Bytes += b
		if len(t.T.Shape) == 2 && t.T.Cols()%quant.QK == 0 {
			st.BlockElems += n
			st.Blocks += b
		}
	}
	return f, st, nil
}
