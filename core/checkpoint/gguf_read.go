package checkpoint

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"strings"
	"unsafe"

	"llmlab/core/quant"
	"llmlab/core/tensor"
)

// Reading GGUF (versions 2 and 3) as a model source. The file is mapped,
// the header, metadata and tensor table are parsed with every count,
// length, dimension and offset checked against limits and the file size,
// and tensors are views of the mapped bytes: a quantized model stays as
// large in memory as its file, and only the pages a product touches are
// read. Errors name the file, the offset or tensor, and both numbers.

// Limits on what a header may claim; real files are far below them.
const (
	ggufMaxTensors = 1 << 20
	ggufMaxKV      = 1 << 20
	ggufMaxKey     = 1 << 16
	ggufMaxDims    = 4 // GGML_MAX_DIMS
	ggufMaxElems   = 1 << 48
)

// GGUFTensorInfo is one entry of a GGUF tensor table.
type GGUFTensorInfo struct {
	Name   string
	Shape  tensor.Shape // row-major, outermost first (GGUF lists them innermost first)
	Type   quant.Type
	Offset uint64 // from the start of the file
	Size   uint64 // bytes
}

// GGUF is an open GGUF file.
type GGUF struct {
	Path    string
	Version uint32
	KV      map[string]any // string, bool, uint32/int32/uint64/int64/float32/float64, or slices of them
	Keys    []string       // in file order
	Tensors []GGUFTensorInfo
	index   map[string]int
	data    []byte
	unmap   func() error
}

// OpenGGUF maps and validates a GGUF file. Close releases it; tensors
// returned by Tensor are views of the mapping and must not be used after.
func OpenGGUF(path string) (*GGUF, error) {
	data, unmap, err := mapFile(path)
	if err != nil {
		return nil, err
	}
	g, err := parseGGUF(path, data)
	if err != nil {
		if unmap != nil {
			unmap()
		}
		return nil, err
	}
	g.unmap = unmap
	return g, nil
}

// ParseGGUF reads a GGUF image held in memory (the browser build).
func ParseGGUF(name string, data []byte) (*GGUF, error) { return parseGGUF(name, data) }

// Close unmaps the file.
func (g *GGUF) Close() error {
	if g.unmap == nil {
		return nil
	}
	err := g.unmap()
	g.unmap, g.data = nil, nil
	return err
}

// FileSize is the size of the file in bytes.
func (g *GGUF) FileSize() int64 { return int64(len(g.data)) }

func parseGGUF(path string, data []byte) (*GGUF, error) {
	r := &ggufReader{b: data, path: path}
	if len(data) < 4 || string(data[:4]) != "GGUF" {
		return nil, &FormatError{File: path, Msg: "not a GGUF file (the first 4 bytes are not \"GGUF\")"}
	}
	r.pos = 4
	g := &GGUF{Path: path, KV: map[string]any{}, index: map[string]int{}, data: data}
	g.Version = r.u32()
	if r.err == nil && g.Version != 2 && g.Version != 3 {
		return nil, r.fail(fmt.Sprintf("GGUF version %d (llmlab reads versions 2 and 3)", g.Version))
	}
	nt, nkv := r.u64(), r.u64()
	if r.err != nil {
		return nil, r.err
	}
	if nt > ggufMaxTensors {
		return nil, r.fail(fmt.Sprintf("the header claims %d tensors (at most %d)", nt, ggufMaxTensors))
	}
	if nkv > ggufMaxKV {
		return nil, r.fail(fmt.Sprintf("the header claims %d metadata keys (at most %d)", nkv, ggufMaxKV))
	}
	for i := uint64(0); i < nkv && r.err == nil; i++ {
		k := r.str()
		if len(k) > ggufMaxKey {
			return nil, r.fail(fmt.Sprintf("metadata key %d is %d bytes long", i, len(k)))
		}
		v := r.value(r.u32(), 0)
		if r.err != nil {
			return nil, fmt.Errorf("key %q: %w", k, r.err)
		}
		if _, dup := g.KV[k]; dup {
			return nil, r.fail(fmt.Sprintf("metadata key %q appears twice", k))
		}
		g.KV[k] = v
		g.Keys = append(g.Keys, k)
	}
	align := uint64(ggufAlignment)
	if v, ok := g.KV["general.alignment"]; ok {
		a, ok := toU64(v)
		if !ok || a == 0 || a&(a-1) != 0 || a > 1<<20 {
			return nil, &FormatError{File: path, Msg: fmt.Sprintf("general.alignment %v is not a power of two up to 1 MiB", v)}
		}
		align = a
	}
	for i := uint64(0); i < nt && r.err == nil; i++ {
		var in GGUFTensorInfo
		in.Name = r.str()
		nd := r.u32()
		if r.err != nil {
			break
		}
		if nd == 0 || nd > ggufMaxDims {
			return nil, &FormatError{File: path, Tensor: in.Name, Msg: fmt.Sprintf("%d dimensions (want 1 to %d)", nd, ggufMaxDims)}
		}
		in.Shape = make(tensor.Shape, nd)
		n := uint64(1)
		for d := int(nd) - 1; d >= 0; d-- {
			v := r.u64()
			hi, lo := bits.Mul64(n, v)
			if v == 0 || hi != 0 || lo > ggufMaxElems {
				return nil, &FormatError{File: path, Tensor: in.Name, Msg: fmt.Sprintf("dimension %d of %d: size %d (elements must be 1 to 2^48)", int(nd)-1-d, nd, v)}
			}
			n = lo
			in.Shape[d] = int(v)
		}
		in.Type = quant.Type(r.u32())
		in.Offset = r.u64()
		if r.err != nil {
			break
		}
		if !in.Type.Known() {
			return nil, &FormatError{File: path, Tensor: in.Name, Msg: fmt.Sprintf("unknown ggml type %d", uint32(in.Type))}
		}
		rb, err := in.Type.RowBytes(in.Shape[nd-1])
		if err != nil {
			return nil, &FormatError{File: path, Tensor: in.Name, Msg: err.Error()}
		}
		in.Size = n / uint64(in.Shape[nd-1]) * uint64(rb)
		if in.Offset%align != 0 {
			return nil, &FormatError{File: path, Tensor: in.Name, Msg: fmt.Sprintf("data offset %d is not a multiple of the alignment %d", in.Offset, align)}
		}
		if _, dup := g.index[in.Name]; dup {
			return nil, &FormatError{File: path, Tensor: in.Name, Msg: "appears twice in the tensor table"}
		}
		g.index[in.Name] = len(g.Tensors)
		g.Tensors = append(g.Tensors, in)
	}
	if r.err != nil {
		return nil, r.err
	}
	base := (uint64(r.pos) + align - 1) / align * align
	size := uint64(len(data))
	for i := range g.Tensors {
		in := &g.Tensors[i]
		if in.Offset > size || base > size-in.Offset || in.Size > size-base-in.Offset {
			return nil, &FormatError{File: path, Tensor: in.Name, Msg: fmt.Sprintf("%v %v data [%d, +%d) runs past the end of the file (%d bytes)", in.Type, in.Shape, base+in.Offset, in.Size, size)}
		}
		in.Offset += base
	}
	return g, nil
}

// Info returns the table entry of a tensor.
func (g *GGUF) Info(name string) (GGUFTensorInfo, bool) {
	i, ok := g.index[name]
	if !ok {
		return GGUFTensorInfo{}, false
	}
	return g.Tensors[i], true
}

// Tensor returns the named tensor as a view of the file: F32, F16 and BF16
// as slices of the mapped bytes (copied when misaligned), block types as
// their raw blocks. Types llmlab does not read are an error naming them.
func (g *GGUF) Tensor(name string) (*tensor.Tensor, error) {
	in, ok := g.Info(name)
	if !ok {
		return nil, &FormatError{File: g.Path, Tensor: name, Msg: "no such tensor"}
	}
	dt, ok := tensor.FromGGML(in.Type)
	if !ok || !in.Type.Readable() {
		return nil, &FormatError{File: g.Path, Tensor: name, Msg: fmt.Sprintf("type %v is not supported (llmlab reads F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and Q2_K to Q6_K)", in.Type)}
	}
	b := g.data[in.Offset : in.Offset+in.Size]
	n := in.Shape.Numel()
	switch dt {
	case tensor.F32:
		t := &tensor.Tensor{Shape: in.Shape, DType: dt}
		if uintptr(unsafe.Pointer(&b[0]))%4 == 0 {
			t.F32 = unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), n)
		} else {
			t.F32 = make([]float32, n)
			for i := range t.F32 {
				t.F32[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			}
		}
		return t, nil
	case tensor.F16, tensor.BF16:
		t := &tensor.Tensor{Shape: in.Shape, DType: dt}
		if uintptr(unsafe.Pointer(&b[0]))%2 == 0 {
			t.Half = unsafe.Slice((*uint16)(unsafe.Pointer(&b[0])), n)
		} else {
			t.Half = make([]uint16, n)
			for i := range t.Half {
				t.Half[i] = binary.LittleEndian.Uint16(b[2*i:])
			}
		}
		return t, nil
	}
	t, err := tensor.FromBlocks(dt, b, in.Shape...)
	if err != nil {
		return nil, &FormatError{File: g.Path, Tensor: name, Msg: err.Error()}
	}
	return t, nil
}

// String returns a string value.
func (g *GGUF) String(key string) (string, bool) { s, ok := g.KV[key].(string); return s, ok }

// Uint returns an integer value of any width, if it is non-negative.
func (g *GGUF) Uint(key string) (uint64, bool) { return toU64(g.KV[key]) }

// Float returns a float value (or an integer one, widened).
func (g *GGUF) Float(key string) (float64, bool) {
	switch v := g.KV[key].(type) {
	case float32:
		return float64(v), true
	case float64:
		return v, true
	}
	u, ok := toU64(g.KV[key])
	return float64(u), ok
}

// Bool returns a bool value.
func (g *GGUF) Bool(key string) (bool, bool) { b, ok := g.KV[key].(bool); return b, ok }

// Strings returns a string array.
func (g *GGUF) Strings(key string) ([]string, bool) { s, ok := g.KV[key].([]string); return s, ok }

// Float32s returns a float array as float32.
func (g *GGUF) Float32s(key string) ([]float32, bool) {
	switch v := g.KV[key].(type) {
	case []float32:
		return v, true
	case []float64:
		out := make([]float32, len(v))
		for i, f := range v {
			out[i] = float32(f)
		}
		return out, true
	}
	return nil, false
}

// Int32s returns an integer array as int32 (token types, ids).
func (g *GGUF) Int32s(key string) ([]int32, bool) {
	switch v := g.KV[key].(type) {
	case []int32:
		return v, true
	case []uint32:
		out := make([]int32, len(v))
		for i, x := range v {
			out[i] = int32(x)
		}
		return out, true
	case []uint8:
		out := make([]int32, len(v))
		for i, x := range v {
			out[i] = int32(x)
		}
		return out, true
	case []int8:
		out := make([]int32, len(v))
		for i, x := range v {
			out[i] = int32(x)
		}
		return out, true
	}
	return nil, false
}

func toU64(v any) (uint64, bool) {
	switch x := v.(type) {
	case uint32:
		return uint64(x), true
	case uint64:
		return x, true
	case int32:
		return uint64(x), x >= 0
	case int64:
		return uint64(x), x >= 0
	case uint8:
		return uint64(x), true
	case uint16:
		return uint64(x), true
	case int8:
		return uint64(x), x >= 0
	case int16:
		return uint64(x), x >= 0
	}
	return 0, false
}

// Describe summarises the file for listings: architecture, name and the
// most common tensor type ("llama Q4_K_M-like": the file type when set).
func (g *GGUF) Describe() (arch, name, ftype string) {
	arch, _ = g.String("general.architecture")
	name, _ = g.String("general.name")
	if ft, ok := g.Uint("general.file_type"); ok {
		if s, ok := fileTypeNames[ft]; ok {
			return arch, name, s
		}
	}
	count := map[quant.Type]uint64{}
	var best quant.Type
	for _, t := range g.Tensors {
		if len(t.Shape) < 2 {
			continue
		}
		count[t.Type] += t.Size
		if count[t.Type] > count[best] {
			best = t.Type
		}
	}
	return arch, name, best.String()
}

// fileTypeNames are llama.cpp's general.file_type values (llama_ftype).
var fileTypeNames = map[uint64]string{
	0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
	10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M",
	16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 32: "BF16",
}

// FileTypeName is llama.cpp's name of a general.file_type value.
func FileTypeName(ft uint64) string {
	if s, ok := fileTypeNames[ft]; ok {
		return s
	}
	return fmt.Sprintf("file type %d", ft)
}

// FileTypeID is the general.file_type of a named mixture ("q4_k_m").
func FileTypeID(name string) (uint32, bool) {
	for id, s := range fileTypeNames {
		if strings.EqualFold(s, name) {
			return uint32(id), true
		}
	}
	return 0, false
}

// IsGGUF reports whether path is a regular file that starts with GGUF's
// magic (ollama's blobs have no extension).
func IsGGUF(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return false
	}
	var magic [4]byte
	_, err = io.ReadFull(f, magic[:])
	return err == nil && string(magic[:]) == "GGUF"
}
