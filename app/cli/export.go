package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"llmlab/core/checkpoint"
	"llmlab/core/model"
	"llmlab/core/tensor"
)

// runExport writes a model (with an adapter merged in, if given) as a GGUF
// file for llama.cpp and ollama, with an ollama Modelfile beside it.
func runExport(e *Env) error {
	fs := newFlags(e, "export")
	var mf modelFlags
	mf.register(fs, true)
	format := fs.String("format", "gguf", "output format: gguf")
	out := fs.String("out", "", "output file (required)")
	dtype := fs.String("dtype", "f16", "matrix dtype: f16 or f32 (norms stay f32)")
	if err := parse(fs, e.Args); err != nil {
		return err
	}
	if *format != "gguf" {
		return Usagef("--format %q: only gguf is supported", *format)
	}
	if *out == "" {
		return Usagef("--out is required")
	}
	dt := tensor.F16
	if *dtype == "f32" {
		dt = tensor.F32
	} else if *dtype != "f16" {
		return Usagef("--dtype must be f16 or f32")
	}
	l, err := mf.load(model.LoadOptions{})
	if err != nil {
		return err
	}
	if mf.adapter != "" && l.Adapter == nil {
		return BadInput(fmt.Errorf("%s: only LoRA adapters can be merged so far", mf.adapter))
	}
	if l.Adapter != nil {
		if err := l.Adapter.Merge(); err != nil {
			return err
		}
	}
	toks, special := l.Tok.Vocabulary()
	types := make([]int32, len(toks))
	for i, s := range special {
		types[i] = 1
		if s {
			types[i] = 3
		}
	}
	name := filepath.Base(filepath.Clean(l.Dir))
	if mf.model == "demo" {
		name = "llmlab-demo"
	}
	f, err := l.M.GGUF(model.Vocab{Tokens: toks, Types: types, Merges: l.Tok.MergeList(),
		BOS: l.Tok.BOS(), EOS: l.Tok.EOS(), PAD: l.Tok.PAD(), ChatTemplate: l.Tok.ChatTemplate()}, name, dt)
	if err != nil {
		return BadInput(err)
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	if err := checkpoint.WriteGGUF(*out, f); err != nil {
		return err
	}
	// Read it back: every key and tensor must be there.
	g, err := checkpoint.ReadGGUF(*out)
	if err != nil {
		return fmt.Errorf("re-reading %s: %w", *out, err)
	}
	if len(g.KV) != len(f.KV) || len(g.Tensors) != len(f.Tensors) {
		return fmt.Errorf("re-reading %s: %d keys and %d tensors, wrote %d and %d", *out, len(g.KV), len(g.Tensors), len(f.KV), len(f.Tensors))
	}
	modelfile := filepath.Join(filepath.Dir(*out), "Modelfile")
	mfText := fmt.Sprintf("FROM ./%s\n", filepath.Base(*out))
	if err := checkpoint.WriteFileAtomic(modelfile, []byte(mfText), 0o644); err != nil {
		return err
	}
	st, _ := os.Stat(*out)
	fmt.Fprintf(e.Stdout, "wrote %s (%s, %d tensors, %s) and %s\n", *out, g.KV["general.architecture"], len(g.Tensors), bytesHuman(st.Size()), modelfile)
	return nil
}
