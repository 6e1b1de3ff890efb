package checkpoint

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"llmlab/core/quant"
	"llmlab/core/tensor"
)

// TestGGUFReadBack writes a file with every kind of value and tensor type
// WriteGGUF knows and reads it back through the mapped reader.
func TestGGUFReadBack(t *testing.T) {
	w := tensor.New(4, 256)
	for i := range w.F32 {
		w.F32[i] = float32(i%17) - 8
	}
	q4 := w.Convert(tensor.Q4_K)
	kv := map[string]any{
		"general.architecture": "llama", "general.name": "t", "general.file_type": uint32(15),
		"x.u32": uint32(7), "x.i32": int32(-3), "x.f32": float32(0.5), "x.bool": true, "x.u64": uint64(1 << 40),
		"x.strs": []string{"a", "", "ü"}, "x.ints": []int32{1, -2}, "x.floats": []float32{1.5, -2},
	}
	f := &GGUFFile{KV: kv, Tensors: []Named{
		{Name: "f32", T: w}, {Name: "f16", T: w.Convert(tensor.F16)}, {Name: "bf16", T: w.Convert(tensor.BF16)},
		{Name: "q4k", T: q4}, {Name: "q80", T: w.Convert(tensor.Q8_0)}, {Name: "norm", T: tensor.FromF32([]float32{1, 2, 3}, 3)},
	}}
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := WriteGGUF(path, f); err != nil {
		t.Fatal(err)
	}
	g, err := OpenGGUF(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if diff := cmp.Diff(kv, g.KV); diff != "" {
		t.Errorf("metadata (-wrote +read):\n%s", diff)
	}
	if g.Keys[0] != "general.architecture" || g.Version != 3 {
		t.Errorf("first key %q, version %d", g.Keys[0], g.Version)
	}
	for _, n := range f.Tensors {
		got, err := g.Tensor(n.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got.DType != n.T.DType || !got.Shape.Equal(n.T.Shape) || !bytes.Equal(got.Bytes(), n.T.Bytes()) {
			t.Errorf("%s: read %v %v, wrote %v %v (bytes equal: %v)", n.Name, got.DType, got.Shape, n.T.DType, n.T.Shape, bytes.Equal(got.Bytes(), n.T.Bytes()))
		}
	}
	in, _ := g.Info("q4k")
	if in.Type != quant.Q4_K || in.Size != 4*144 || in.Offset%32 != 0 {
		t.Errorf("q4k info %+v", in)
	}
	if arch, name, ft := g.Describe(); arch != "llama" || name != "t" || ft != "Q4_K_M" {
		t.Errorf("Describe = %q %q %q", arch, name, ft)
	}
}

// rawGGUF builds a GGUF image by hand so tests can write what WriteGGUF
// never would.
type rawGGUF struct{ bytes.Buffer }

func (r *rawGGUF) put(v any)    { binary.Write(&r.Buffer, binary.LittleEndian, v) }
func (r *rawGGUF) str(s string) { r.put(uint64(len(s))); r.WriteString(s) }

type rawTensor struct {
	name string
	dims []uint64 // innermost first, as stored
	typ  uint32
	off  uint64
}

func buildGGUF(version uint32, kv func(r *rawGGUF) int, ts []rawTensor, data int) []byte {
	var body rawGGUF
	nkv := 0
	if kv != nil {
		nkv = kv(&body)
	}
	for _, t := range ts {
		body.str(t.name)
		body.put(uint32(len(t.dims)))
		for _, d := range t.dims {
			body.put(d)
		}
		body.put(t.typ)
		body.put(t.off)
	}
	var r rawGGUF
	r.WriteString("GGUF")
	r.put(version)
	r.put(uint64(len(ts)))
	r.put(uint64(nkv))
	r.Write(body.Bytes())
	for r.Len()%32 != 0 {
		r.WriteByte(0)
	}
	r.Write(make([]byte, data))
	return r.Bytes()
}

func TestGGUFCorrupt(t *testing.T) {
	good := []rawTensor{{"w", []uint64{32, 2}, uint32(quant.Q8_0), 0}}
	for _, tc := range []struct {
		name string
		file []byte
		want string // in the error
	}{
		{"magic", []byte("GGML\x03\x00\x00\x00"), "not a GGUF file"},
		{"version", buildGGUF(4, nil, nil, 0), "version 4"},
		{"short", buildGGUF(3, nil, nil, 0)[:10], "end of file"},
		{"tensor count", func() []byte {
			b := buildGGUF(3, nil, nil, 0)
			binary.LittleEndian.PutUint64(b[8:], 1<<40)
			return b
		}(), "claims 1099511627776 tensors"},
		{"string length", buildGGUF(3, func(r *rawGGUF) int { r.put(uint64(1 << 30)); return 1 }, nil, 0), "string longer"},
		{"array length", buildGGUF(3, func(r *rawGGUF) int {
			r.str("a")
			r.put(uint32(ggufArray))
			r.put(uint32(ggufUint32))
			r.put(uint64(1 << 50))
			return 1
		}, nil, 0), "longer than the rest of the file"},
		{"value type", buildGGUF(3, func(r *rawGGUF) int { r.str("a"); r.put(uint32(77)); return 1 }, nil, 0), "value type 77"},
		{"alignment", buildGGUF(3, func(r *rawGGUF) int {
			r.str("general.alignment")
			r.put(uint32(ggufUint32))
			r.put(uint32(24))
			return 1
		}, nil, 0), "power of two"},
		{"dims", buildGGUF(3, nil, []rawTensor{{"w", []uint64{32, 0}, 8, 0}}, 0), `tensor "w": dimension 1 of 2: size 0`},
		{"too many dims", buildGGUF(3, nil, []rawTensor{{"w", []uint64{1, 1, 1, 1, 1}, 0, 0}}, 0), "5 dimensions"},
		{"overflow", buildGGUF(3, nil, []rawTensor{{"w", []uint64{1 << 32, 1 << 32}, 0, 0}}, 0), "elements must be"},
		{"type", buildGGUF(3, nil, []rawTensor{{"w", []uint64{32}, 77, 0}}, 0), `tensor "w": unknown ggml type 77`},
		{"row blocks", buildGGUF(3, nil, []rawTensor{{"w", []uint64{100, 2}, uint32(quant.Q4_K), 0}}, 0), "not a whole number of Q4_K blocks"},
		{"misaligned", buildGGUF(3, nil, []rawTensor{{"w", []uint64{32}, 0, 4}}, 256), "not a multiple of the alignment"},
		{"past end", buildGGUF(3, nil, good, 67), `tensor "w": Q8_0 [2, 32] data`},
		{"offset past end", buildGGUF(3, nil, []rawTensor{{"w", []uint64{32, 2}, 8, 1 << 62}}, 68), "runs past the end"},
		{"duplicate", buildGGUF(3, nil, append(good, good[0]), 68), "appears twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseGGUF("bad.gguf", tc.file)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "bad.gguf") {
				t.Errorf("error %v, want one naming the file and containing %q", err, tc.want)
			}
		})
	}
	if _, err := ParseGGUF("ok.gguf", buildGGUF(2, nil, good, 68)); err != nil {
		t.Errorf("a good version 2 file: %v", err)
	}
}

// TestGGUFUnsupportedType: the table lists an IQ tensor; opening works
// (listings read it), loading it names the type and tensor.
func TestGGUFUnsupportedType(t *testing.T) {
	g, err := ParseGGUF("iq.gguf", buildGGUF(3, nil, []rawTensor{{"blk.0.attn_q.weight", []uint64{256}, uint32(quant.IQ2_XXS), 0}}, 66))
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.Tensor("blk.0.attn_q.weight")
	if err == nil || !strings.Contains(err.Error(), "IQ2_XXS") || !strings.Contains(err.Error(), "blk.0.attn_q.weight") {
		t.Errorf("error %v, want one naming IQ2_XXS and the tensor", err)
	}
}

// TestGGUFNoPanics: truncations and byte flips of a good file give errors
// or files, never panics.
func TestGGUFNoPanics(t *testing.T) {
	w := tensor.New(2, 256)
	f := &GGUFFile{KV: map[string]any{"general.architecture": "llama", "a": []string{"x", "y"}, "b": []float32{1}},
		Tensors: []Named{{Name: "w", T: w.Convert(tensor.Q6_K)}, {Name: "n", T: tensor.New(256)}}}
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := WriteGGUF(path, f); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(good); n += 7 {
		if _, err := ParseGGUF("cut.gguf", good[:n]); err == nil && n < len(good)-1 {
			t.Errorf("a file cut at %d of %d bytes was accepted", n, len(good))
		}
	}
	r := rand.New(rand.NewPCG(1, 1))
	for i := 0; i < 2000; i++ {
		b := bytes.Clone(good)
		for range 1 + r.IntN(4) {
			b[r.IntN(min(len(b), 400))] = byte(r.Uint32())
		}
		if g, err := ParseGGUF("flip.gguf", b); err == nil {
			for _, in := range g.Tensors {
				g.Tensor(in.Name)
			}
		}
	}
}
