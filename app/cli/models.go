package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"llmlab/core/source"
)

// runModels lists the models --model can open: ollama's store
// ($OLLAMA_MODELS, else ~/.ollama/models) and models folders (HF folders
// and .gguf files directly inside them: --dir, $LLMLAB_MODELS, ./models).
func runModels(e *Env) error {
	fs := newFlags(e, "models")
	var dirs []string
	fs.Func("dir", "a folder of models to list (repeatable; default $LLMLAB_MODELS and ./models)", func(s string) error {
		dirs = append(dirs, s)
		return nil
	})
	jsonOut := fs.Bool("json", false, "one JSON object per model")
	if err := parse(fs, e.Args); err != nil {
		return err
	}
	if len(dirs) == 0 {
		if d := os.Getenv("LLMLAB_MODELS"); d != "" {
			dirs = append(dirs, filepath.SplitList(d)...)
		}
		dirs = append(dirs, "models")
	}
	entries := source.List(source.OllamaDir(), dirs...)
	if *jsonOut {
		enc := json.NewEncoder(e.Stdout)
		for _, en := range entries {
			enc.Encode(map[string]any{"model": en.Ref, "kind": en.Kind.String(), "path": en.Path, "bytes": en.Size,
				"arch": en.Arch, "type": en.Type, "error": en.Error})
		}
		return nil
	}
	if len(entries) == 0 {
		fmt.Fprintf(e.Stdout, "no models found in %s or %s\n", source.OllamaDir(), strings.Join(dirs, ", "))
		return nil
	}
	tw := tabwriter.NewWriter(e.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tKIND\tARCH\tTYPE\tSIZE\t")
	for _, en := range entries {
		size := bytesHuman(en.Size)
		if en.Error != "" {
			size += "\t(" + en.Error + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", en.Ref, en.Kind, en.Arch, en.Type, size)
	}
	return tw.Flush()
}
