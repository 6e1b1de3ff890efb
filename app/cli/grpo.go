package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"llmlab/core/chat"
	"llmlab/core/data"
	"llmlab/core/generate"
	"llmlab/core/model"
	"llmlab/core/optim"
	"llmlab/core/tensor"
	"llmlab/lora"
	"llmlab/rlhf"
)

// grpoTasks reads chat records: the prompt is every turn before the last
// assistant turn, the answer the record's "answer" field or that turn.
func grpoTasks(l *loaded, tmpl chat.Format, path string) ([]rlhf.Task, error) {
	ds, err := data.LoadJSONL(path)
	if err != nil {
		return nil, BadInput(err)
	}
	var tasks []rlhf.Task
	for _, r := range ds.Records {
		msgs := r.Conversation()
		if len(msgs) == 0 {
			continue
		}
		answer := ""
		if last := msgs[len(msgs)-1]; last.Role == chat.RoleAssistant {
			answer, msgs = last.Content, msgs[:len(msgs)-1]
		}
		if raw, ok := r.Extra["answer"]; ok {
			json.Unmarshal(raw, &answer)
		}
		if answer == "" || len(msgs) == 0 {
			return nil, BadInput(fmt.Errorf("%s:%d: no answer to check (an \"answer\" field or a final assistant turn)", path, r.Line))
		}
		ids, err := data.EncodeChatPrompt(l.Tok, tmpl, msgs)
		if err != nil {
			return nil, BadInput(fmt.Errorf("%s:%d: %w", path, r.Line, err))
		}
		tasks = append(tasks, rlhf.Task{Prompt: ids, Answer: answer})
	}
	if len(tasks) == 0 {
		return nil, BadInput(fmt.Errorf("%s: no tasks", path))
	}
	return tasks, nil
}

// greedyReward is the mean reward of greedy answers to tasks.
func greedyReward(e *Env, l *loaded, mf *modelFlags, tasks []rlhf.Task, reward rlhf.Reward, stopIDs []int32, stops []string, maxTok int) (float64, []float64, error) {
	b, _ := mf.backend(e)
	g := generate.New(l.M, b, l.Tok)
	var sum float64
	// A sum of several rewards also gets each term's mean, unweighted.
	terms, _ := reward.(rlhf.Sum)
	if len(terms) < 2 {
		terms = nil
	}
	means := make([]float64, len(terms))
	for i := 0; i < len(tasks); i += 50 {
		part := tasks[i:min(i+50, len(tasks))]
		var prompts [][]int32
		for _, tk := range part {
			prompts = append(prompts, tk.Prompt)
		}
		req := generate.Request{Prompts: prompts, MaxTokens: maxTok, StopIDs: stopIDs, StopStrings: stops}
		res, err := g.Generate(e.Ctx, req)
		if err != nil {
			return 0, nil, err
		}
		for k, tk := range part {
			sum += float64(reward.Score(res.Text[k], tk.Answer))
			for j, t := range terms {
				means[j] += float64(t.Reward.Score(res.Text[k], tk.Answer))
			}
		}
	}
	n := float64(len(tasks))
	for j := range means {
		means[j] /= n
	}
	return sum / n, means, nil
}

// termMeans formats greedyReward's per-term means, before -> after:
// "number 0.00 -> 0.03, number:3 0.10 -> 0.21".
func termMeans(reward rlhf.Reward, before, after []float64) string {
	terms, _ := reward.(rlhf.Sum)
	var parts []string
	for j := range after {
		p := fmt.Sprintf("%s %.3f", terms[j].Reward, after[j])
		if j < len(before) {
			p = fmt.Sprintf("%s %.3f -> %.3f", terms[j].Reward, before[j], after[j])
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

// runGRPO improves a policy with GRPO against verifiable rewards.
func runGRPO(e *Env) error {
	fs := newFlags(e, "grpo")
	var mf modelFlags
	mf.register(fs, true)
	dataPath := fs.String("data", "", "JSONL of chat records with an answer to check (required)")
	evalPath := fs.String("eval", "", "held-out tasks for the greedy reward before and after (optional)")
	tmplName := fs.String("template", "", "chat template (default: the model's own)")
	var rewards stringList
	fs.Var(&rewards, "reward", "reward term, repeatable: exact, exact-fold, number[:tol], regex:PAT, format, length:MAX[:COEF], with an optional weight such as 0.5*format (default exact)")
	steps := fs.Int("steps", 30, "GRPO steps")
	prompts := fs.Int("prompts", 4, "prompts per step")
	group := fs.Int("group", 8, "samples per prompt (the group)")
	maxTok := fs.Int("max-tokens", 16, "tokens per sample at most")
	temp := fs.Float64("temperature", 1, "sampling temperature of the rollouts")
	beta := fs.Float64("beta", 0.04, "KL coefficient to the reference (the adapter switched off)")
	eps := fs.Float64("clip", 0.2, "ratio clip ε")
	lr := fs.Float64("lr", 5e-4, "learning rate")
	rank := fs.Int("rank", 16, "LoRA rank when no --adapter is given")
	save := fs.String("modules-to-save", "", "base modules trained in full beside a new LoRA adapter: embed_tokens")
	out := fs.String("out", "", "run folder: checkpoints, and the adapter in OUT/final (required)")
	seed := fs.Uint64("seed", 1, "seed (adapter init, sampling)")
	saveEvery := fs.Int("save-every", 0, "checkpoint every N steps (0: at the end and on Ctrl-C)")
	keep := fs.Int("keep", 2, "checkpoints to keep")
	resume := fs.Bool("resume", false, "continue from the newest checkpoint in --out")
	jsonOut := fs.Bool("json", false, "one JSON object per step, then the summary")
	if err := parse(fs, e.Args); err != nil {
		return err
	}
	if *dataPath == "" || *out == "" {
		return Usagef("--data and --out are required")
	}
	if *steps <= 0 || *prompts <= 0 || *group < 2 || *maxTok <= 0 {
		return BadInput(fmt.Errorf("--steps (%d), --prompts (%d) and --max-tokens (%d) must be positive and --group (%d) at least 2", *steps, *prompts, *maxTok, *group))
	}
	specs := rewards // the flag keeps what was given (recipe reads it back)
	if len(specs) == 0 {
		specs = stringList{"exact"}
	}
	reward, err := rlhf.ParseRewards(specs...)
	if err != nil {
		return BadInput(err)
	}
	cfg := rlhf.GRPOConfig{Beta: float32(*beta), Epsilon: float32(*eps)}
	b, err := mf.backend(e)
	if err != nil {
		return err
	}
	l, err := mf.load(model.LoadOptions{})
	if err != nil {
		return err
	}
	tmpl, err := chooseFormat(l, *tmplName)
	if err != nil {
		return err
	}
	tasks, err := grpoTasks(l, tmpl, *dataPath)
	if err != nil {
		return err
	}
	var evalTasks []rlhf.Task
	if *evalPath != "" {
		if evalTasks, err = grpoTasks(l, tmpl, *evalPath); err != nil {
			return err
		}
	}
	// run.json holds the settings but the number of steps: a run may be
	// resumed with more of them.
	rec := runRecord{Command: "grpo", Model: mf.model, Data: []string{*dataPath}, Batch: *prompts * *group, Device: mf.device, Threads: mf.threads, Out: *out,
		Extra: map[string]any{"adapter": mf.adapter, "template": tmpl.String(), "reward": reward.String(), "beta": *beta, "clip": *eps, "lr": *lr,
			"prompts": *prompts, "group": *group, "max_tokens": *maxTok, "temperature": *temp, "rank": *rank, "modules_to_save": *save, "seed": *seed}}
	if err := prepareRun(*out, rec, *resume); err != nil {
		return err
	}

	// The reference is the starting policy: the base (adapter off) for a
	// fresh adapter, or a frozen snapshot of the adapter given with
	// --adapter (usually the SFT model), swapped in without copying.
	adapter := l.Adapter
	setPolicy := func(on bool) {}
	if adapter == nil {
		if adapter, err = lora.Apply(l.M, lora.Config{Rank: *rank, Alpha: float64(2 * *rank), Targets: []string{"all-linear"}, ModulesToSave: splitList(*save), Seed: *seed}); err != nil {
			return BadInput(err)
		}
		setPolicy = adapter.SetEnabled
	} else {
		ps := adapter.Params()
		snap := make([]*tensor.Tensor, len(ps))
		for i, p := range ps {
			snap[i] = p.Value.Clone()
		}
		policyOn := true
		setPolicy = func(on bool) {
			if on != policyOn {
				for i, p := range ps {
					p.Value, snap[i] = snap[i], p.Value
				}
				policyOn = on
			}
		}
	}
	log := e.Stdout
	if *jsonOut {
		log = e.Stderr
	}
	stopIDs, stops := tmpl.Stops(l.Tok)
	before := -1.0
	var beforeTerms []float64
	if len(evalTasks) > 0 {
		if before, beforeTerms, err = greedyReward(e, l, &mf, evalTasks, reward, stopIDs, stops, *maxTok); err != nil {
			return err
		}
		fmt.Fprintf(log, "held-out greedy reward before: %.3f\n", before)
	}
	pad := max(l.Tok.PAD(), max(l.Tok.EOS(), 0))
	run := &rlhf.GRPORun{M: l.M, Tok: l.Tok, B: b, Cfg: cfg, Reward: reward, Params: adapter.Params(), SetPolicy: setPolicy,
		Optim: optim.AdamWConfig{LR: float32(*lr), Beta1: 0.9, Beta2: 0.99, Eps: 1e-8}, LR: float32(*lr),
		Prompts: *prompts, G: *group, MaxTokens: *maxTok, Temp: *temp, StopIDs: stopIDs, Stops: stops, Pad: pad, Seed: *seed,
		Weights: adapter, Out: *out, Resume: *resume, Hash: runHash(rec), SaveEvery: *saveEvery, KeepLast: *keep}
	fmt.Fprintf(log, "GRPO: %d tasks, %d prompts x %d samples per step, reward %s, β=%g\n", len(tasks), *prompts, *group, reward, *beta)
	enc := json.NewEncoder(e.Stdout)
	err = run.Train(e.Ctx, tasks, *steps, func(s rlhf.GRPOStep) {
		if *jsonOut {
			enc.Encode(s)
			return
		}
		if s.Step == 1 || s.Step%max(1, *steps/10) == 0 || s.Step == *steps {
			fmt.Fprintf(log, "step %d/%d  reward %.3f  kl %.4f  clip %.2f  length %.1f  (rollout %.1fs, update %.1fs)\n",
				s.Step, *steps, s.Reward, s.KL, s.ClipFrac, s.Length, s.RolloutS, s.UpdateS)
		}
	})
	if e.Ctx.Err() != nil && errors.Is(err, e.Ctx.Err()) {
		fmt.Fprintln(e.Stderr, "stopped; resume with the same command and --resume")
		return nil
	}
	var mm *rlhf.CheckpointMismatchError
	if errors.As(err, &mm) {
		return BadInput(err)
	}
	if err != nil {
		return err
	}
	final := filepath.Join(*out, "final")
	if err := adapter.Save(final, l.Dir); err != nil {
		return err
	}
	after := -1.0
	var afterTerms []float64
	if len(evalTasks) > 0 {
		if after, afterTerms, err = greedyReward(e, l, &mf, evalTasks, reward, stopIDs, stops, *maxTok); err != nil {
			return err
		}
		fmt.Fprintf(log, "held-out greedy reward after: %.3f (before %.3f)\n", after, before)
		if len(afterTerms) > 0 {
			fmt.Fprintf(log, "held-out greedy reward by term (unweighted): %s\n", termMeans(reward, beforeTerms, afterTerms))
		}
	}
	fmt.Fprintf(log, "adapter saved in %s\n", final)
	if *jsonOut {
		return enc.Encode(map[string]any{"reward_before": before, "reward_after": after, "terms_before": beforeTerms, "terms_after": afterTerms, "adapter": final})
	}
	return nil
}
