package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"llmlab/assets"
	"llmlab/core/chat"
	"llmlab/core/data"
	"llmlab/core/data/demo"
	"llmlab/core/generate"
	"llmlab/core/model"
	"llmlab/core/optim"
	"llmlab/core/train"
)

// runDemo is the main job: a LoRA fine-tune of the embedded demo model on
// the embedded instruction set, with exact-match accuracy on held-out
// tasks before and after, and a few answers side by side.
func runDemo(e *Env) error {
	fs := newFlags(e, "demo")
	var mf modelFlags
	mf.register(fs, false)
	out := fs.String("out", filepath.Join("runs", "demo"), "run folder; the adapter goes to OUT/adapter")
	steps := fs.Int("steps", 400, "LoRA training steps")
	batch := fs.Int("batch", 16, "examples per step")
	lr := fs.Float64("lr", 3e-3, "peak learning rate")
	rank := fs.Int("rank", 16, "LoRA rank")
	alpha := fs.Float64("alpha", 0, "LoRA alpha (0: 2*rank)")
	targets := fs.String("targets", "all-linear", "modules to adapt")
	save := fs.String("modules-to-save", "embed_tokens", "base modules trained in full beside LoRA")
	pack := fs.Bool("pack", true, "pack several examples into each row of --ctx tokens")
	ctxFlag := fs.Int("ctx", 128, "context length for training")
	trainFile := fs.String("train", "", "training set, chat JSONL (default: the embedded instruct_train.jsonl)")
	minRatio := fs.Float64("min-lr-ratio", 0.1, "final lr / peak lr")
	nEval := fs.Int("eval", 200, "held-out tasks to score (0: all)")
	seed := fs.Uint64("seed", 1, "seed")
	jsonOut := fs.Bool("json", false, "JSON lines; the last is the summary")
	align := fs.Bool("align", false, "the alignment demo instead: an SFT policy on sloppy demonstrations, then a reward model, DPO, PPO, GRPO and RLAIF -> DPO, each scored against the SFT policy (OUT defaults to runs/align-demo; about 9 minutes on 2 cores)")
	sloppy := fs.Int("sloppy", 30, "--align: percent of the SFT demonstrations said rudely or with rambling")
	if err := parse(fs, e.Args); err != nil {
		return err
	}
	if *align {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for _, name := range []string{"model", "steps", "batch", "lr", "rank", "alpha", "targets", "modules-to-save", "pack", "ctx", "train", "min-lr-ratio", "seed"} {
			if set[name] {
				return Usagef("--%s does not apply to --align (its recipe is fixed; --out, --eval, --sloppy, --device, --threads and --json do)", name)
			}
		}
		if *sloppy < 0 || *sloppy > 100 {
			return Usagef("--sloppy %d: want a percentage, 0 to 100", *sloppy)
		}
		if !set["out"] {
			*out = filepath.Join("runs", "align-demo")
		}
		d := &alignDemo{e: e, out: *out, device: mf.device, threads: mf.threads, n: *nEval, sloppy: *sloppy, json: *jsonOut}
		return d.run()
	}
	if mf.model == "" {
		mf.model = "demo"
	}
	start := time.Now()
	b, err := mf.backend(e)
	if err != nil {
		return err
	}
	l, err := mf.load(model.LoadOptions{KeepStored: true})
	if err != nil {
		return err
	}
	tmpl, err := chooseFormat(l, "")
	if err != nil {
		return err
	}
	log := e.Stdout
	if *jsonOut {
		log = e.Stderr
	}
	items, err := demo.ReadInstruct(assets.InstructEval())
	if err != nil {
		return err
	}
	if *nEval > 0 && *nEval < len(items) {
		items = items[:*nEval]
	}
	trainBytes, trainName := assets.InstructTrain(), "instruct_train.jsonl"
	if *trainFile != "" {
		if trainBytes, err = os.ReadFile(*trainFile); err != nil {
			return err
		}
		trainName = *trainFile
	}
	ds, err := data.ReadJSONL(bytes.NewReader(trainBytes), trainName)
	if err != nil {
		return err
	}
	ctxLen := min(l.M.Cfg.MaxPos, *ctxFlag)
	exs, _, err := data.BuildSFT(l.Tok, ds, data.BuildOpts{Ctx: ctxLen}.With(tmpl))
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "llmlab demo: LoRA fine-tune of the demo model (%s parameters) on %d instructions; scoring %d held-out tasks\n",
		human(l.M.NumParams()), len(exs), len(items))

	before, err := scoreTasks(e, l, tmpl, items)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "accuracy before: %.1f%%\n", 100*before.acc)

	cfg := train.Config{Steps: *steps, Accum: 1, LR: *lr, Clip: 1, Seed: *seed,
		Optim:    optim.AdamWConfig{LR: float32(*lr), Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0},
		Schedule: optim.Schedule{Kind: optim.Cosine, Warmup: *steps / 20, Total: *steps, MinRatio: *minRatio}}
	rep, err := newReporter(&Env{Stdout: log}, *jsonOut, "")
	if err != nil {
		return err
	}
	// The embedding is trained too (PEFT's modules_to_save): the demo model
	// saw task words and numbers too rarely in its stories for low-rank
	// updates alone to make them likely outputs.
	a := *alpha
	if a == 0 {
		a = float64(2 * *rank)
	}
	job := &sftJob{L: l, Train: exs, PEFT: peftFlags{method: "lora", rank: *rank, alpha: a, targets: *targets, save: *save},
		Cfg: cfg, Batch: *batch, Ctx: ctxLen, Pack: *pack, Backend: b, On: rep.event, Log: log}
	adapter, err := job.run(e.Ctx)
	if err != nil {
		if e.Ctx.Err() != nil && errors.Is(err, e.Ctx.Err()) {
			return fmt.Errorf("stopped")
		}
		return err
	}
	after, err := scoreTasks(e, l, tmpl, items)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "accuracy after:  %.1f%%  (before %.1f%%)\n\n", 100*after.acc, 100*before.acc)
	// Per task: how many held-out items each answers right, before and after.
	type tally struct{ n, before, after int }
	per := map[string]*tally{}
	var order []string
	for i, it := range items {
		tl := per[it.Task]
		if tl == nil {
			tl = &tally{}
			per[it.Task] = tl
			order = append(order, it.Task)
		}
		tl.n++
		if demo.Match(it.Task, before.answers[i], it.Answer) {
			tl.before++
		}
		if demo.Match(it.Task, after.answers[i], it.Answer) {
			tl.after++
		}
	}
	for _, task := range order {
		tl := per[task]
		fmt.Fprintf(log, "  %-14s %2d/%-2d -> %2d/%-2d\n", task, tl.before, tl.n, tl.after, tl.n)
	}
	fmt.Fprintln(log)
	fmt.Fprintf(log, "%-44s  %-18s  %-18s  %s\n", "task", "before", "after", "expected")
	shown := map[string]bool{}
	for i, it := range items {
		if shown[it.Task] || len(shown) >= 8 {
			continue
		}
		shown[it.Task] = true
		fmt.Fprintf(log, "%-44s  %-18s  %-18s  %s\n", clip(it.Prompt, 44), clip(before.answers[i], 18), clip(after.answers[i], 18), it.Answer)
	}
	dir := filepath.Join(*out, "adapter")
	if err := adapter.Save(dir, "demo"); err != nil {
		return err
	}
	// Every held-out answer, before and after, for a closer look.
	var ab bytes.Buffer
	enc := json.NewEncoder(&ab)
	enc.SetEscapeHTML(false)
	for i, it := range items {
		enc.Encode(map[string]any{"task": it.Task, "prompt": it.Prompt, "answer": it.Answer,
			"before": before.answers[i], "after": after.answers[i], "right": demo.Match(it.Task, after.answers[i], it.Answer)})
	}
	if err := os.WriteFile(filepath.Join(*out, "answers.jsonl"), ab.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(log, "\nadapter saved in %s (try: llmlab chat --model demo --adapter %s)  [%s]\n", dir, dir, time.Since(start).Round(time.Second))
	if *jsonOut {
		return json.NewEncoder(e.Stdout).Encode(map[string]any{"accuracy_before": before.acc, "accuracy_after": after.acc, "adapter": dir, "seconds": time.Since(start).Seconds()})
	}
	return nil
}

type taskScore struct {
	acc     float64
	answers []string
}

// scoreTasks answers every item greedily, in batches, and scores exact matches.
func scoreTasks(e *Env, l *loaded, tmpl chat.Format, items []demo.Item) (taskScore, error) {
	b, _ := (&modelFlags{}).backend(e)
	g := generate.New(l.M, b, l.Tok)
	stopIDs, stops := tmpl.Stops(l.Tok)
	var s taskScore
	right := 0
	const chunk = 50
	for i := 0; i < len(items); i += chunk {
		part := items[i:min(i+chunk, len(items))]
		var prompts [][]int32
		for _, it := range part {
			ids, err := data.EncodeChatPrompt(l.Tok, tmpl, []chat.Message{{Role: chat.RoleUser, Content: it.Prompt}})
			if err != nil {
				return s, err
			}
			prompts = append(prompts, ids)
		}
		req := generate.Request{Prompts: prompts, MaxTokens: 24, StopIDs: stopIDs, StopStrings: stops}
		res, err := g.Generate(e.Ctx, req)
		if err != nil {
			return s, err
		}
		for k, it := range part {
			ans := strings.TrimSpace(res.Text[k])
			s.answers = append(s.answers, ans)
			if demo.Match(it.Task, ans, it.Answer) {
				right++
			}
		}
	}
	s.acc = float64(right) / float64(max(len(items), 1))
	return s, nil
}

func clip(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
