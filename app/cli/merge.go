package cli

import (
	"fmt"

	"llmlab/core/model"
)

// runMerge folds a LoRA adapter into its base and writes a plain HF folder.
func runMerge(e *Env) error {
	fs := newFlags(e, "merge")
	var mf modelFlags
	mf.register(fs, true)
	out := fs.String("out", "", "output folder (required)")
	dtype := fs.String("dtype", "f32", "stored dtype: f32, f16 or bf16")
	if err := parse(fs, e.Args); err != nil {
		return err
	}
	if *out == "" || mf.adapter == "" {
		return Usagef("--adapter and --out are required")
	}
	dt, err := parseDType(*dtype)
	if err != nil {
		return err
	}
	l, err := mf.load(model.LoadOptions{})
	if err != nil {
		return err
	}
	if err := l.mergeAdapter(mf.adapter); err != nil {
		return err
	}
	if err := l.M.Save(*out, model.SaveOptions{DType: dt}); err != nil {
		return err
	}
	if err := l.Tok.Save(*out); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "merged %s into %s: %s\n", mf.adapter, l.Name, *out)
	return nil
}
