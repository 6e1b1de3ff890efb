package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"llmlab/core/chat"
	"llmlab/core/data"
	"llmlab/core/model"
	"llmlab/core/tensor"
	"llmlab/core/train"
	"llmlab/lora"
)

// peftFlags configure the PEFT method of a fine-tune.
type peftFlags struct {
	method  string
	rank    int
	alpha   float64
	targets string
	rslora  bool
	save    string
	// prefix and prompt tuning
	virtual    int
	projection bool
	promptInit string
	// bottleneck adapters
	bottleneck int
	act        string
	quant      string // none, int8 or nf4: the frozen base's storage
}

func (p *peftFlags) register(fs interface {
	StringVar(*string, string, string, string)
	IntVar(*int, string, int, string)
	Float64Var(*float64, string, float64, string)
	BoolVar(*bool, string, bool, string)
}) {
	fs.StringVar(&p.method, "peft", "lora", "PEFT method: none (full fine-tune), lora, dora, adapter (bottleneck), ia3, prefix or prompt")
	fs.IntVar(&p.rank, "rank", 8, "LoRA rank r")
	fs.Float64Var(&p.alpha, "alpha", 16, "LoRA alpha (scale alpha/r)")
	fs.StringVar(&p.targets, "targets", "all-linear", "comma-separated modules to adapt (q_proj,v_proj,c_attn,... or all-linear)")
	fs.BoolVar(&p.rslora, "rslora", false, "scale by alpha/sqrt(r) (rsLoRA)")
	fs.StringVar(&p.save, "modules-to-save", "", "base modules trained in full beside LoRA (PEFT modules_to_save): embed_tokens")
	fs.StringVar(&p.quant, "quant", "none", "hold the frozen base quantized: none, bf16 (half the memory; on a GPU with --bf16 the products read it as it is), int8 (per channel) or nf4 (4-bit, blocks of 64), QLoRA-style")
	fs.IntVar(&p.bottleneck, "bottleneck", 16, "bottleneck adapters: width r of the down/up projections")
	fs.StringVar(&p.act, "adapter-act", "relu", "bottleneck adapters: non-linearity (relu, gelu, silu)")
	fs.IntVar(&p.virtual, "virtual-tokens", 20, "prefix and prompt tuning: number of virtual tokens")
	fs.BoolVar(&p.projection, "prefix-projection", false, "prefix tuning: train the prefixes through an MLP (folded when saved)")
	fs.StringVar(&p.promptInit, "prompt-init", "", "prompt tuning: initialise the virtual tokens from this text (default: random vocabulary rows)")
}

// loraConfig is the LoRA or DoRA configuration the flags describe.
func (p *peftFlags) loraConfig(seed uint64) lora.Config {
	c := lora.Config{Method: lora.LoRA, Rank: p.rank, Alpha: p.alpha, RSLoRA: p.rslora,
		Targets: splitList(p.targets), ModulesToSave: splitList(p.save), Seed: seed}
	if strings.EqualFold(p.method, "dora") {
		c.Method = lora.DoRA
	}
	return c
}

// quantize stores the base's projection weights as --quant says (before
// any adapter is applied) and reports the memory saved.
func (p *peftFlags) quantize(m *model.Transformer, log io.Writer) error {
	var dt tensor.DType
	switch strings.ToLower(p.quant) {
	case "", "none":
		return nil
	case "int8", "q8":
		dt = tensor.Q8
	case "nf4":
		dt = tensor.NF4
	case "bf16":
		dt = tensor.BF16
	default:
		return BadInput(fmt.Errorf("--quant %q: want none, bf16, int8 or nf4", p.quant))
	}
	if strings.EqualFold(p.method, "none") || strings.EqualFold(p.method, "full") {
		return BadInput(fmt.Errorf("--quant %s needs a PEFT method: quantized weights are frozen (use --peft lora)", p.quant))
	}
	st, err := m.Quantize(dt)
	if err != nil {
		return BadInput(err)
	}
	fmt.Fprintf(log, "base quantized to %v: %d projections, %s -> %s\n", dt, st.Tensors, humanBytes(st.BytesBefore), humanBytes(st.BytesAfter))
	return nil
}

// humanBytes formats a byte count as 12.3 MB.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
}

// virtualTokens is how many context positions the PEFT method takes.
func (p *peftFlags) virtualTokens() int {
	switch strings.ToLower(p.method) {
	case "prefix", "prompt":
		return p.virtual
	}
	return 0
}

// sftJob is one supervised fine-tune, shared by `sft` and `demo`.
type sftJob struct {
	L          *loaded
	Train      []data.Example
	Eval       []data.Example
	PEFT       peftFlags
	Cfg        train.Config
	Batch, Ctx int
	Pack       bool
	Backend    tensor.Backend
	On         func(train.Event)
	Log        io.Writer
	ia3        *lora.IA3Adapter
	prefix     *lora.PrefixAdapter
	bottleneck *lora.BottleneckAdapter
}

// run applies the PEFT method, trains, and returns the adapter (nil for a
// full fine-tune).
func (j *sftJob) run(ctx context.Context) (*lora.Adapter, error) {
	m := j.L.M
	params := m.ParamList()
	var weights train.Weights = train.ModelWeights{M: m}
	var adapter *lora.Adapter
	if err := j.PEFT.quantize(m, j.Log); err != nil {
		return nil, err
	}
	switch strings.ToLower(j.PEFT.method) {
	case "none", "full":
		m.Freeze(false)
		fmt.Fprintf(j.Log, "full fine-tune: trainable %s parameters\n", human(m.NumParams()))
	case "lora", "dora":
		lc := j.PEFT.loraConfig(j.Cfg.Seed)
		method := lc.Method
		var err error
		adapter, err = lora.Apply(m, lc)
		if err != nil {
			return nil, BadInput(err)
		}
		params, weights = adapter.Params(), adapter
		fmt.Fprintf(j.Log, "%s r=%d alpha=%g on %s: %s\n", strings.ToUpper(method.String()), j.PEFT.rank, j.PEFT.alpha, j.PEFT.targets, adapter.TrainableSummary())
	case "ia3":
		targets := splitList(j.PEFT.targets)
		if j.PEFT.targets == "all-linear" {
			targets = nil // PEFT's defaults: keys, values and the MLP's down projection
		}
		ia, err := lora.ApplyIA3(m, targets, nil)
		if err != nil {
			return nil, BadInput(err)
		}
		params, weights = ia.Params(), ia
		n := 0
		for _, p := range params {
			n += p.Value.Numel()
		}
		fmt.Fprintf(j.Log, "IA3 on %d modules: trainable %s of %s\n", len(ia.Layers), human(n), human(m.NumParams()))
		j.ia3 = ia
	case "adapter", "bottleneck":
		var targets []string
		if j.PEFT.targets != "all-linear" {
			targets = splitList(j.PEFT.targets)
		}
		ba, err := lora.ApplyBottleneck(m, lora.BottleneckConfig{Size: j.PEFT.bottleneck, Activation: j.PEFT.act, Targets: targets, Seed: j.Cfg.Seed})
		if err != nil {
			return nil, BadInput(err)
		}
		params, weights = ba.Params(), ba
		n := 0
		for _, p := range params {
			n += p.Value.Numel()
		}
		fmt.Fprintf(j.Log, "bottleneck adapters r=%d (%s) on %d modules: trainable %s of %s\n", j.PEFT.bottleneck, j.PEFT.act, len(ba.Layers), human(n), human(m.NumParams()))
		j.bottleneck = ba
	case "prefix", "prompt":
		pc := lora.PrefixConfig{Method: lora.Prefix, VirtualTokens: j.PEFT.virtual, Projection: j.PEFT.projection, Seed: j.Cfg.Seed}
		if strings.EqualFold(j.PEFT.method, "prompt") {
			pc.Method = lora.Prompt
			if j.PEFT.promptInit != "" {
				pc.InitIDs, pc.InitText = j.L.Tok.Encode(j.PEFT.promptInit, false), j.PEFT.promptInit
			}
		}
		pa, err := lora.ApplyPrefix(m, pc)
		if err != nil {
			return nil, BadInput(err)
		}
		params, weights = pa.Params(), pa
		n := 0
		for _, p := range params {
			n += p.Value.Numel()
		}
		fmt.Fprintf(j.Log, "%s tuning, %d virtual tokens: trainable %s of %s\n", pc.Method, pc.VirtualTokens, human(n), human(m.NumParams()))
		j.prefix = pa
	default:
		if _, err := lora.ParseMethod(j.PEFT.method); err == nil {
			return nil, BadInput(fmt.Errorf("--peft %s is not available in this build yet (have: none, lora, dora, adapter, ia3, prefix, prompt)", j.PEFT.method))
		}
		return nil, BadInput(fmt.Errorf("--peft %q: want none, lora, dora, adapter, ia3, prefix or prompt", j.PEFT.method))
	}
	pad := j.L.Tok.PAD()
	if pad < 0 {
		pad = max(j.L.Tok.EOS(), 0)
	}
	src := &train.ExampleSource{Examples: j.Train, Rows: j.Batch, Seed: j.Cfg.Seed, Pad: pad, Pack: j.Pack, Ctx: j.Ctx}
	var ev train.EvalSource
	if len(j.Eval) > 0 {
		var bs []data.Batch
		for i := 0; i < len(j.Eval); i += j.Batch {
			chunk := j.Eval[i:min(i+j.Batch, len(j.Eval))]
			longest := 0
			for _, e := range chunk {
				longest = max(longest, len(e.IDs))
			}
			b, err := data.Collate(chunk, longest, pad)
			if err != nil {
				return nil, err
			}
			bs = append(bs, b)
		}
		ev = train.Batches(bs)
	}
	err := train.Run(ctx, j.Cfg, j.Backend, train.LM{M: m}, src, ev, params, weights, j.On)
	return adapter, err
}

// prepared is what every fine-tuning command starts from.
type prepared struct {
	cfg  train.Config
	b    tensor.Backend
	l    *loaded
	tmpl chat.Format
}

// prepareTraining resolves the training config, the backend, the model and
// the chat template; --ctx is capped at the model's. A full fine-tune gets
// F32 weights; a PEFT run keeps the frozen base as the files store it
// (f16 or bf16 take half the memory).
func prepareTraining(e *Env, mf *modelFlags, tf *trainFlags, tmplName string, pf *peftFlags) (*prepared, error) {
	cfg, err := tf.config()
	if err != nil {
		return nil, err
	}
	b, err := mf.backend(e)
	if err != nil {
		return nil, err
	}
	full := strings.EqualFold(pf.method, "none") || strings.EqualFold(pf.method, "full")
	l, err := mf.load(model.LoadOptions{KeepStored: !full})
	if err != nil {
		return nil, err
	}
	tf.ctx = min(tf.ctx, l.M.Cfg.MaxPos)
	l.M.CheckpointBlocks = tf.ckpt
	tmpl, err := chooseFormat(l, tmplName)
	if err != nil {
		return nil, err
	}
	return &prepared{cfg: cfg, b: b, l: l, tmpl: tmpl}, nil
}

// loadSFTExamples reads a JSONL file of any SFT shape, renders it through
// the chat format and splits off a held-out part,
// or, with evalPath, reads the held-out examples from that file and
// trains on all of path.
func loadSFTExamples(l *loaded, path, evalPath string, tmpl chat.Format, ctxLen int, trainAll bool, evalFrac float64, seed uint64, log io.Writer) (tr, ev []data.Example, err error) {
	exs, err := buildSFTFile(l, path, tmpl, ctxLen, trainAll, log)
	if err != nil {
		return nil, nil, err
	}
	if evalPath != "" {
		ev, err := buildSFTFile(l, evalPath, tmpl, ctxLen, trainAll, log)
		return exs, ev, err
	}
	ti, ei := data.SplitIndices(len(exs), evalFrac, seed)
	for _, i := range ti {
		tr = append(tr, exs[i])
	}
	for _, i := range ei {
		ev = append(ev, exs[i])
	}
	return tr, ev, nil
}

// buildSFTFile reads one SFT data file into examples.
func buildSFTFile(l *loaded, path string, tmpl chat.Format, ctxLen int, trainAll bool, log io.Writer) ([]data.Example, error) {
	ds, err := data.LoadJSONL(path)
	if err != nil {
		return nil, BadInput(err)
	}
	if ds.Shape.Pairwise() || ds.Shape == data.ShapeKTO {
		return nil, BadInput(fmt.Errorf("%s holds %s records; sft wants text, prompt/completion, Alpaca or chat records", path, ds.Shape))
	}
	exs, rep, err := data.BuildSFT(l.Tok, ds, data.BuildOpts{Ctx: ctxLen, TrainAll: trainAll}.With(tmpl))
	if err != nil {
		return nil, BadInput(err)
	}
	for _, d := range rep.NoLoss {
		fmt.Fprintf(log, "%s:%d: skipped: %s\n", path, d.Line, d.Why)
	}
	if len(exs) == 0 {
		return nil, BadInput(fmt.Errorf("%s: no example has tokens to train on", path))
	}
	if rep.Truncated > 0 {
		fmt.Fprintf(log, "%s: %d examples were cut to the context of %d tokens\n", path, rep.Truncated, ctxLen)
	}
	return exs, nil
}

// runSFT is `llmlab sft`: instruction tuning, full or with a PEFT method.
func runSFT(e *Env) error {
	fs := newFlags(e, "sft")
	var mf modelFlags
	mf.register(fs, false)
	dataPath := fs.String("data", "", "JSONL of text, prompt/completion, Alpaca or chat records (required)")
	tmplName := fs.String("template", "", "chat template (default: the model's own): "+chat.Names())
	trainAll := fs.Bool("train-on-all", false, "train on prompts too, not only on completions")
	pack := fs.Bool("pack", false, "pack several examples per row")
	evalFrac := fs.Float64("eval-frac", 0.05, "fraction held out for evaluation")
	evalPath := fs.String("eval-data", "", "held-out examples from this JSONL file instead of --eval-frac of --data")
	var pf peftFlags
	pf.register(fs)
	var tf trainFlags
	tf.register(fs, 200, 8, 256, 2e-4)
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
	tmplDesc := tmpl.String()
	if v := pf.virtualTokens(); v > 0 {
		if v >= l.M.Cfg.MaxPos {
			return BadInput(fmt.Errorf("--virtual-tokens %d leaves no room in the model's context of %d", v, l.M.Cfg.MaxPos))
		}
		tf.ctx = min(tf.ctx, l.M.Cfg.MaxPos-v)
	}
	if err := checkMemory(l.M, tf.batch, tf.ctx, pf.method != "none"); err != nil {
		return err
	}
	rec := runRecord{Command: "sft", Model: mf.model, Data: []string{*dataPath}, EvalData: *evalPath, Batch: tf.batch, Ctx: tf.ctx, Train: cfg,
		Extra: map[string]any{"peft": pf.method, "rank": pf.rank, "alpha": pf.alpha, "targets": pf.targets, "template": tmplDesc, "train_on_all": *trainAll, "pack": *pack,
			"quant": pf.quant, "virtual_tokens": pf.virtualTokens(), "bottleneck": pf.bottleneck, "adapter_act": pf.act, "prefix_projection": pf.projection, "prompt_init": pf.promptInit}}
	if err := prepareRun(tf.out, rec, tf.resume); err != nil {
		return err
	}
	cfg.Hash = train.Hash(rec)
	trEx, evEx, err := loadSFTExamples(l, *dataPath, *evalPath, tmpl, tf.ctx, *trainAll, *evalFrac, tf.seed, e.Stderr)
	if err != nil {
		return err
	}
	rep, err := newReporter(e, tf.jsonOut, tf.out)
	if err != nil {
		return err
	}
	defer rep.close()
	log := e.Stdout
	if tf.jsonOut {
		log = e.Stderr
	}
	fmt.Fprintf(log, "%d training and %d held-out examples, template %s\n", len(trEx), len(evEx), tmplDesc)
	job := &sftJob{L: l, Train: trEx, Eval: evEx, PEFT: pf, Cfg: cfg, Batch: tf.batch, Ctx: tf.ctx, Pack: *pack, Backend: b, On: rep.event, Log: log}
	adapter, err := job.run(e.Ctx)
	if e.Ctx.Err() != nil && errors.Is(err, e.Ctx.Err()) {
		fmt.Fprintln(e.Stderr, "stopped; resume with the same command and --resume")
		return nil
	}
	if err != nil {
		return err
	}
	final := filepath.Join(tf.out, "final")
	if adapter != nil {
		if err := adapter.Save(final, l.Dir); err != nil {
			return err
		}
	} else if job.ia3 != nil {
		if err := job.ia3.Save(final, l.Dir); err != nil {
			return err
		}
	} else if job.prefix != nil {
		if err := job.prefix.Save(final, l.Dir); err != nil {
			return err
		}
	} else if job.bottleneck != nil {
		if err := job.bottleneck.Save(final, l.Dir); err != nil {
			return err
		}
	} else {
		if err := l.M.Save(final, model.SaveOptions{}); err != nil {
			return err
		}
		if err := l.Tok.Save(final); err != nil {
			return err
		}
	}
	fmt.Fprintf(log, "saved %s (%s)\n", final, rep.heldOut())
	return nil
}
