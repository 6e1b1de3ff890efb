package assets

import (
	"embed"
	"io/fs"
)

// The browser demo: index.html and worker.js (committed), and, when `make
// web` ran before the build, llmlab.wasm and Go's wasm_exec.js.
//
//go:embed web
var web embed.FS

// Web returns the browser demo's files.
func Web() fs.FS {
	sub, err := fs.Sub(web, "web")
	if err != nil {
		panic(err)
	}
	return sub
}

// The LoRA adapter that `llmlab demo` trains on the demo model (its
// instruction-following switch in the browser demo).
//
//go:embed adapter/adapter_config.json adapter/adapter_model.safetensors
var demoAdapter embed.FS

// DemoAdapter returns the demo adapter's folder.
func DemoAdapter() fs.FS {
	sub, err := fs.Sub(demoAdapter, "adapter")
	if err != nil {
		panic(err)
	}
	return sub
}

// The instruction set as a file system, for the browser demo's "tune it
// here" panel.
//
//go:embed data/instruct_train.jsonl
var webData embed.FS

// WebData returns a folder holding instruct_train.jsonl.
func WebData() fs.FS {
	sub, err := fs.Sub(webData, "data")
	if err != nil {
		panic(err)
	}
	return sub
}
