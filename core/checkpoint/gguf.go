package checkpoint

import (
	"bufio"
	"encoding/binary"

	"fmt"
	"io"
	"math"
	"sort"

	"llmlab/core/quant"
	"llmlab/core/tensor"
)

// GGUF is the file format of llama.cpp and ollama: a header, typed
// key/value metadata, tensor descriptions and aligned tensor data. This
// file writes version 3 files and reads them back (for checks), trusting
// no count or size in them.

// GGUF value types.
const (
	ggufUint8   = 0
	ggufInt8    = 1
	ggufUint16  = 2
	ggufInt16   = 3
	ggufUint32  = 4
	ggufInt32   = 5
	ggufFloat32 = 6
	ggufBool    = 7
	ggufString  = 8
	ggufArray   = 9
	ggufUint64  = 10
	ggufInt64   = 11
	ggufFloat64 = 12
)

// GGUF tensor types we write.
const (
	GGMLTypeF32 = 0
	GGMLTypeF16 = 1
)

const ggufAlignment = 32

// GGUFFile is the content of a GGUF file: metadata values are string,
// uint32, int32, float32, bool, uint64, []string, []int32 or []float32.
type GGUFFile struct {
	KV      map[string]any
	Tensors []Named // shapes row-major as in llmlab (GGUF stores them reversed)
}

// WriteGGUF writes f to path atomically. Keys are written sorted, with
// general.architecture first as llama.cpp expects.
func WriteGGUF(path string, f *GGUFFile) error {
	out, err := CreateAtomic(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(out, 1<<20)
	le := binary.LittleEndian
	put := func(v any) { binary.Write(w, le, v) }
	str := func(s string) { put(uint64(len(s))); w.WriteString(s) }
	w.WriteString("GGUF")
	put(uint32(3))
	put(uint64(len(f.Tensors)))
	put(uint64(len(f.KV)))
	keys := make([]string, 0, len(f.KV))
	for k := range f.KV {
		if k != "general.architecture" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if _, ok := f.KV["general.architecture"]; ok {
		keys = append([]string{"general.architecture"}, keys...)
	}
	for _, k := range keys {
		str(k)
		switch v := f.KV[k].(type) {
		case string:
			put(uint32(ggufString))
			str(v)
		case uint32:
			put(uint32(ggufUint32))
			put(v)
		case int32:
			put(uint32(ggufInt32))
			put(v)
		case float32:
			put(uint32(ggufFloat32))
			put(v)
		case bool:
			put(uint32(ggufBool))
			put(v)
		case uint64:
			put(uint32(ggufUint64))
			put(v)
		case []string:
			put(uint32(ggufArray))
			put(uint32(ggufString))
			put(uint64(len(v)))
			for _, s := range v {
				str(s)
			}
		case []int32:
			put(uint32(ggufArray))
			put(uint32(ggufInt32))
			put(uint64(len(v)))
			put(v)
		case []uint32:
			put(uint32(ggufArray))
			put(uint32(ggufUint32))
			put(uint64(len(v)))
			put(v)
		case int64:
			put(uint32(ggufInt64))
			put(v)
		case float64:
			put(uint32(ggufFloat64))
			put(v)
		case []float32:
			put(uint32(ggufArray))
			put(uint32(ggufFloat32))
			put(uint64(len(v)))
			put(v)
		default:
			out.Abort()
			return fmt.Errorf("gguf: key %q has unsupported type %T", k, v)
		}
	}
	var off uint64
	for _, t := range f.Tensors {
		str(t.Name)
		put(uint32(len(t.T.Shape)))
		for i := len(t.T.Shape) - 1; i >= 0; i-- { // GGUF lists the innermost dimension first
			put(uint64(t.T.Shape[i]))
		}
		switch t.T.DType {
		case tensor.F32:
			put(uint32(GGMLTypeF32))
		case tensor.F16:
			put(uint32(GGMLTypeF16))
		case tensor.BF16:
			put(uint32(quant.BF16))
		default:
			qt, ok := t.T.DType.GGML()
			if !ok {
				out.Abort()
				return fmt.Errorf("gguf: tensor %q: %v is not written (convert to F32, F16, BF16 or a GGML block type)", t.Name, t.T.DType)
			}
			put(uint32(qt))
		}
		put(off)
		off += uint64(len(t.T.Bytes()))
		off = (off + ggufAlignment - 1) / ggufAlignment * ggufAlignment
	}
	if err := w.Flush(); err != nil {
		out.Abort()
		return err
	}
	pos, _ := out.Seek(0, io.SeekCurrent)
	pad := func(n int64) { w.Write(make([]byte, (ggufAlignment-n%ggufAlignment)%ggufAlignment)) }
	pad(pos)
	for _, t := range f.Tensors {
		b := t.T.Bytes()
		w.Write(b)
		pad(int64(len(b)))
	}
	if err := w.Flush(); err != nil {
		out.Abort()
		return err
	}
	if err := out.Chmod(0o644); err != nil {
		out.Abort()
		return err
	}
	return out.Commit()
}

// ReadGGUF reads a whole GGUF file into memory (tensors copied out of
// the file, of any type llmlab reads), checking every count and offset
// against the file size. Models are opened with OpenGGUF instead.
func ReadGGUF(path string) (*GGUFFile, error) {
	g, err := OpenGGUF(path)
	if err != nil {
		return nil, err
	}
	defer g.Close()
	f := &GGUFFile{KV: g.KV}
	for _, in := range g.Tensors {
		t, err := g.Tensor(in.Name)
		if err != nil {
			return nil, err
		}
		f.Tensors = append(f.Tensors, Named{Name: in.Name, T: t.Clone()})
	}
	return f, nil
}

type ggufReader struct {
	b    []byte
	pos  int
	err  error
	path string
}

func (r *ggufReader) fail(msg string) error {
	if r.err == nil {
		r.err = fmt.Errorf("%s: offset %d: %s", r.path, r.pos, msg)
	}
	return r.err
}

func (r *ggufReader) bytes(n uint64) []byte {
	if r.err != nil || n > uint64(len(r.b)-r.pos) {
		r.fail("unexpected end of file")
		return make([]byte, n&0xffff)
	}
	b := r.b[r.pos : r.pos+int(n)]
	r.pos += int(n)
	return b
}

func (r *ggufReader) u32() uint32 { return binary.LittleEndian.Uint32(r.bytes(4)) }
func (r *ggufReader) u64() uint64 { return binary.LittleEndian.Uint64(r.bytes(8)) }
func (r *ggufReader) str() string {
	n := r.u64()
	if n > 1<<24 {
		r.fail("string longer than 16 MiB")
		return ""
	}
	return string(r.bytes(n))
}

// value reads one metadata value of type typ. Integers keep their width
// and signedness (uint8 ... int64); arrays become slices of the element
// type, nested arrays []any (depth at most 2).
func (r *ggufReader) value(typ uint32, depth int) any {
	switch typ {
	case ggufUint8:
		return r.bytes(1)[0]
	case ggufInt8:
		return int8(r.bytes(1)[0])
	case ggufBool:
		return r.bytes(1)[0] != 0
	case ggufUint16:
		return binary.LittleEndian.Uint16(r.bytes(2))
	case ggufInt16:
		return int16(binary.LittleEndian.Uint16(r.bytes(2)))
	case ggufUint32:
		return r.u32()
	case ggufInt32:
		return int32(r.u32())
	case ggufFloat32:
		return math.Float32frombits(r.u32())
	case ggufUint64:
		return r.u64()
	case ggufInt64:
		return int64(r.u64())
	case ggufFloat64:
		return math.Float64frombits(r.u64())
	case ggufString:
		return r.str()
	case ggufArray:
		et, n := r.u32(), r.u64()
		if r.err != nil {
			return nil
		}
		// Every element takes at least one byte: a longer array cannot
		// fit in the rest of the file.
		if n > uint64(len(r.b)-r.pos) {
			r.fail(fmt.Sprintf("array of %d elements longer than the rest of the file (%d bytes)", n, len(r.b)-r.pos))
			return nil
		}
		if et == ggufArray && depth >= 1 {
			r.fail("arrays nested more than two deep")
			return nil
		}
		return readArray(r, et, n, depth)
	}
	r.fail(fmt.Sprintf("value type %d unknown", typ))
	return nil
}

func readArray(r *ggufReader, et uint32, n uint64, depth int) any {
	switch et {
	case ggufUint8:
		return arrayOf(r, n, func() uint8 { return r.bytes(1)[0] })
	case ggufInt8:
		return arrayOf(r, n, func() int8 { return int8(r.bytes(1)[0]) })
	case ggufBool:
		return arrayOf(r, n, func() bool { return r.bytes(1)[0] != 0 })
	case ggufUint16:
		return arrayOf(r, n, func() uint16 { return binary.LittleEndian.Uint16(r.bytes(2)) })
	case ggufInt16:
		return arrayOf(r, n, func() int16 { return int16(binary.LittleEndian.Uint16(r.bytes(2))) })
	case ggufUint32:
		return arrayOf(r, n, r.u32)
	case ggufInt32:
		return arrayOf(r, n, func() int32 { return int32(r.u32()) })
	case ggufFloat32:
		return arrayOf(r, n, func() float32 { return math.Float32frombits(r.u32()) })
	case ggufUint64:
		return arrayOf(r, n, r.u64)
	case ggufInt64:
		return arrayOf(r, n, func() int64 { return int64(r.u64()) })
	case ggufFloat64:
		return arrayOf(r, n, func() float64 { return math.Float64frombits(r.u64()) })
	case ggufString:
		return arrayOf(r, n, r.str)
	case ggufArray:
		return arrayOf(r, n, func() any { return r.value(ggufArray, depth+1) })
	}
	r.fail(fmt.Sprintf("array of value type %d unknown", et))
	return nil
}

// arrayOf reads n elements, stopping at the first error.
func arrayOf[T any](r *ggufReader, n uint64, next func() T) []T {
	out := make([]T, 0, min(n, 1<<16)) // grows as the file delivers
	for i := uint64(0); i < n && r.err == nil; i++ {
		out = append(out, next())
	}
	return out
}
