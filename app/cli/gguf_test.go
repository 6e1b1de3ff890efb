package cli

import (
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"llmlab/core/model"
	"llmlab/core/tokenizer"
)

// TestGGUFModelSource: the demo model exported to an f16 GGUF file and
// read back as --model gives the same greedy tokens as the HF folder, and
// its tokenizer (rebuilt from the GGUF metadata) the same ids.
func TestGGUFModelSource(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "demo.gguf")
	if code, msg := run(t, "export", "--model", "demo", "--out", out); code != 0 {
		t.Fatalf("export: %d %s", code, msg)
	}
	gen := func(m string) string {
		code, msg := run(t, "generate", "--model", m, "--prompt", "Once upon a time", "--max-tokens", "32", "--temperature", "0")
		if code != 0 {
			t.Fatalf("generate --model %s: %d %s", m, code, msg)
		}
		text, _, _ := strings.Cut(msg, "\n[")
		return text
	}
	if a, b := gen("demo"), gen(out); a != b {
		t.Errorf("greedy text differs:\nfolder %q\ngguf   %q", a, b)
	}
	demo, err := demoModelDir()
	if err != nil {
		t.Fatal(err)
	}
	want, err := tokenizer.Load(demo)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tokenizer.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Once upon a time, a fox.", "  two  spaces\nand\ttabs 123 4567!", "<|im_start|>user\nhi<|im_end|>", "émigré ünïcode 日本"} {
		if a, b := want.Encode(s, true), got.Encode(s, true); !slices.Equal(a, b) {
			t.Errorf("%q: folder ids %v, gguf ids %v", s, a, b)
		}
	}
	if got.ChatTemplate() != want.ChatTemplate() || got.EOS() != want.EOS() {
		t.Errorf("chat template or EOS differ: %q/%d vs %q/%d", got.ChatTemplate(), got.EOS(), want.ChatTemplate(), want.EOS())
	}
	// A GGUF file through model.Load keeps its stored types with KeepStored.
	m, err := model.Load(out, model.LoadOptions{KeepStored: true})
	if err != nil {
		t.Fatal(err)
	}
	if m.Cfg.ModelType != "llama" || m.Cfg.Layers == 0 {
		t.Errorf("config %+v", m.Cfg)
	}
	if code, msg := run(t, "generate", "--model", filepath.Join(dir, "nope.gguf"), "--prompt", "x"); code != 2 || !strings.Contains(msg, "nope.gguf") {
		t.Errorf("a missing file: %d %s", code, msg)
	}
}

// TestGGUFExportAgreesWithLlamaCpp exports the demo model at every --quant
// type and compares with what llama.cpp did with the same files
// (testdata/gguf_llamacpp.json, made by tools/golden/gguf_llamacpp.py):
// the files are byte-identical to the ones llama.cpp loaded, our tokenizer
// gives llama.cpp's prompt ids, and our greedy tokens agree with llama.cpp's
// at >= 24 of 32 positions (>= 12 for the 4-bit types; in proportion when
// a run stops at EOS).
func TestGGUFExportAgreesWithLlamaCpp(t *testing.T) {
	if testing.Short() {
		t.Skip("exports and runs the demo model six times")
	}
	data, err := os.ReadFile(filepath.Join("testdata", "gguf_llamacpp.json"))
	if err != nil {
		t.Fatal(err)
	}
	var golden struct {
		Prompts []string
		N       int
		Types   map[string]struct {
			SHA256 string `json:"sha256"`
			Runs   []struct {
				PromptIDs []int32 `json:"prompt_ids"`
				IDs       []int32 `json:"ids"`
			}
		}
	}
	if err := json.Unmarshal(data, &golden); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for q, want := range golden.Types {
		t.Run(q, func(t *testing.T) {
			out := filepath.Join(dir, "demo-"+q+".gguf")
			code, msg := run(t, "export", "--model", "demo", "--quant", q, "--out", out)
			if code != 0 {
				t.Fatalf("export: %d %s", code, msg)
			}
			if !strings.Contains(msg, "bits per weight") {
				t.Errorf("export output without bits per weight: %s", msg)
			}
			if _, err := os.Stat(filepath.Join(dir, "demo-"+q+".Modelfile")); err != nil {
				t.Errorf("no Modelfile named after the export: %v", err)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprintf("%x", sha256.Sum256(b)); got != want.SHA256 {
				t.Fatalf("the export differs from the file llama.cpp ran (sha256 %s, golden %s): if the demo model or the exporter changed on purpose, rerun tools/golden/gguf_llamacpp.py", got, want.SHA256)
			}
			tok, err := tokenizer.Load(out)
			if err != nil {
				t.Fatal(err)
			}
			minAgree := 24
			if strings.HasPrefix(q, "q4") {
				minAgree = 12
			}
			for i, p := range golden.Prompts {
				r := want.Runs[i]
				if ids := tok.Encode(p, true); !slices.Equal(ids, r.PromptIDs) {
					t.Errorf("%q: our ids %v, llama.cpp's %v", p, ids, r.PromptIDs)
				}
				code, msg := run(t, "generate", "--model", out, "--prompt", p, "--max-tokens", fmt.Sprint(golden.N), "--temperature", "0", "--json")
				if code != 0 {
					t.Fatalf("generate: %d %s", code, msg)
				}
				lines := strings.Split(strings.TrimSpace(msg), "\n")
				var res struct{ IDs []int32 }
				if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
					t.Fatalf("generate --json: %v: %s", err, msg)
				}
				agree := 0
				for j := range min(len(res.IDs), len(r.IDs)) {
					if res.IDs[j] == r.IDs[j] {
						agree++
					}
				}
				// A run that ends at EOS counts its positions only.
				n := max(len(res.IDs), len(r.IDs))
				t.Logf("%q: %d of %d greedy tokens agree with llama.cpp", p, agree, n)
				if agree*golden.N < minAgree*n {
					t.Errorf("%q: %d of %d greedy tokens agree with llama.cpp (want >= %d of %d)\n ours %v\nllama %v", p, agree, n, minAgree, golden.N, res.IDs, r.IDs)
				}
			}
		})
	}
}

// TestOllamaStore: a store (written here, as ollama lays it out) holding
// the demo model as a GGUF blob: `models` lists it, --model ollama:NAME
// runs it, and its params layer sets the defaults the flags leave unset.
func TestOllamaStore(t *testing.T) {
	dir := t.TempDir()
	gg := filepath.Join(dir, "demo.gguf")
	if code, msg := run(t, "export", "--model", "demo", "--quant", "q8_0", "--out", gg); code != 0 {
		t.Fatal(msg)
	}
	store := filepath.Join(dir, "store")
	blob := func(b []byte) map[string]any {
		d := fmt.Sprintf("sha256:%x", sha256.Sum256(b))
		p := filepath.Join(store, "blobs", strings.Replace(d, ":", "-", 1))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return map[string]any{"digest": d, "size": len(b)}
	}
	g, err := os.ReadFile(gg)
	if err != nil {
		t.Fatal(err)
	}
	layer := func(media string, b []byte) map[string]any {
		l := blob(b)
		l["mediaType"] = "application/vnd.ollama.image." + media
		return l
	}
	man, _ := json.Marshal(map[string]any{"schemaVersion": 2, "layers": []any{
		layer("model", g), layer("params", []byte(`{"temperature":0,"num_predict":5,"stop":["<|im_end|>","\n\n"]}`)),
		layer("system", []byte("You are terse.")),
	}})
	mp := filepath.Join(store, "manifests", "registry.ollama.ai", "library", "tinydemo", "q8")
	os.MkdirAll(filepath.Dir(mp), 0o755)
	if err := os.WriteFile(mp, man, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OLLAMA_MODELS", store)
	code, msg := run(t, "models", "--dir", dir)
	if code != 0 || !strings.Contains(msg, "ollama:tinydemo:q8") || !strings.Contains(msg, "demo.gguf") || !strings.Contains(msg, "Q8_0") {
		t.Errorf("models: %d\n%s", code, msg)
	}
	// temperature 0 and 5 tokens come from the params layer.
	code, msg = run(t, "generate", "--model", "ollama:tinydemo:q8", "--prompt", "Once upon a time", "--json")
	if code != 0 {
		t.Fatalf("generate: %d %s", code, msg)
	}
	type result struct {
		IDs    []int32
		Tokens int
	}
	last := func(msg string) (r result) {
		lines := strings.Split(strings.TrimSpace(msg), "\n")
		json.Unmarshal([]byte(lines[len(lines)-1]), &r)
		return r
	}
	got := last(msg)
	_, msg = run(t, "generate", "--model", gg, "--prompt", "Once upon a time", "--max-tokens", "5", "--temperature", "0", "--json")
	if want := last(msg); got.Tokens != 5 || !slices.Equal(got.IDs, want.IDs) {
		t.Errorf("ollama:tinydemo:q8 gave %d tokens %v; the file with the same settings %v", got.Tokens, got.IDs, want.IDs)
	}
	// The chat command's flags: --system and the sampling from the layers,
	// unless given.
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	mf := modelFlags{model: "ollama:tinydemo:q8"}
	system := fs.String("system", "", "")
	temp := fs.Float64("temperature", 0.7, "")
	maxTok := fs.Int("max-tokens", 256, "")
	var stops stringList
	fs.Var(&stops, "stop", "")
	if err := fs.Parse([]string{"--max-tokens", "9"}); err != nil {
		t.Fatal(err)
	}
	if err := mf.ollamaDefaults(fs); err != nil {
		t.Fatal(err)
	}
	if *system != "You are terse." || *temp != 0 || *maxTok != 9 || !slices.Equal(stops, stringList{"<|im_end|>", "\n\n"}) {
		t.Errorf("defaults: system %q temperature %v max-tokens %d stops %q", *system, *temp, *maxTok, stops)
	}
	if code, msg := run(t, "generate", "--model", "ollama:nothere", "--prompt", "x"); code != 2 || !strings.Contains(msg, "nothere") {
		t.Errorf("a missing ollama model: %d %s", code, msg)
	}
}

// TestBenchGGUFQuick: the gguf bench group runs end to end on a small
// model (without llama.cpp: tests run from the package folder).
func TestBenchGGUFQuick(t *testing.T) {
	code, out := run(t, "bench", "--only", "gguf", "--quick", "--json", "--threads", "1")
	if code != 0 || strings.Count(out, `"bench":"gguf"`) != 2 || !strings.Contains(out, `"bits_per_weight"`) {
		t.Errorf("bench --only gguf: %d\n%s", code, out)
	}
}
