package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"

	"llmlab/core/autograd"
	"llmlab/core/chat"
	"llmlab/core/data"
	"llmlab/core/model"
	"llmlab/core/train"
	"llmlab/lora"
	"llmlab/rlhf"
)

// rmWeights checkpoints the policy part (model or adapter) and the head.
type rmWeights struct {
	inner train.Weights
	rm    *rlhf.RewardModel
}

func (w rmWeights) SaveWeights(dir string) error {
	if err := w.inner.SaveWeights(dir); err != nil {
		return err
	}
	return w.rm.SaveHead(dir)
}

func (w rmWeights) LoadWeights(dir string) error {
	if err := w.inner.LoadWeights(dir); err != nil {
		return err
	}
	return w.rm.LoadHead(dir)
}

// loadPairs reads preference pairs and splits off a held-out part.
func loadPairs(l *loaded, path string, tmpl chat.Format, ctx int, evalFrac float64, seed uint64, e *Env) (tr, ev []data.Pair, err error) {
	ds, err := data.LoadJSONL(path)
	if err != nil {
		return nil, nil, BadInput(err)
	}
	if !ds.Shape.Pairwise() {
		return nil, nil, BadInput(fmt.Errorf("%s holds %s records; want {\"prompt\",\"chosen\",\"rejected\"}", path, ds.Shape))
	}
	pairs, rep, err := data.BuildPairs(l.Tok, ds, data.BuildOpts{Ctx: ctx}.With(tmpl))
	if err != nil {
		return nil, nil, BadInput(err)
	}
	for _, d := range rep.NoLoss {
		fmt.Fprintf(e.Stderr, "%s:%d: skipped: %s\n", path, d.Line, d.Why)
	}
	if len(pairs) == 0 {
		return nil, nil, BadInput(fmt.Errorf("%s: no usable pairs", path))
	}
	ti, ei := data.SplitIndices(len(pairs), evalFrac, seed)
	for _, i := range ti {
		tr = append(tr, pairs[i])
	}
	for _, i := range ei {
		ev = append(ev, pairs[i])
	}
	return tr, ev, nil
}

// pairAccuracy scores pairs with rm and returns the fraction ranked right.
func pairAccuracy(e *Env, l *loaded, rm *rlhf.RewardModel, pairs []data.Pair, batch int, b *modelFlags) (float64, []float32, error) {
	be, _ := b.backend(e)
	tp := autograd.NewTape(be)
	tp.NoGrad = true
	pad := max(l.Tok.PAD(), max(l.Tok.EOS(), 0))
	src := &rlhf.PairSource{Pairs: pairs, Rows: min(batch, len(pairs)), Pad: pad}
	right, n := 0, 0
	var rewards []float32
	for n < len(pairs) {
		bt, err := src.Next()
		if err != nil {
			return 0, nil, err
		}
		tp.Reset()
		r, err := rm.Rewards(tp, bt)
		if err != nil {
			return 0, nil, err
		}
		half := bt.B / 2
		rv := r.Value.Float32s() // a copy when the backend keeps it on the device
		for i := 0; i < half && n < len(pairs); i++ {
			if rv[i] > rv[half+i] {
				right++
			}
			rewards = append(rewards, rv[i], rv[half+i])
			n++
		}
	}
	return float64(right) / float64(n), rewards, nil
}

// runRM trains a reward model on preference pairs (Bradley–Terry).
func runRM(e *Env) error {
	fs := newFlags(e, "rm")
	var mf modelFlags
	mf.register(fs, false)
	dataPath := fs.String("data", "", "JSONL of {\"prompt\",\"chosen\",\"rejected\"} records (required)")
	tmplName := fs.String("template", "", "chat template (default: the model's own): "+chat.Names())
	margin := fs.Float64("margin", 0, "required reward margin in the Bradley–Terry loss")
	evalFrac := fs.Float64("eval-frac", 0.05, "fraction of pairs held out")
	var pf peftFlags
	pf.register(fs)
	var tf trainFlags
	tf.register(fs, 200, 8, 256, 1e-3)
	if err := parse(fs, e.Args); err != nil {
		return err
	}
	if tf.out == "" || *dataPath == "" {
		return Usagef("--data and --out are required")
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
	rec := runRecord{Command: "rm", Model: mf.model, Data: []string{*dataPath}, Batch: tf.batch, Ctx: tf.ctx, Train: cfg,
		Extra: map[string]any{"margin": *margin, "peft": pf.method, "rank": pf.rank, "targets": pf.targets, "template": tmpl.String()}}
	if err := prepareRun(tf.out, rec, tf.resume); err != nil {
		return err
	}
	cfg.Hash = train.Hash(rec)
	rmod := rlhf.NewRewardModel(l.M)
	var inner train.Weights = train.ModelWeights{M: l.M}
	params := append(l.M.ParamList(), rmod.Head.Params()...)
	var adapter *lora.Adapter
	if err := pf.quantize(l.M, e.Stderr); err != nil {
		return err
	}
	switch pf.method {
	case "lora", "dora":
		adapter, err = lora.Apply(l.M, pf.loraConfig(tf.seed))
		if err != nil {
			return BadInput(err)
		}
		inner, params = adapter, append(adapter.Params(), rmod.Head.Params()...)
	case "none":
		l.M.Freeze(false)
	default:
		return BadInput(fmt.Errorf("--peft %q: rm supports none, lora and dora", pf.method))
	}
	pad := max(l.Tok.PAD(), max(l.Tok.EOS(), 0))
	src := &rlhf.PairSource{Pairs: trainP, Rows: tf.batch, Seed: tf.seed, Pad: pad}
	repo, err := newReporter(e, tf.jsonOut, tf.out)
	if err != nil {
		return err
	}
	defer repo.close()
	log := e.Stdout
	if tf.jsonOut {
		log = e.Stderr
	}
	fmt.Fprintf(log, "reward model on %d pairs (%d held out), %s\n", len(trainP), len(evalP), pf.method)
	before := -1.0
	if len(evalP) > 0 {
		if before, _, err = pairAccuracy(e, l, rmod, evalP, tf.batch, &mf); err != nil {
			return err
		}
	}
	err = train.Run(e.Ctx, cfg, b, &rlhf.RewardObjective{RM: rmod, Margin: float32(*margin)}, src, nil, params, rmWeights{inner, rmod}, repo.event)
	if e.Ctx.Err() != nil && errors.Is(err, e.Ctx.Err()) {
		fmt.Fprintln(e.Stderr, "stopped; resume with the same command and --resume")
		return nil
	}
	if err != nil {
		return err
	}
	after := -1.0
	if len(evalP) > 0 {
		if after, _, err = pairAccuracy(e, l, rmod, evalP, tf.batch, &mf); err != nil {
			return err
		}
	}
	final := filepath.Join(tf.out, "final")
	if adapter != nil {
		if err := adapter.Merge(); err != nil {
			return err
		}
	}
	if err := l.M.Save(final, model.SaveOptions{}); err != nil {
		return err
	}
	if err := l.Tok.Save(final); err != nil {
		return err
	}
	if err := rmod.SaveHead(final); err != nil {
		return err
	}
	if tf.jsonOut {
		return json.NewEncoder(e.Stdout).Encode(map[string]any{"heldout_accuracy_before": before, "heldout_accuracy": after, "out": final})
	}
	fmt.Fprintf(log, "held-out pairwise accuracy %.1f%% (before training %.1f%%); reward model in %s\n", 100*after, 100*before, final)
	return nil
}

// runScore scores preference pairs with a reward model made by `rm`.
func runScore(e *Env) error {
	fs := newFlags(e, "score")
	var mf modelFlags
	mf.register(fs, false)
	dataPath := fs.String("data", "", "JSONL of {\"prompt\",\"chosen\",\"rejected\"} records (required)")
	tmplName := fs.String("template", "", "chat template (default: the model's own)")
	jsonOut := fs.Bool("json", false, "one JSON object per pair, then the summary")
	if err := parse(fs, e.Args); err != nil {
		return err
	}
	if *dataPath == "" {
		return Usagef("--data is required")
	}
	l, err := mf.load(model.LoadOptions{})
	if err != nil {
		return err
	}
	rmod := rlhf.NewRewardModel(l.M)
	if err := rmod.LoadHead(l.Dir); err != nil {
		return BadInput(fmt.Errorf("%s is not a reward model (run llmlab rm): %w", l.Name, err))
	}
	tmpl, err := chooseFormat(l, *tmplName)
	if err != nil {
		return err
	}
	pairs, _, err := loadPairs(l, *dataPath, tmpl, l.M.Cfg.MaxPos, 0, 1, e)
	if err != nil {
		return err
	}
	acc, rewards, err := pairAccuracy(e, l, rmod, pairs, 8, &mf)
	if err != nil {
		return err
	}
	if *jsonOut {
		enc := json.NewEncoder(e.Stdout)
		for i := range pairs {
			enc.Encode(map[string]any{"line": pairs[i].Line, "chosen": rewards[2*i], "rejected": rewards[2*i+1]})
		}
		return enc.Encode(map[string]any{"pairs": len(pairs), "accuracy": acc})
	}
	fmt.Fprintf(e.Stdout, "%d pairs, chosen ranked above rejected in %.1f%%\n", len(pairs), 100*acc)
	return nil
}
