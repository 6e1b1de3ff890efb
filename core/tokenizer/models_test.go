package tokenizer

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The real tokenizers of four model families, as their packages ship them
// (gzipped in testdata/models), with transformers.js's ids for every test
// text (tools/golden/tokenizer/models.mjs).
var modelNames = []string{"llama3_1", "qwen3", "gemma3", "deepseek_v3"}

var modelCache sync.Map // name -> func() (*Tokenizer, error)

// loadTestModel loads testdata/models/NAME (tokenizer.json.gz and
// tokenizer_config.json) once per test binary.
func loadTestModel(t testing.TB, name string) *Tokenizer {
	t.Helper()
	f, _ := modelCache.LoadOrStore(name, sync.OnceValues(func() (*Tokenizer, error) {
		return loadGzipDir(filepath.Join("testdata", "models", name))
	}))
	tok, err := f.(func() (*Tokenizer, error))()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// loadGzipDir is Load for a folder whose tokenizer.json is gzipped.
func loadGzipDir(dir string) (*Tokenizer, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "tokenizer.json.gz"))
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	tok, err := FromJSON(data)
	if err != nil {
		return nil, err
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil {
		return nil, err
	}
	return tok, tok.ApplyConfig(cfg)
}

func TestModelGoldens(t *testing.T) {
	if testing.Short() {
		t.Skip("loads four full-size tokenizers (-short)")
	}
	data, err := os.ReadFile(filepath.Join("testdata", "models_ids.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string][]golden
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	for _, name := range modelNames {
		t.Run(name, func(t *testing.T) {
			tok := loadTestModel(t, name)
			bad := 0
			for i, g := range want[name] {
				got := tok.Encode(g.Text, false)
				if diff := cmp.Diff(g.IDs, got); diff != "" {
					t.Errorf("text %d %q: ids (-want +got):\n%s", i, g.Text, diff)
					if bad++; bad > 3 {
						t.Fatal("too many differences")
					}
				}
			}
		})
	}
}
