package source

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"llmlab/core/checkpoint"
	"llmlab/core/tensor"
)

// FakeStore writes an ollama store under dir holding a model ref whose
// GGUF blob has the given bytes, with template, system and params layers.
func fakeStore(t *testing.T, dir, ref string, gguf []byte) {
	t.Helper()
	blob := func(b []byte) (string, int64) {
		d := fmt.Sprintf("sha256:%x", sha256.Sum256(b))
		p := filepath.Join(dir, "blobs", strings.Replace(d, ":", "-", 1))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return d, int64(len(b))
	}
	type layer struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int64  `json:"size"`
	}
	var m struct {
		SchemaVersion int     `json:"schemaVersion"`
		Layers        []layer `json:"layers"`
	}
	m.SchemaVersion = 2
	for _, l := range []struct {
		media string
		data  []byte
	}{
		{mediaModel, gguf},
		{mediaTemplate, []byte("{{ .System }}<|user|>{{ .Prompt }}<|assistant|>")},
		{mediaSystem, []byte("You are terse.")},
		{mediaParams, []byte(`{"temperature":0.2,"stop":["<|user|>"]}`)},
	} {
		d, n := blob(l.data)
		m.Layers = append(m.Layers, layer{l.media, d, n})
	}
	mp, err := manifestPath(dir, ref)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(m)
	os.MkdirAll(filepath.Dir(mp), 0o755)
	if err := os.WriteFile(mp, js, 0o644); err != nil {
		t.Fatal(err)
	}
}

func tinyGGUF(t *testing.T) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "t.gguf")
	f := &checkpoint.GGUFFile{KV: map[string]any{"general.architecture": "llama", "general.file_type": uint32(7)},
		Tensors: []checkpoint.Named{{Name: "token_embd.weight", T: tensor.New(4, 32).Convert(tensor.Q8_0)}}}
	if err := checkpoint.WriteGGUF(p, f); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestResolveOllama(t *testing.T) {
	dir := t.TempDir()
	g := tinyGGUF(t)
	fakeStore(t, dir, "tiny", g)
	fakeStore(t, dir, "someone/other:v1", g)
	for _, ref := range []string{"tiny", "tiny:latest", "someone/other:v1", "registry.ollama.ai/someone/other:v1"} {
		s, err := Resolve("ollama:"+ref, dir)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		want := Source{Kind: Ollama, Arg: "ollama:" + ref, Name: ref, Path: s.Path,
			Template: "{{ .System }}<|user|>{{ .Prompt }}<|assistant|>", System: "You are terse.",
			Params: map[string]any{"temperature": 0.2, "stop": []any{"<|user|>"}}}
		if diff := cmp.Diff(want, s); diff != "" {
			t.Errorf("%s (-want +got):\n%s", ref, diff)
		}
		if !checkpoint.IsGGUF(s.Path) {
			t.Errorf("%s: %s is not the GGUF blob", ref, s.Path)
		}
	}
	for _, tc := range []struct{ ref, want string }{
		{"nope", "not in"},
		{"../../etc/passwd", "too many parts"},
		{"../passwd", "not a valid name part"},
		{"x:../y", "not a valid name part"},
		{"a/b/c/d", "too many parts"},
	} {
		if _, err := Resolve("ollama:"+tc.ref, dir); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.ref, err, tc.want)
		}
	}
	// A blob cut short no longer matches its manifest.
	s, _ := Resolve("ollama:tiny", dir)
	os.WriteFile(s.Path, g[:len(g)-1], 0o644)
	if _, err := Resolve("ollama:tiny", dir); err == nil || !strings.Contains(err.Error(), "the manifest says") {
		t.Errorf("a short blob: %v", err)
	}
}

func TestResolvePaths(t *testing.T) {
	dir := t.TempDir()
	gg := filepath.Join(dir, "m.gguf")
	os.WriteFile(gg, tinyGGUF(t), 0o644)
	txt := filepath.Join(dir, "notes.txt")
	os.WriteFile(txt, []byte("hello"), 0o644)
	if s, err := Resolve(gg, ""); err != nil || s.Kind != GGUF || s.Name != "m" {
		t.Errorf("gguf: %+v %v", s, err)
	}
	if s, err := Resolve(dir, ""); err != nil || s.Kind != Folder {
		t.Errorf("folder: %+v %v", s, err)
	}
	if _, err := Resolve(txt, ""); err == nil || !strings.Contains(err.Error(), "not a model folder or a GGUF file") {
		t.Errorf("text file: %v", err)
	}
}

func TestList(t *testing.T) {
	store, models := t.TempDir(), t.TempDir()
	g := tinyGGUF(t)
	fakeStore(t, store, "tiny:q8", g)
	os.WriteFile(filepath.Join(models, "a.gguf"), g, 0o644)
	os.MkdirAll(filepath.Join(models, "hf"), 0o755)
	os.WriteFile(filepath.Join(models, "hf", "config.json"), []byte(`{"model_type":"llama","torch_dtype":"bfloat16"}`), 0o644)
	os.WriteFile(filepath.Join(models, "hf", "model.safetensors"), make([]byte, 100), 0o644)
	got := List(store, models)
	var rows []string
	for _, e := range got {
		rows = append(rows, fmt.Sprintf("%s %s %s %s %d %s", filepath.Base(e.Ref), e.Kind, e.Arch, e.Type, e.Size, e.Error))
	}
	want := []string{
		fmt.Sprintf("a.gguf gguf llama Q8_0 %d ", len(g)),
		"hf folder llama bfloat16 100 ",
		fmt.Sprintf("ollama:tiny:q8 ollama llama Q8_0 %d ", len(g)),
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
