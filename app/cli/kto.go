package cli

import (
	"errors"
	"fmt"
	"path/filepath"

	"llmlab/core/chat"
	"llmlab/core/data"
	"llmlab/core/model"
	"llmlab/core/train"
	"llmlab/rlhf"
)

// runKTO aligns a model on unpaired desirable/undesirable examples (KTO),
// with a LoRA policy (reference: adapter off, or a snapshot of the adapter
// given with --adapter) or full weights.
func runKTO(e *Env) error {
	fs := newFlags(e, "kto")
	var mf modelFlags
	mf.register(fs, true)
	dataPath := fs.String("data", "", "JSONL of {\"prompt\",\"completion\",\"label\"} records (required)")
	tmplName := fs.String("template", "", "chat template (default: the model's own): "+chat.Names())
	beta := fs.Float64("beta", 0.1, "β")
	wd := fs.Float64("desirable-weight", 1, "λ_D, the weight of desirable examples")
	wu := fs.Float64("undesirable-weight", 1, "λ_U, the weight of undesirable examples")
	var pf peftFlags
	pf.register(fs)
	var tf trainFlags
	tf.register(fs, 200, 4, 256, 5e-4)
	if err := parse(fs, e.Args); err != nil {
		return err
	}
	if tf.out == "" || *dataPath == "" {
		return Usagef("--data and --out are required")
	}
	kcfg := rlhf.KTOConfig{Beta: float32(*beta), DesirableWeight: float32(*wd), UndesirableWeight: float32(*wu)}
	if kcfg.Beta <= 0 {
		return Usagef("--beta must be positive")
	}
	pr, err := prepareTraining(e, &mf, &tf, *tmplName, &pf)
	if err != nil {
		return err
	}
	cfg, b, l, tmpl := pr.cfg, pr.b, pr.l, pr.tmpl
	ds, err := data.LoadJSONL(*dataPath)
	if err != nil {
		return BadInput(err)
	}
	if ds.Shape != data.ShapeKTO {
		return BadInput(fmt.Errorf("%s holds %s records; kto wants {\"prompt\",\"completion\",\"label\"}", *dataPath, ds.Shape))
	}
	exs, _, err := data.BuildKTO(l.Tok, ds, data.BuildOpts{Ctx: tf.ctx}.With(tmpl))
	if err != nil {
		return BadInput(err)
	}
	if len(exs) < 2 {
		return BadInput(fmt.Errorf("%s: KTO needs at least 2 usable examples", *dataPath))
	}
	rec := runRecord{Command: "kto", Model: mf.model, Data: []string{*dataPath}, Batch: tf.batch, Ctx: tf.ctx, Train: cfg,
		Extra: map[string]any{"kto": kcfg, "peft": pf.method, "rank": pf.rank, "targets": pf.targets, "template": tmpl.String()}}
	if mf.adapter != "" { // recorded only when given, so older runs keep their hash
		rec.Extra["adapter"] = mf.adapter
	}
	if err := prepareRun(tf.out, rec, tf.resume); err != nil {
		return err
	}
	cfg.Hash = train.Hash(rec)
	m := l.M
	params, weights, ref, adapter, err := preferencePolicy("kto", l, &mf, &pf, b, tf.seed, e.Stderr)
	if err != nil {
		return err
	}
	src := &rlhf.KTOSource{Examples: exs, Rows: tf.batch, Seed: tf.seed, Pad: max(l.Tok.PAD(), max(l.Tok.EOS(), 0))}
	repo, err := newReporter(e, tf.jsonOut, tf.out)
	if err != nil {
		return err
	}
	defer repo.close()
	log := e.Stdout
	if tf.jsonOut {
		log = e.Stderr
	}
	fmt.Fprintf(log, "KTO (β=%g) on %d examples, %s\n", kcfg.Beta, len(exs), pf.method)
	err = train.Run(e.Ctx, cfg, b, &rlhf.KTOObjective{M: m, Cfg: kcfg, Ref: ref, Src: src, Ctx: e.Ctx}, src, nil, params, weights, repo.event)
	if e.Ctx.Err() != nil && errors.Is(err, e.Ctx.Err()) {
		fmt.Fprintln(e.Stderr, "stopped; resume with the same command and --resume")
		return nil
	}
	if err != nil {
		return err
	}
	final := filepath.Join(tf.out, "final")
	if adapter != nil {
		err = adapter.Save(final, l.Dir)
	} else if err = m.Save(final, model.SaveOptions{}); err == nil {
		err = l.Tok.Save(final)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "saved %s\n", final)
	return nil
}
