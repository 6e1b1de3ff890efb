package checkpoint

import (
	"bufio"
	"encoding/binary"

	"fmt"
	"io"
	"math"
	"os"
	"sort"

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
		default:
			out.Abort()
			return fmt.Errorf("gguf: tensor %q: %v is not written (convert to F16 or F32)", t.Name, t.T.DType)
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

// ReadGGUF reads a GGUF file written with F32/F16 tensors, checking every
// count and offset against the file size.
func ReadGGUF(path string) (*GGUFFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r := &ggufReader{b: data, path: path}
	if string(r.bytes(4)) != "GGUF" {
		return nil, r.fail("not a GGUF file (bad magic)")
	}
	if v := r.u32(); v != 3 && v != 2 {
		return nil, r.fail(fmt.Sprintf("version %d not supported", v))
	}
	nt, nkv := r.u64(), r.u64()
	if nt > uint64(len(data)) || nkv > uint64(len(data)) {
		return nil, r.fail("tensor or key count larger than the file")
	}
	f := &GGUFFile{KV: map[string]any{}}
	for i := uint64(0); i < nkv && r.err == nil; i++ {
		k := r.str()
		f.KV[k] = r.value(r.u32())
	}
	type info struct {
		name  string
		shape tensor.Shape
		typ   uint32
		off   uint64
	}
	var infos []info
	for i := uint64(0); i < nt && r.err == nil; i++ {
		in := info{name: r.str()}
		nd := r.u32()
		if nd > 8 {
			return nil, r.fail(fmt.Sprintf("tensor %q has %d dimensions", in.name, nd))
		}
		in.shape = make(tensor.Shape, nd)
		for d := int(nd) - 1; d >= 0; d-- {
			v := r.u64()
			if v > 1<<40 {
				return nil, r.fail(fmt.Sprintf("tensor %q: dimension %d too large", in.name, v))
			}
			in.shape[d] = int(v)
		}
		in.typ, in.off = r.u32(), r.u64()
		infos = append(infos, in)
	}
	if r.err != nil {
		return nil, r.err
	}
	base := uint64((r.pos + ggufAlignment - 1) / ggufAlignment * ggufAlignment)
	for _, in := range infos {
		var dt tensor.DType
		switch in.typ {
		case GGMLTypeF32:
			dt = tensor.F32
		case GGMLTypeF16:
			dt = tensor.F16
		default:
			return nil, r.fail(fmt.Sprintf("tensor %q has type %d; only F32 and F16 are read", in.name, in.typ))
		}
		n := uint64(in.shape.Numel()) * uint64(dt.Size())
		if base+in.off > uint64(len(data)) || n > uint64(len(data))-base-in.off {
			return nil, r.fail(fmt.Sprintf("tensor %q: data [%d, +%d) outside the file of %d bytes", in.name, base+in.off, n, len(data)))
		}
		raw := data[base+in.off : base+in.off+n]
		t := tensor.NewOf(dt, in.shape...)
		if dt == tensor.F32 {
			for i := range t.F32 {
				t.F32[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			}
		} else {
			for i := range t.Half {
				t.Half[i] = binary.LittleEndian.Uint16(raw[2*i:])
			}
		}
		f.Tensors = append(f.Tensors, Named{Name: in.name, T: t})
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

func (r *ggufReader) value(typ uint32) any {
	switch typ {
	case ggufUint8, ggufInt8, ggufBool:
		v := r.bytes(1)[0]
		if typ == ggufBool {
			return v != 0
		}
		return uint32(v)
	case ggufUint16, ggufInt16:
		return uint32(binary.LittleEndian.Uint16(r.bytes(2)))
	case ggufUint32:
		return r.u32()
	case ggufInt32:
		return int32(r.u32())
	case ggufFloat32:
		return math.Float32frombits(r.u32())
	case ggufUint64, ggufInt64:
		return r.u64()
	case ggufFloat64:
		return math.Float64frombits(r.u64())
	case ggufString:
		return r.str()
	case ggufArray:
		et, n := r.u32(), r.u64()
		if n > uint64(len(r.b)) {
			r.fail("array longer than the file")
			return nil
		}
		switch et {
		case ggufString:
			out := make([]string, 0, n)
			for i := uint64(0); i < n && r.err == nil; i++ {
				out = append(out, r.str())
			}
			return out
		case ggufInt32:
			out := make([]int32, 0, n)
			for i := uint64(0); i < n && r.err == nil; i++ {
				out = append(out, int32(r.u32()))
			}
			return out
		case ggufFloat32:
			out := make([]float32, 0, n)
			for i := uint64(0); i < n && r.err == nil; i++ {
				out = append(out, math.Float32frombits(r.u32()))
			}
			return out
		}
		r.fail(fmt.Sprintf("array of type %d not read", et))
		return nil
	}
	r.fail(fmt.Sprintf("value type %d unknown", typ))
	return nil
}
