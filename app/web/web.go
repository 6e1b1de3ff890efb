// Package web serves the browser demo from the binary: the page, its
// worker, the WebAssembly engine (gzip-compressed once when the browser
// accepts it) and the embedded demo model and adapter. Everything works
// offline; nothing is fetched from elsewhere.
package web

import (
	"bytes"
	"compress/gzip"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

// Server holds the file systems it serves.
type Server struct {
	Page    fs.FS // index.html, worker.js, wasm_exec.js, llmlab.wasm
	Model   fs.FS // config.json, model.safetensors, tokenizer.json, tokenizer_config.json
	Adapter fs.FS // adapter_config.json, adapter_model.safetensors (may be nil)
	Data    fs.FS // instruct_train.jsonl for the page's "tune it here" panel (may be nil)

	once sync.Once
	gz   []byte // llmlab.wasm, gzip-compressed
}

var types = map[string]string{
	".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".wasm": "application/wasm",
	".json": "application/json", ".safetensors": "application/octet-stream", ".jsonl": "application/jsonl",
}

// Handler returns the routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /model/{file}", func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, s.Model, r.PathValue("file")) })
	mux.HandleFunc("GET /adapter/{file}", func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, s.Adapter, r.PathValue("file")) })
	mux.HandleFunc("GET /data/{file}", func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, s.Data, r.PathValue("file")) })
	mux.HandleFunc("GET /{file}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("file")
		if name == "" {
			name = "index.html"
		}
		if name == "llmlab.wasm" && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			if gz := s.gzipped(); gz != nil {
				w.Header().Set("Content-Type", "application/wasm")
				w.Header().Set("Content-Encoding", "gzip")
				w.Header().Set("Vary", "Accept-Encoding")
				w.Write(gz)
				return
			}
		}
		s.serve(w, r, s.Page, name)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, s.Page, "index.html") })
	return mux
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, fsys fs.FS, name string) {
	if fsys == nil || strings.Contains(name, "/") || strings.HasPrefix(name, ".") {
		http.NotFound(w, r)
		return
	}
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		msg := "not found: " + name
		if name == "llmlab.wasm" || name == "wasm_exec.js" {
			msg = "this llmlab binary was built without the browser engine: run `make web`, then build again"
		}
		http.Error(w, msg, http.StatusNotFound)
		return
	}
	if t, ok := types[path.Ext(name)]; ok {
		w.Header().Set("Content-Type", t)
	}
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
}

func (s *Server) gzipped() []byte {
	s.once.Do(func() {
		b, err := fs.ReadFile(s.Page, "llmlab.wasm")
		if err != nil {
			return
		}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write(b)
		zw.Close()
		s.gz = buf.Bytes()
	})
	return s.gz
}
