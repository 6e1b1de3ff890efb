package checkpoint

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/bits"

	"sort"
	"unsafe"

	"llmlab/core/tensor"
)

// MaxHeader bounds the JSON header of a safetensors file.
const MaxHeader = 100 << 20

// Named is a tensor with its name, for writing.
type Named struct {
	Name string
	T    *tensor.Tensor
}

type entry struct {
	dtype      tensor.DType
	shape      tensor.Shape
	begin, end int64
}

// File is an open safetensors file. Tensors it returns may view its
// memory: they are valid until Close.
type File struct {
	path    string
	data    []byte // the whole file (mapped or read)
	unmap   func() error
	base    int64 // start of the data section
	entries map[string]entry
	meta    map[string]string
}

// FormatError says what is wrong with a file, naming it and the tensor.
type FormatError struct {
	File, Tensor, Msg string
}

func (e *FormatError) Error() string {
	if e.Tensor != "" {
		return fmt.Sprintf("%s: tensor %q: %s", e.File, e.Tensor, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Open maps and validates a safetensors file.
func Open(path string) (*File, error) {
	data, unmap, err := mapFile(path)
	if err != nil {
		return nil, err
	}
	f, err := parse(path, data)
	if err != nil {
		if unmap != nil {
			unmap()
		}
		return nil, err
	}
	f.unmap = unmap
	return f, nil
}

// Parse validates an in-memory safetensors image (name is used in errors).
func Parse(name string, data []byte) (*File, error) { return parse(name, data) }

func parse(path string, data []byte) (*File, error) {
	bad := func(tensorName, format string, a ...any) error {
		return &FormatError{File: path, Tensor: tensorName, Msg: fmt.Sprintf(format, a...)}
	}
	if len(data) < 8 {
		return nil, bad("", "file is %d bytes, shorter than the 8-byte header length", len(data))
	}
	hl := binary.LittleEndian.Uint64(data[:8])
	if hl > MaxHeader || hl > uint64(len(data)-8) {
		return nil, bad("", "header length %d exceeds the file (%d bytes) or the limit (%d)", hl, len(data), MaxHeader)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data[8:8+hl], &raw); err != nil {
		return nil, bad("", "header is not a JSON object: %v", err)
	}
	f := &File{path: path, data: data, base: int64(8 + hl), entries: map[string]entry{}}
	dataLen := int64(len(data)) - f.base
	type span struct {
		b, e int64
		name string
	}
	var spans []span
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &f.meta); err != nil {
				return nil, bad("", "__metadata__ must map strings to strings: %v", err)
			}
			continue
		}
		var h struct {
			DType   string  `json:"dtype"`
			Shape   []int64 `json:"shape"`
			Offsets []int64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(msg, &h); err != nil {
			return nil, bad(name, "bad header entry: %v", err)
		}
		dt, err := tensor.ParseDType(h.DType)
		if err != nil {
			return nil, bad(name, "dtype %q is not supported (want F32, F16 or BF16)", h.DType)
		}
		if h.Shape == nil {
			return nil, bad(name, "missing shape")
		}
		if len(h.Offsets) != 2 {
			return nil, bad(name, "data_offsets must have 2 values, got %d", len(h.Offsets))
		}
		n := uint64(1)
		shape := make(tensor.Shape, len(h.Shape))
		for i, d := range h.Shape {
			if d < 0 || d > math.MaxInt32 {
				return nil, bad(name, "dimension %d out of range", d)
			}
			hi, lo := bits.Mul64(n, uint64(d))
			if hi != 0 || lo > 1<<50 {
				return nil, bad(name, "shape %v overflows", h.Shape)
			}
			n = lo
			shape[i] = int(d)
		}
		b, e := h.Offsets[0], h.Offsets[1]
		if b < 0 || e < b || e > dataLen {
			return nil, bad(name, "data_offsets [%d, %d] outside the data section of %d bytes", b, e, dataLen)
		}
		if need := n * uint64(dt.Size()); uint64(e-b) != need {
			return nil, bad(name, "shape %v of %v needs %d bytes, data_offsets give %d", shape, dt, need, e-b)
		}
		f.entries[name] = entry{dtype: dt, shape: shape, begin: b, end: e}
		spans = append(spans, span{b, e, name})
	}
	sort.Slice(spans, func(i, j int) bool {
		return spans[i].b < spans[j].b || spans[i].b == spans[j].b && spans[i].e < spans[j].e
	})
	for i := 1; i < len(spans); i++ {
		if spans[i].b < spans[i-1].e {
			return nil, bad(spans[i].name, "data [%d, %d] overlaps tensor %q [%d, %d]", spans[i].b, spans[i].e, spans[i-1].name, spans[i-1].b, spans[i-1].e)
		}
	}
	return f, nil
}

// Names lists the tensors, sorted.
func (f *File) Names() []string {
	out := make([]string, 0, len(f.entries))
	for n := range f.entries {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Info returns a tensor's type and shape.
func (f *File) Info(name string) (tensor.DType, tensor.Shape, bool) {
	e, ok := f.entries[name]
	return e.dtype, e.shape, ok
}

// Metadata returns the __metadata__ map (nil if none).
func (f *File) Metadata() map[string]string { return f.meta }

// Tensor returns the named tensor: a view of the file's memory when
// aligned, else a copy.
func (f *File) Tensor(name string) (*tensor.Tensor, error) {
	e, ok := f.entries[name]
	if !ok {
		return nil, &FormatError{File: f.path, Tensor: name, Msg: "no such tensor"}
	}
	b := f.data[f.base+e.begin : f.base+e.end]
	t := &tensor.Tensor{Shape: e.shape, DType: e.dtype}
	n := e.shape.Numel()
	aligned := len(b) == 0 || uintptr(unsafe.Pointer(&b[0]))%uintptr(e.dtype.Size()) == 0
	if e.dtype == tensor.F32 {
		if aligned && n > 0 {
			t.F32 = unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), n)
		} else {
			t.F32 = make([]float32, n)
			for i := range t.F32 {
				t.F32[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			}
		}
	} else {
		if aligned && n > 0 {
			t.Half = unsafe.Slice((*uint16)(unsafe.Pointer(&b[0])), n)
		} else {
			t.Half = make([]uint16, n)
			for i := range t.Half {
				t.Half[i] = binary.LittleEndian.Uint16(b[2*i:])
			}
		}
	}
	return t, nil
}

// Close releases the file's memory.
func (f *File) Close() error {
	if f.unmap != nil {
		u := f.unmap
		f.unmap = nil
		return u()
	}
	return nil
}

// Write writes tensors to path atomically, names sorted, the header padded
// to a multiple of 8 bytes.
func Write(path string, ts []Named, meta map[string]string) error {
	sorted := append([]Named(nil), ts...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	header := map[string]any{}
	if len(meta) > 0 {
		header["__metadata__"] = meta
	}
	var off int64
	for i, n := range sorted {
		if i > 0 && n.Name == sorted[i-1].Name {
			return fmt.Errorf("%s: duplicate tensor name %q", path, n.Name)
		}
		size := int64(n.T.Numel() * n.T.DType.Size())
		shape := n.T.Shape
		if shape == nil {
			shape = tensor.Shape{}
		}
		header[n.Name] = map[string]any{"dtype": n.T.DType.String(), "shape": shape, "data_offsets": [2]int64{off, off + size}}
		off += size
	}
	hj, err := json.Marshal(header)
	if err != nil {
		return err
	}
	for len(hj)%8 != 0 {
		hj = append(hj, ' ')
	}
	f, err := CreateAtomic(path)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Abort()
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hj)))
	w.Write(lenBuf[:])
	w.Write(hj)
	for _, n := range sorted {
		if _, err := w.Write(n.T.Bytes()); err != nil {
			f.Abort()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Abort()
		return err
	}
	return f.Commit()
}
