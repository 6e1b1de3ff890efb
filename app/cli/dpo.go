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

// runDPO aligns a model on preference pairs with the DPO family of losses
// (sigmoid/cDPO, IPO, hinge, robust), with full weights or a LoRA policy
// whose reference is the base with the adapter switched off (or, for an
// adapter given with --adapter, a frozen snapshot of it).
func runDPO(e *Env) error {
	fs := newFlags(e, "dpo")
	var mf modelFlags
	mf.register(fs, true)
	dataPath := fs.String("data", "", "JSONL of {\"prompt\",\"chosen\",\"rejected\"} records (required)")
	tmplName := fs.String("template", "", "chat template (default: the model's own): "+chat.Names())
	lossName := fs.String("loss", "sigmoid", "sigmoid (cDPO with --label-smoothing), ipo, hinge, robust; or the reference-free simpo and orpo")
	gamma := fs.Float64("gamma", 0.5, "SimPO's target reward margin γ")
	orpoLambda := fs.Float64("orpo-lambda", 0.1, "ORPO's weight λ of the odds-ratio term")
	beta := fs.Float64("beta", 0.1, "β: strength of the KL leash to the reference")
	smoothing := fs.Float64("label-smoothing", 0, "ε: assumed fraction of flipped labels (cDPO, robust)")
	evalFrac := fs.Float64("eval-frac", 0.05, "fraction of pairs held out")
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
	// The flag keeps what was given (recipe reads it back).
	kind, loss := "dpo", *lossName
	if loss == "simpo" || loss == "orpo" {
		kind, loss = loss, "sigmoid"
	}
	lossKind, err := rlhf.ParseDPOLoss(loss)
	if err != nil {
		return BadInput(fmt.Errorf("%w (or simpo, orpo)", err))
	}
	dcfg := rlhf.DPOConfig{Loss: lossKind, Beta: float32(*beta), LabelSmoothing: float32(*smoothing)}
	if err := dcfg.Validate(); err != nil {
		return BadInput(err)
	}
	pr, err := prepareTraining(e, &mf, &tf, *tmplName, &pf)
	if err != nil {
		return err
	}
	cfg, b, l, tmpl := pr.cfg, pr.b, pr.l, pr.tmpl
	trainP, evalP, err := loadPairs(l, *dataPath, tmpl, tf.ctx, *evalFrac, tf.seed, e)
	if err != nil {
		return err
	}
	rec := runRecord{Command: "dpo", Model: mf.model, Data: []string{*dataPath}, Batch: tf.batch, Ctx: tf.ctx, Train: cfg,
		Extra: map[string]any{"dpo": dcfg, "kind": kind, "gamma": *gamma, "orpo_lambda": *orpoLambda, "peft": pf.method, "rank": pf.rank, "alpha": pf.alpha, "targets": pf.targets, "template": tmpl.String()}}
	if mf.adapter != "" { // recorded only when given, so older runs keep their hash
		rec.Extra["adapter"] = mf.adapter
	}
	if err := prepareRun(tf.out, rec, tf.resume); err != nil {
		return err
	}
	cfg.Hash = train.Hash(rec)

	// The policy and its reference.
	m := l.M
	params, weights, ref, adapter, err := preferencePolicy("dpo", l, &mf, &pf, b, tf.seed, e.Stderr)
	if err != nil {
		return err
	}
	cached := rlhf.NewCachedReference(ref)
	pad := max(l.Tok.PAD(), max(l.Tok.EOS(), 0))
	src := &rlhf.PairSource{Pairs: trainP, Rows: tf.batch, Seed: tf.seed, Pad: pad}
	var ev train.EvalSource
	if len(evalP) > 0 {
		es := &rlhf.PairSource{Pairs: evalP, Rows: min(tf.batch, len(evalP)), Seed: tf.seed, Pad: pad}
		var bs []data.Batch
		for range (len(evalP) + es.Rows - 1) / es.Rows {
			bt, err := es.Next()
			if err != nil {
				return err
			}
			bs = append(bs, bt)
		}
		ev = train.Batches(bs)
	}
	obj := &rlhf.DPOObjective{M: m, Cfg: dcfg, Ref: cached, Ctx: e.Ctx, Kind: kind,
		SimPO: rlhf.SimPOConfig{Beta: float32(*beta), Gamma: float32(*gamma), LabelSmoothing: float32(*smoothing)}, ORPOLambda: float32(*orpoLambda)}
	repo, err := newReporter(e, tf.jsonOut, tf.out)
	if err != nil {
		return err
	}
	defer repo.close()
	log := e.Stdout
	if tf.jsonOut {
		log = e.Stderr
	}
	what := dcfg.Loss.String()
	if kind != "dpo" {
		what = kind
	}
	fmt.Fprintf(log, "preference tuning (%s, β=%g) on %d pairs (%d held out), %s\n", what, dcfg.Beta, len(trainP), len(evalP), pf.method)
	err = train.Run(e.Ctx, cfg, b, obj, src, ev, params, weights, repo.event)
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
	fmt.Fprintf(log, "saved %s (reference log-probs cached for %d rows)\n", final, cached.Len())
	return nil
}
