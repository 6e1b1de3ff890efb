package checkpoint

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"llmlab/core/tensor"
)

func sample() []Named {
	a := tensor.FromF32([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	return []Named{
		{Name: "a", T: a},
		{Name: "b.f16", T: a.Convert(tensor.F16)},
		{Name: "c.bf16", T: a.Convert(tensor.BF16)},
		{Name: "scalar", T: tensor.FromF32([]float32{7})},
	}
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	if err := Write(path, sample(), map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Metadata()["format"] != "pt" {
		t.Errorf("metadata %v", f.Metadata())
	}
	for _, n := range sample() {
		got, err := f.Tensor(n.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got.DType != n.T.DType || !got.Shape.Equal(n.T.Shape) {
			t.Fatalf("%s: %v %v, want %v %v", n.Name, got.DType, got.Shape, n.T.DType, n.T.Shape)
		}
		for i := 0; i < n.T.Numel(); i++ {
			if got.At(i) != n.T.At(i) {
				t.Fatalf("%s[%d] = %v, want %v", n.Name, i, got.At(i), n.T.At(i))
			}
		}
	}
	st, _ := os.Stat(path)
	data, _ := os.ReadFile(path)
	hl := binary.LittleEndian.Uint64(data)
	if hl%8 != 0 || st.Mode().Perm() != 0o644 {
		t.Errorf("header length %d not padded to 8, or mode %v", hl, st.Mode().Perm())
	}
}

// build writes a safetensors image with a hand-made header.
func build(header map[string]any, data []byte) []byte {
	hj, _ := json.Marshal(header)
	out := make([]byte, 8)
	binary.LittleEndian.PutUint64(out, uint64(len(hj)))
	return append(append(out, hj...), data...)
}

func TestBadFiles(t *testing.T) {
	ok := map[string]any{"w": map[string]any{"dtype": "F32", "shape": []int{2}, "data_offsets": []int{0, 8}}}
	good := build(ok, make([]byte, 8))
	lenLie := append([]byte(nil), good...)
	binary.LittleEndian.PutUint64(lenLie, 1<<40)
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "shorter than the 8-byte header"},
		{"truncated data", good[:len(good)-3], "outside the data section"},
		{"header length lies", lenLie, "exceeds the file"},
		{"not json", append([]byte{4, 0, 0, 0, 0, 0, 0, 0}, "{{{{"...), "not a JSON object"},
		{"unknown dtype", build(map[string]any{"w": map[string]any{"dtype": "I8", "shape": []int{2}, "data_offsets": []int{0, 2}}}, make([]byte, 2)), `dtype "I8"`},
		{"wrong byte length", build(map[string]any{"w": map[string]any{"dtype": "F32", "shape": []int{3}, "data_offsets": []int{0, 8}}}, make([]byte, 8)), "needs 12 bytes"},
		{"offsets outside", build(map[string]any{"w": map[string]any{"dtype": "F32", "shape": []int{2}, "data_offsets": []int{8, 16}}}, make([]byte, 8)), "outside the data section"},
		{"overlap", build(map[string]any{
			"a": map[string]any{"dtype": "F32", "shape": []int{2}, "data_offsets": []int{0, 8}},
			"b": map[string]any{"dtype": "F32", "shape": []int{2}, "data_offsets": []int{4, 12}},
		}, make([]byte, 12)), "overlaps"},
		{"negative dim", build(map[string]any{"w": map[string]any{"dtype": "F32", "shape": []int{-1}, "data_offsets": []int{0, 0}}}, nil), "out of range"},
		{"overflowing shape", build(map[string]any{"w": map[string]any{"dtype": "F32", "shape": []int{1 << 30, 1 << 30, 1 << 30}, "data_offsets": []int{0, 8}}}, make([]byte, 8)), "overflows"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("m.safetensors", tc.data)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "m.safetensors") {
				t.Fatalf("error %q should name the file and say %q", err, tc.want)
			}
		})
	}
}

func TestShardedAndPickle(t *testing.T) {
	dir := t.TempDir()
	s := sample()
	if err := Write(filepath.Join(dir, "model-00001-of-00002.safetensors"), s[:2], nil); err != nil {
		t.Fatal(err)
	}
	if err := Write(filepath.Join(dir, "model-00002-of-00002.safetensors"), s[2:], nil); err != nil {
		t.Fatal(err)
	}
	idx := map[string]any{"weight_map": map[string]string{
		"a": "model-00001-of-00002.safetensors", "b.f16": "model-00001-of-00002.safetensors",
		"c.bf16": "model-00002-of-00002.safetensors", "scalar": "model-00002-of-00002.safetensors",
	}}
	js, _ := json.Marshal(idx)
	os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), js, 0o644)
	set, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(set.Names()); got != 4 {
		t.Fatalf("%d tensors", got)
	}
	if x, err := set.Tensor("c.bf16"); err != nil || x.At(5) != 6 {
		t.Fatalf("c.bf16: %v %v", x, err)
	}
	set.Close()

	// An index naming a shard that is missing.
	idx["weight_map"].(map[string]string)["d"] = "model-00003-of-00003.safetensors"
	js, _ = json.Marshal(idx)
	os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), js, 0o644)
	if _, err := OpenDir(dir); err == nil || !strings.Contains(err.Error(), "model-00003-of-00003") {
		t.Fatalf("missing shard: %v", err)
	}

	pick := t.TempDir()
	os.WriteFile(filepath.Join(pick, "pytorch_model.bin"), []byte("PK"), 0o644)
	if _, err := OpenDir(pick); err == nil || !strings.Contains(err.Error(), "pickle") {
		t.Fatalf("pickle folder: %v", err)
	}
}

func TestAtomicAbortLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	f, err := CreateAtomic(filepath.Join(dir, "x"))
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("half"))
	f.Abort()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left %v", ents)
	}
}

// FuzzParse: no input crashes the reader; whatever it accepts it can read.
func FuzzParse(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "seed.safetensors")
	if err := Write(path, sample(), map[string]string{"k": "v"}); err != nil {
		f.Fatal(err)
	}
	seed, _ := os.ReadFile(path)
	f.Add(seed)
	f.Add(seed[:20])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		sf, err := Parse("fuzz", data)
		if err != nil {
			return
		}
		for _, n := range sf.Names() {
			x, err := sf.Tensor(n)
			if err != nil {
				t.Fatal(err)
			}
			_ = x.Numel()
		}
	})
}
