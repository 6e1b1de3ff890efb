package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"llmlab/core/checkpoint"
	"llmlab/core/data"
	"llmlab/core/model"
	"llmlab/core/optim"
	"llmlab/core/tokenizer"
	"llmlab/core/train"
)

// trainFlags are the flags every training command shares.
type trainFlags struct {
	steps, batch, ctx, accum, warmup, saveEvery, evalEvery, keep int
	lr, minLR, clip, wd                                          float64
	seed                                                         uint64
	resume, jsonOut, ckpt                                        bool
	out, schedule                                                string
}

func (f *trainFlags) register(fs interface {
	IntVar(*int, string, int, string)
	Float64Var(*float64, string, float64, string)
	Uint64Var(*uint64, string, uint64, string)
	BoolVar(*bool, string, bool, string)
	StringVar(*string, string, string, string)
}, steps, batch, ctx int, lr float64) {
	fs.IntVar(&f.steps, "steps", steps, "optimizer steps")
	fs.IntVar(&f.batch, "batch", batch, "sequences per micro-batch")
	fs.IntVar(&f.ctx, "ctx", ctx, "context length in tokens (at most the model's)")
	fs.IntVar(&f.accum, "accum", 1, "micro-batches accumulated per step")
	fs.Float64Var(&f.lr, "lr", lr, "peak learning rate")
	fs.StringVar(&f.schedule, "schedule", "cosine", "learning-rate schedule: cosine, linear or constant")
	fs.IntVar(&f.warmup, "warmup", -1, "warmup steps (-1: 5% of steps)")
	fs.Float64Var(&f.minLR, "min-lr-ratio", 0.1, "final learning rate as a fraction of the peak")
	fs.Float64Var(&f.clip, "clip", 1, "global gradient-norm clip (0: off)")
	fs.Float64Var(&f.wd, "weight-decay", 0.1, "AdamW weight decay (not on norms and biases)")
	fs.Uint64Var(&f.seed, "seed", 1, "random seed (data order, initial weights)")
	fs.IntVar(&f.saveEvery, "save-every", 0, "checkpoint every N steps (0: at the end and on Ctrl-C)")
	fs.IntVar(&f.evalEvery, "eval-every", 0, "held-out evaluation every N steps (0: at the end)")
	fs.IntVar(&f.keep, "keep", 2, "checkpoints to keep")
	fs.BoolVar(&f.ckpt, "checkpoint-activations", false, "keep only each block's input and run it again in the backward pass: less memory, about a third more compute")
	fs.BoolVar(&f.resume, "resume", false, "continue from the newest checkpoint in --out")
	fs.BoolVar(&f.jsonOut, "json", false, "print events as JSON lines")
	fs.StringVar(&f.out, "out", "", "run folder (required)")
}

func (f *trainFlags) config() (train.Config, error) {
	if f.steps <= 0 || f.batch <= 0 || f.ctx <= 1 || f.accum <= 0 {
		return train.Config{}, Usagef("--steps, --batch, --accum must be positive and --ctx at least 2")
	}
	if f.lr <= 0 {
		return train.Config{}, Usagef("--lr must be positive")
	}
	kind, err := optim.ParseScheduleKind(f.schedule)
	if err != nil {
		return train.Config{}, BadInput(err)
	}
	warm := f.warmup
	if warm < 0 {
		warm = f.steps / 20
	}
	opt := optim.DefaultAdamW()
	opt.LR, opt.WeightDecay = float32(f.lr), float32(f.wd)
	return train.Config{
		Steps: f.steps, Accum: f.accum, LR: f.lr, Clip: f.clip, Optim: opt, Seed: f.seed,
		Schedule:  optim.Schedule{Kind: kind, Warmup: warm, Total: f.steps, MinRatio: f.minLR},
		EvalEvery: f.evalEvery, SaveEvery: f.saveEvery, KeepLast: f.keep, Out: f.out, Resume: f.resume,
	}, nil
}

// runRecord is run.json: everything needed to reproduce or resume a run.
type runRecord struct {
	Command string   `json:"command"`
	Model   string   `json:"model"`
	Init    string   `json:"init,omitempty"`
	Data    []string `json:"data"`
	// EvalData: held-out examples read from this file (sft --eval-data)
	EvalData string         `json:"eval_data,omitempty"`
	Batch    int            `json:"batch"`
	Ctx      int            `json:"ctx"`
	Device   string         `json:"device,omitempty"`
	Threads  int            `json:"threads,omitempty"` // not hashed: results do not depend on it
	Out      string         `json:"out,omitempty"`     // not hashed: a run folder may move
	Train    train.Config   `json:"train"`
	Extra    map[string]any `json:"extra,omitempty"`
	Hash     string         `json:"hash"`
	Created  string         `json:"created"`
}

// runHash identifies what a resume must match: everything in rec but the
// thread count, the folder's own path and the bookkeeping fields.
func runHash(rec runRecord) string {
	rec.Hash, rec.Created, rec.Threads, rec.Out = "", "", 0, ""
	return train.Hash(rec)
}

// prepareRun writes run.json, or on --resume checks that it matches.
func prepareRun(out string, rec runRecord, resume bool) error {
	hash := runHash(rec)
	rec.Hash, rec.Created = hash, ""
	path := filepath.Join(out, "run.json")
	if old, err := os.ReadFile(path); err == nil {
		var prev runRecord
		if err := json.Unmarshal(old, &prev); err != nil {
			return BadInput(fmt.Errorf("%s: %w", path, err))
		}
		if !resume {
			return BadInput(fmt.Errorf("%s already holds a run; pass --resume to continue it or choose another --out", out))
		}
		if prev.Hash != hash {
			a, _ := json.MarshalIndent(prev, "", "  ")
			rec.Created = prev.Created
			b, _ := json.MarshalIndent(rec, "", "  ")
			return BadInput(fmt.Errorf("--resume: %s was made with a different configuration:\n%s", out, diffLines(string(a), string(b))))
		}
		return nil
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	rec.Created = time.Now().UTC().Format(time.RFC3339)
	b, _ := json.MarshalIndent(rec, "", "  ")
	return checkpoint.WriteFileAtomic(path, append(b, '\n'), 0o644)
}

// diffLines shows the lines that differ between two renderings.
func diffLines(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i := 0; i < max(len(al), len(bl)); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y && !strings.Contains(x, "\"created\"") && !strings.Contains(x, "\"hash\"") {
			out = append(out, "  run:  "+strings.TrimSpace(x), "  now:  "+strings.TrimSpace(y))
		}
	}
	return strings.Join(out, "\n")
}

// runPretrain trains a model on raw text (or token shards).
func runPretrain(e *Env) (err error) {
	fs := newFlags(e, "pretrain")
	var mf modelFlags
	mf.register(fs, false)
	initPreset := fs.String("init", "", "start from a random model of this preset instead of --model")
	arch := fs.String("arch", "llama", "family for --init: gpt2 or llama")
	tokArg := fs.String("tokenizer", "", "tokenizer folder for --init (default: byte-level)")
	var files stringList
	fs.Var(&files, "data", "text file or token shard (.bin) (repeatable)")
	evalFrac := fs.Float64("eval-frac", 0.02, "fraction of documents held out for evaluation")
	docSep := fs.String("doc-sep", "\n\n", "separator between documents in text files")
	strictUTF8 := fs.Bool("strict-utf8", false, "fail on invalid UTF-8 in the corpus (default: replace each invalid run with U+FFFD and count it)")
	evalBatches := fs.Int("eval-batches", 8, "held-out batches per evaluation")
	saveDType := fs.String("save-dtype", "f32", "dtype of the final weights: f32, f16 or bf16")
	var tf trainFlags
	tf.register(fs, 1000, 8, 256, 1e-3)
	if err := parse(fs, e.Args); err != nil {
		return err
	}
	if tf.out == "" {
		return Usagef("--out is required")
	}
	if len(files) == 0 {
		return Usagef("--data is required")
	}
	if (mf.model == "") == (*initPreset == "") {
		return Usagef("give exactly one of --model or --init")
	}
	dt, err := parseDType(*saveDType)
	if err != nil {
		return err
	}
	cfg, err := tf.config()
	if err != nil {
		return err
	}
	b, err := mf.backend(e)
	if err != nil {
		return err
	}
	// The model and its tokenizer.
	var m *model.Transformer
	var tok *tokenizer.Tokenizer
	var srcDir string
	if *initPreset != "" {
		a, err := model.ParseArch(*arch)
		if err != nil {
			return BadInput(err)
		}
		mc, err := model.Preset(a, *initPreset)
		if err != nil {
			return BadInput(err)
		}
		if *tokArg != "" {
			if tok, err = loadTokenizerArg(*tokArg); err != nil {
				return BadInput(err)
			}
			mc.VocabSize = tok.VocabSize()
		} else if tok, err = tokenizer.FromJSON(tokenizer.ByteLevelJSON()); err != nil {
			return err
		}
		if tk := tok.VocabSize(); mc.VocabSize < tk {
			mc.VocabSize = tk
		}
		mc.BOS, mc.EOS = int(tok.BOS()), int(tok.EOS())
		if m, err = model.New(mc, tf.seed); err != nil {
			return BadInput(err)
		}
	} else {
		if srcDir, err = resolveModelDir(mf.model); err != nil {
			return err
		}
		if m, err = model.Load(srcDir, model.LoadOptions{}); err != nil {
			return BadInput(err)
		}
		if tok, err = tokenizer.Load(srcDir); err != nil {
			return BadInput(err)
		}
	}
	ctxSet := false
	fs.Visit(func(f *flag.Flag) { ctxSet = ctxSet || f.Name == "ctx" })
	if !ctxSet && tf.ctx > m.Cfg.MaxPos {
		tf.ctx = m.Cfg.MaxPos // the default, shortened to what the model takes
	}
	if tf.ctx > m.Cfg.MaxPos {
		return BadInput(fmt.Errorf("--ctx %d exceeds the model's context length %d", tf.ctx, m.Cfg.MaxPos))
	}
	if err := checkMemory(m, tf.batch, tf.ctx, false); err != nil {
		return err
	}
	for _, f := range files {
		if err := checkReadable(f); err != nil {
			return BadInput(err)
		}
	}
	// A run that fails before its first step leaves nothing behind: not
	// the folder if this command made it, else not the files it wrote.
	started := false
	defer undoRun(tf.out, &started, &err)()
	rec := runRecord{Command: "pretrain", Model: srcDir, Init: *initPreset, Data: files, Batch: tf.batch, Ctx: tf.ctx, Train: cfg,
		Device: mf.device, Threads: mf.threads, Out: tf.out,
		Extra: map[string]any{"arch": *arch, "eval_frac": *evalFrac, "doc_sep": *docSep, "tokenizer": *tokArg}}
	if err := prepareRun(tf.out, rec, tf.resume); err != nil {
		return err
	}
	cfg.Hash = runHash(rec)
	rep, err := newReporter(e, tf.jsonOut, tf.out)
	if err != nil {
		return err
	}
	defer rep.close()
	// Data: text is encoded once into shards inside the run folder.
	m.CheckpointBlocks = tf.ckpt
	trainShards, evalShards, err := prepareShards(e, tf.out, files, tok, m.Cfg.VocabSize, *docSep, *evalFrac, tf.seed, *strictUTF8, tf.jsonOut)
	if err != nil {
		return err
	}
	defer closeShards(trainShards)
	defer closeShards(evalShards)
	sampler, err := data.NewSampler(trainShards, tf.batch, tf.ctx, tf.seed)
	if err != nil {
		return BadInput(fmt.Errorf("%s: %w", strings.Join(files, ", "), err))
	}
	var evalSrc train.EvalSource
	if len(evalShards) > 0 {
		var bs []data.Batch
		for bt := range data.Sequential(evalShards, tf.batch, tf.ctx, *evalBatches) {
			bs = append(bs, bt)
		}
		if len(bs) > 0 {
			evalSrc = train.Batches(bs)
		}
	}
	if !tf.jsonOut {
		fmt.Fprintf(e.Stdout, "pretraining %s (%s parameters) on %s tokens, batch %dx%d, %d steps\n",
			m.Cfg.Arch, human(m.NumParams()), human(sampler.Tokens()), tf.batch, tf.ctx, tf.steps)
	}
	started = true
	err = train.Run(e.Ctx, cfg, b, train.LM{M: m}, &train.SamplerSource{S: sampler}, evalSrc, m.ParamList(), train.ModelWeights{M: m}, rep.event)
	if errors.Is(err, e.Ctx.Err()) && e.Ctx.Err() != nil {
		fmt.Fprintf(e.Stderr, "stopped; resume with the same command and --resume\n")
		return nil
	}
	if err != nil {
		return err
	}
	tokSrc := srcDir
	if *tokArg != "" {
		tokSrc = *tokArg
	}
	final := filepath.Join(tf.out, "final")
	if err := writeFinal(final, m, dt, tok, tokSrc); err != nil {
		return err
	}
	if !tf.jsonOut {
		fmt.Fprintf(e.Stdout, "final model in %s (%s)\n", final, rep.heldOut())
	}
	return nil
}

func parseDType(s string) (tensorDType, error) {
	switch strings.ToLower(s) {
	case "f32", "float32":
		return dtF32, nil
	case "f16", "float16":
		return dtF16, nil
	case "bf16", "bfloat16":
		return dtBF16, nil
	}
	return 0, Usagef("dtype %q: want f32, f16 or bf16", s)
}

// prepareShards encodes text files into shards (once per run folder) and
// opens them; .bin files are used as they are.
func prepareShards(e *Env, out string, files []string, tok *tokenizer.Tokenizer, vocab int, sep string, evalFrac float64, seed uint64, strict, quiet bool) (trainS, evalS []*data.Shard, err error) {
	var texts []string
	for _, f := range files {
		if strings.HasSuffix(f, ".bin") {
			sh, err := data.OpenShard(f)
			if err != nil {
				return nil, nil, BadInput(err)
			}
			trainS = append(trainS, sh)
		} else {
			if _, err := os.Stat(f); err != nil {
				return nil, nil, BadInput(err)
			}
			texts = append(texts, f)
		}
	}
	if len(texts) == 0 {
		return trainS, nil, nil
	}
	dir := filepath.Join(out, "data")
	trainPath, evalPath := filepath.Join(dir, "train.bin"), filepath.Join(dir, "eval.bin")
	if _, err := os.Stat(trainPath); err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, nil, err
		}
		var prog func(done, total int64)
		if !quiet {
			prog = data.TextProgress(e.Stderr, "encoding", 200*time.Millisecond)
		}
		st, err := data.EncodeCorpus(e.Ctx, tok, texts, trainPath, evalPath, data.CorpusOpts{
			Vocab: vocab, DocSep: sep, EvalFrac: evalFrac, Seed: seed, StrictUTF8: strict, Progress: prog,
		})
		if err != nil {
			return nil, nil, BadInput(err)
		}
		if st.InvalidUTF8 > 0 {
			fmt.Fprintf(e.Stderr, "corpus: %d runs of invalid UTF-8 replaced with U+FFFD (--strict-utf8 makes this an error)\n", st.InvalidUTF8)
		}
	}
	sh, err := data.OpenShard(trainPath)
	if err != nil {
		return nil, nil, err
	}
	trainS = append(trainS, sh)
	if es, err := data.OpenShard(evalPath); err == nil && es.Len() > 0 {
		evalS = append(evalS, es)
	}
	return trainS, evalS, nil
}

func closeShards(ss []*data.Shard) {
	for _, s := range ss {
		s.Close()
	}
}

// checkReadable fails unless path is a non-empty file that can be read.
func checkReadable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.IsDir() {
		return fmt.Errorf("%s: a folder, not a data file", path)
	}
	var one [1]byte
	if _, err := f.Read(one[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: empty file", path)
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// undoRun returns a function for defer that, when *err is set and the run
// never *started, removes what this command wrote into out: the whole
// folder if it did not exist before, else run.json, metrics.jsonl and
// data/ if run.json did not exist before (a fresh run in an existing
// folder). A resumed run's files are never touched.
func undoRun(out string, started *bool, err *error) func() {
	_, statErr := os.Stat(out)
	existed := statErr == nil
	_, runErr := os.Stat(filepath.Join(out, "run.json"))
	fresh := runErr != nil
	return func() {
		if *err == nil || *started || !fresh {
			return
		}
		if !existed {
			os.RemoveAll(out)
			return
		}
		for _, name := range []string{"run.json", "metrics.jsonl", "data"} {
			os.RemoveAll(filepath.Join(out, name))
		}
	}
}

// writeFinal writes the trained model as an HF folder at dir: the
// weights, and the tokenizer files copied verbatim from tokSrc (a model or
// tokenizer folder, or a tokenizer.json file) when there is one, else as
// tok saves them. The folder is assembled beside dir and renamed into
// place, so dir is either the old folder or the complete new one.
func writeFinal(dir string, m *model.Transformer, dt tensorDType, tok *tokenizer.Tokenizer, tokSrc string) error {
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := m.Save(tmp, model.SaveOptions{DType: dt}); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := tok.Save(tmp); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := copyTokenizerFiles(tmp, tokSrc); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}

// copyTokenizerFiles copies the tokenizer (and generation) files of src
// into dst verbatim, so nothing the loader does not model is lost.
func copyTokenizerFiles(dst, src string) error {
	if src == "" {
		return nil
	}
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	var paths []string
	if st.IsDir() {
		for _, n := range []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"} {
			paths = append(paths, filepath.Join(src, n))
		}
	} else {
		paths = []string{src}
	}
	for i, p := range paths {
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		name := filepath.Base(p)
		if !st.IsDir() && i == 0 {
			name = "tokenizer.json"
		}
		if err := checkpoint.WriteFileAtomic(filepath.Join(dst, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
