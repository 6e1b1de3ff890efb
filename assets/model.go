package assets

import (
	"embed"
	"io/fs"
)

// The demo model: a small Llama-family model pretrained by `make
// demo-model` on the demo stories, stored as f16 safetensors with its
// tokenizer, in HF layout.
//
//go:embed model/config.json model/model.safetensors model/tokenizer.json model/tokenizer_config.json model/generation_config.json
var demoModel embed.FS

// DemoModel returns the demo model's folder as a file system.
func DemoModel() fs.FS {
	sub, err := fs.Sub(demoModel, "model")
	if err != nil {
		panic(err) // the embed pattern above guarantees the folder
	}
	return sub
}
