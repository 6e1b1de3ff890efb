//go:build js && wasm

package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall/js"
	"testing"

	"github.com/google/go-cmp/cmp"

	"llmlab/core/checkpoint"
	"llmlab/core/model"
	"llmlab/core/tokenizer"
)

// demoGGUF exports the embedded demo model as `llmlab export --model demo
// --quant q` does (app/cli/export.go) and returns the file's bytes.
func demoGGUF(t *testing.T, q string) []byte {
	t.Helper()
	// The embedded demo model's files, read as the page fetches them (the
	// browser engine does not import the assets package).
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "assets", "model", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	m, err := model.FromBytes(read("config.json"), read("model.safetensors"), model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.FromJSON(read("tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.ApplyConfig(read("tokenizer_config.json")); err != nil {
		t.Fatal(err)
	}
	quant, err := model.ParseGGUFQuant(q)
	if err != nil {
		t.Fatal(err)
	}
	toks, special := tok.Vocabulary()
	types := make([]int32, len(toks))
	for i, s := range special {
		types[i] = 1
		if s {
			types[i] = 3
		}
	}
	f, _, err := m.GGUFQuantized(model.Vocab{Tokens: toks, Types: types, Merges: tok.MergeList(),
		BOS: tok.BOS(), EOS: tok.EOS(), PAD: tok.PAD(), ChatTemplate: tok.ChatTemplate()}, "llmlab-demo", quant)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "demo-"+q+".gguf")
	if err := checkpoint.WriteGGUF(path, f); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// loadInSlices copies b in through fileBegin and fileWrite, n bytes at a
// time, and opens it.
func loadInSlices(t *testing.T, s *state, name string, b []byte, n int) map[string]any {
	t.Helper()
	if r := s.fileBegin(js.Null(), []js.Value{js.ValueOf(name), js.ValueOf(len(b))}).(map[string]any); r["ok"] != true {
		t.Fatalf("fileBegin: %v", r["error"])
	}
	for off := 0; off < len(b); off += n {
		if r := s.fileWrite(js.Null(), []js.Value{js.ValueOf(off), jsBytes(b[off:min(off+n, len(b))])}).(map[string]any); r["ok"] != true {
			t.Fatalf("fileWrite at %d: %v", off, r["error"])
		}
	}
	return s.loadGGUF(js.Null(), []js.Value{js.ValueOf(name)}).(map[string]any)
}

// jsBytes is a Uint8Array holding b, as the worker passes a file's bytes.
func jsBytes(b []byte) js.Value {
	a := js.Global().Get("Uint8Array").New(len(b))
	js.CopyBytesToJS(a, b)
	return a
}

// greedy runs the page's start/step loop at temperature 0 and returns the
// generated ids.
func greedy(t *testing.T, s *state, prompt string, chat bool, n int) []int32 {
	t.Helper()
	opts := js.ValueOf(map[string]any{"temperature": 0, "maxTokens": n, "chat": chat})
	if r := s.start(js.Null(), []js.Value{js.ValueOf(prompt), opts}).(map[string]any); r["ok"] != true {
		t.Fatalf("start: %v", r["error"])
	}
	for range n + 1 {
		r := s.step(js.Null(), nil).(map[string]any)
		if r["ok"] != true {
			t.Fatalf("step: %v", r["error"])
		}
		if r["done"] == true {
			var ids []int32
			for _, id := range r["ids"].([]any) {
				ids = append(ids, int32(id.(int)))
			}
			return ids
		}
	}
	t.Fatalf("no end after %d steps", n+1)
	return nil
}

// TestLoadGGUF: the demo model exported at q8_0 and q4_0 (the same files
// `llmlab export` writes, by their SHA-256) and opened by the browser
// build from bytes gives, token for token, the greedy ids `llmlab
// generate` gives for the same file, on a plain prompt and on a chat
// prompt rendered with the file's own template (testdata/gguf_greedy.json,
// from tools/golden/wasm_gguf.py).
func TestLoadGGUF(t *testing.T) {
	var golden struct {
		Prompts []struct {
			Prompt string `json:"prompt"`
			Chat   bool   `json:"chat"`
		} `json:"prompts"`
		N     int `json:"n"`
		Types map[string]struct {
			SHA256 string `json:"sha256"`
			Runs   []struct {
				IDs []int32 `json:"ids"`
			} `json:"runs"`
		} `json:"types"`
	}
	data, err := os.ReadFile(filepath.Join("testdata", "gguf_greedy.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &golden); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"q8_0", "q4_0"} {
		t.Run(q, func(t *testing.T) {
			want, ok := golden.Types[q]
			if !ok {
				t.Fatalf("no %s in testdata/gguf_greedy.json", q)
			}
			b := demoGGUF(t, q)
			if got := fmt.Sprintf("%x", sha256.Sum256(b)); got != want.SHA256 {
				t.Fatalf("the export differs from the file the CLI ran (sha256 %s, golden %s): if the demo model or the exporter changed on purpose, rerun tools/golden/wasm_gguf.py", got, want.SHA256)
			}
			s := &state{}
			name := "demo-" + q + ".gguf"
			var r map[string]any
			if q == "q8_0" { // the bytes at once
				r = s.loadGGUF(js.Null(), []js.Value{js.ValueOf(name), jsBytes(b)}).(map[string]any)
			} else { // copied in a slice at a time, as the worker does
				r = loadInSlices(t, s, name, b, 300_000)
			}
			if r["ok"] != true {
				t.Fatalf("loadGGUF: %v", r["error"])
			}
			if r["arch"] != "llama" || r["type"] != strings.ToUpper(q) || r["chat"] != true || r["name"] != "demo-"+q {
				t.Errorf("loadGGUF described the file as %v", r)
			}
			for i, p := range golden.Prompts {
				got := greedy(t, s, p.Prompt, p.Chat, golden.N)
				if diff := cmp.Diff(want.Runs[i].IDs, got); diff != "" {
					t.Errorf("%q (chat %v): ids (-llmlab generate +browser build):\n%s", p.Prompt, p.Chat, diff)
				}
			}
			if q == "q4_0" {
				tuneQuantized(t, s)
			}
		})
	}
}

// tuneQuantized: "tune it here" on a model opened from a quantized GGUF
// trains a LoRA adapter over the frozen blocks (rendered with the file's
// chat template): the loss falls over a few steps and generation runs with
// the adapter on.
func tuneQuantized(t *testing.T, s *state) {
	t.Helper()
	d, err := os.ReadFile(filepath.Join("..", "assets", "data", "instruct_train.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	const steps = 3
	if r := s.tuneStart(js.Null(), []js.Value{jsBytes(d), js.ValueOf(map[string]any{"steps": steps})}).(map[string]any); r["ok"] != true {
		t.Fatalf("tuneStart: %v", r["error"])
	}
	var losses []float64
	for range steps {
		r := s.tuneStep(js.Null(), nil).(map[string]any)
		if r["ok"] != true {
			t.Fatalf("tuneStep: %v", r["error"])
		}
		losses = append(losses, r["loss"].(float64))
	}
	if !(losses[steps-1] < losses[0]) {
		t.Errorf("losses %v: no fall over %d steps", losses, steps)
	}
	if s.adapter == nil || !s.adapter.Enabled() {
		t.Fatal("no adapter on after tuning")
	}
	if ids := greedy(t, s, "What is 2+3?", true, 8); len(ids) == 0 {
		t.Error("no tokens with the tuned adapter")
	}
	t.Logf("LoRA on the q4_0 blocks: loss %.3f -> %.3f over %d steps", losses[0], losses[steps-1], steps)
}

// TestCheckFile: a file too large for the tab, or one that is not GGUF, is
// refused before it is read, with the limit or the reason in the message;
// copying a file in checks its slices.
func TestCheckFile(t *testing.T) {
	s := &state{}
	for _, tc := range []struct {
		name string
		size float64
		head []byte
		want string
	}{
		{"big.gguf", 3 << 30, []byte("GGUF"), "big.gguf is 3.0 GiB; the browser build opens GGUF files of up to 1.0 GiB"},
		{"notes.txt", 12, []byte("hell"), `notes.txt is not a GGUF file (it does not start with the bytes "GGUF")`},
		{"model.gguf", 1 << 20, []byte("GGUF"), ""},
	} {
		r := s.checkFile(js.Null(), []js.Value{js.ValueOf(tc.name), js.ValueOf(tc.size), jsBytes(tc.head)}).(map[string]any)
		if tc.want == "" {
			if r["ok"] != true {
				t.Errorf("%s: %v", tc.name, r["error"])
			}
			continue
		}
		if msg, _ := r["error"].(string); r["ok"] != false || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, r, tc.want)
		}
	}
	r := s.loadGGUF(js.Null(), []js.Value{js.ValueOf("notes.txt"), jsBytes([]byte("just some text"))}).(map[string]any)
	if msg, _ := r["error"].(string); !strings.Contains(msg, "notes.txt is not a GGUF file") {
		t.Errorf("loadGGUF of a text file: %v", r)
	}
	if s.m != nil {
		t.Error("a failed load left a model loaded")
	}
	// Copying in: the limit, slices out of order or past the end, and a
	// file opened before all of it arrived.
	errText := func(r any) string { m := r.(map[string]any); e, _ := m["error"].(string); return e }
	if e := errText(s.fileBegin(js.Null(), []js.Value{js.ValueOf("big.gguf"), js.ValueOf(2 << 30)})); !strings.Contains(e, "up to 1.0 GiB") {
		t.Errorf("fileBegin of 2 GiB: %q", e)
	}
	s.fileBegin(js.Null(), []js.Value{js.ValueOf("m.gguf"), js.ValueOf(10)})
	if e := errText(s.fileWrite(js.Null(), []js.Value{js.ValueOf(4), jsBytes([]byte("GGUF"))})); !strings.Contains(e, "4 bytes at offset 4 of 10 (0 written)") {
		t.Errorf("a slice out of order: %q", e)
	}
	s.fileWrite(js.Null(), []js.Value{js.ValueOf(0), jsBytes([]byte("GGUF"))})
	if e := errText(s.fileWrite(js.Null(), []js.Value{js.ValueOf(4), jsBytes(make([]byte, 7))})); !strings.Contains(e, "7 bytes at offset 4 of 10") {
		t.Errorf("a slice past the end: %q", e)
	}
	if e := errText(s.loadGGUF(js.Null(), []js.Value{js.ValueOf("m.gguf")})); !strings.Contains(e, "m.gguf: 4 of 10 bytes were copied in") {
		t.Errorf("opening a file not all copied in: %q", e)
	}
}
