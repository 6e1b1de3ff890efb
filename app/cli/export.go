package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"llmlab/core/chat"
	"llmlab/core/checkpoint"
	"llmlab/core/model"
	"llmlab/core/tensor"
)

// runExport writes a model as a GGUF file for llama.cpp and ollama, with
// an ollama Modelfile beside it. With --adapter, a LoRA adapter is written
// as a GGUF adapter file next to the base (the Modelfile's ADAPTER line);
// adapters GGUF cannot hold (DoRA, IA3, trained embeddings), or any with
// --merge, are folded into the exported model instead.
func runExport(e *Env) error {
	fs := newFlags(e, "export")
	var mf modelFlags
	mf.register(fs, true)
	format := fs.String("format", "gguf", "output format: gguf")
	out := fs.String("out", "", "output file (required)")
	dtype := fs.String("dtype", "", "matrix dtype: f16 or f32 (the same as --quant f16 or f32)")
	quantName := fs.String("quant", "f16", "tensor types: f32, f16, bf16, q8_0, q6_k, q5_k_m, q4_k_m or q4_0 (the _m mixtures as llama.cpp's; norms stay f32)")
	merge := fs.Bool("merge", false, "fold the adapter into the exported model instead of writing a GGUF adapter beside it")
	tmplName := fs.String("template", "", "chat template for the Modelfile's TEMPLATE (default: the model's own): "+chat.Names())
	if err := parse(fs, e.Args); err != nil {
		return err
	}
	if *format != "gguf" {
		return Usagef("--format %q: only gguf is supported", *format)
	}
	if *out == "" {
		return Usagef("--out is required")
	}
	if *dtype != "" {
		if *dtype != "f16" && *dtype != "f32" {
			return Usagef("--dtype must be f16 or f32")
		}
		*quantName = *dtype
	}
	q, err := model.ParseGGUFQuant(*quantName)
	if err != nil {
		return Usagef("--quant: %v", err)
	}
	dt := tensor.F16 // a LoRA adapter written beside the model
	if q == model.QuantF32 {
		dt = tensor.F32
	}
	l, err := mf.load(model.LoadOptions{})
	if err != nil {
		return err
	}
	// A plain LoRA adapter goes out as a GGUF adapter; the others are merged.
	var adapterFile *checkpoint.GGUFFile
	if l.Adapter != nil && !*merge {
		name := filepath.Base(filepath.Clean(mf.adapter))
		if adapterFile, err = l.Adapter.GGUF(name, dt); err != nil {
			fmt.Fprintf(e.Stderr, "%v\nmerging it into the exported model instead\n", err)
			adapterFile = nil
		} else {
			l.Adapter.Remove()
		}
	}
	if adapterFile == nil {
		if err := l.mergeAdapter(mf.adapter); err != nil {
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
	f, qst, err := l.M.GGUFQuantized(model.Vocab{Tokens: toks, Types: types, Merges: l.Tok.MergeList(),
		BOS: l.Tok.BOS(), EOS: l.Tok.EOS(), PAD: l.Tok.PAD(), ChatTemplate: l.Tok.ChatTemplate()}, name, q)
	if err != nil {
		return BadInput(err)
	}
	for _, c := range l.M.Cfg.GGUFCaveats() {
		fmt.Fprintf(e.Stderr, "note: %s\n", c)
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
	var mfText strings.Builder
	fmt.Fprintf(&mfText, "FROM ./%s\n", filepath.Base(*out))
	if adapterFile != nil {
		apath := strings.TrimSuffix(*out, filepath.Ext(*out)) + ".adapter.gguf"
		if err := checkpoint.WriteGGUF(apath, adapterFile); err != nil {
			return err
		}
		ag, err := checkpoint.ReadGGUF(apath)
		if err != nil {
			return fmt.Errorf("re-reading %s: %w", apath, err)
		}
		if len(ag.Tensors) != len(adapterFile.Tensors) {
			return fmt.Errorf("re-reading %s: %d tensors, wrote %d", apath, len(ag.Tensors), len(adapterFile.Tensors))
		}
		fmt.Fprintf(&mfText, "ADAPTER ./%s\n", filepath.Base(apath))
		fmt.Fprintf(e.Stdout, "wrote %s (LoRA adapter, %d tensors)\n", apath, len(ag.Tensors))
	}
	if tmpl, err := chooseFormat(l, *tmplName); err == nil {
		text, stops, err := ollamaTemplate(tmpl, l.Tok)
		if err != nil {
			return err
		}
		fmt.Fprintf(&mfText, "TEMPLATE \"\"\"%s\"\"\"\n", text)
		for _, s := range stops {
			fmt.Fprintf(&mfText, "PARAMETER stop %q\n", s)
		}
	} else {
		fmt.Fprintf(e.Stderr, "no TEMPLATE in the Modelfile: %v\n", err)
	}
	// The Modelfile sits beside the model and is named after it, so
	// several exports can share a folder.
	modelfile := strings.TrimSuffix(*out, filepath.Ext(*out)) + ".Modelfile"
	if err := checkpoint.WriteFileAtomic(modelfile, []byte(mfText.String()), 0o644); err != nil {
		return err
	}
	st, err := os.Stat(*out)
	if err != nil {
		return err
	}
	all, whole := qst.BitsPerWeight()
	fmt.Fprintf(e.Stdout, "wrote %s (%s %s, %d tensors, %s, %.2f bits per weight", *out, g.KV["general.architecture"], q, len(g.Tensors), bytesHuman(st.Size()), all)
	if qst.BlockElems > 0 && qst.BlockElems < qst.Elems {
		fmt.Fprintf(e.Stdout, "; %.2f on the matrices with rows of whole 256-blocks", whole)
	}
	fmt.Fprintf(e.Stdout, "; %s) and %s\n", typeCounts(qst.Types), modelfile)
	return nil
}

// ollamaTemplate turns a chat template into an ollama TEMPLATE (Go
// template syntax: .System, .Prompt, .Response) and its stop strings, by
// rendering a conversation with marked placeholders.
func ollamaTemplate(t chat.Format, v chat.Vocab) (string, []string, error) {
	const sys, prompt = "\x01SYSTEM\x01", "\x01PROMPT\x01"
	fill := func(s string) string {
		if t.IncludesBOS() { // llama.cpp adds BOS itself
			s = stripBOS(s)
		}
		return strings.NewReplacer(sys, "{{ .System }}", prompt, "{{ .Prompt }}").Replace(s)
	}
	plain, err := t.Text([]chat.Message{{Role: chat.RoleUser, Content: prompt}}, true)
	if err != nil {
		return "", nil, err
	}
	out := fill(plain) + "{{ .Response }}"
	if withSys, err := t.Text([]chat.Message{{Role: chat.RoleSystem, Content: sys}, {Role: chat.RoleUser, Content: prompt}}, true); err == nil && withSys != plain {
		out = "{{ if .System }}" + fill(withSys) + "{{ else }}" + fill(plain) + "{{ end }}{{ .Response }}"
	}
	_, stops := t.Stops(v)
	return out, stops, nil
}

// stripBOS removes the BOS token text a chat template starts with.
func stripBOS(s string) string {
	for _, b := range []string{"<s>", "<|begin_of_text|>", "<bos>"} {
		if rest, ok := strings.CutPrefix(s, b); ok {
			return rest
		}
	}
	return s
}

// typeCounts lists tensor types with their counts, most common first.
func typeCounts(m map[string]int) string {
	type tc struct {
		t string
		n int
	}
	var l []tc
	for t, n := range m {
		l = append(l, tc{t, n})
	}
	sort.Slice(l, func(i, j int) bool { return l[i].n > l[j].n || l[i].n == l[j].n && l[i].t < l[j].t })
	parts := make([]string, len(l))
	for i, x := range l {
		parts[i] = fmt.Sprintf("%d %s", x.n, x.t)
	}
	return strings.Join(parts, ", ")
}
