package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"llmlab/core/chat"
	"llmlab/core/data"
	"llmlab/core/model"
	"llmlab/core/tensor"
	"llmlab/core/train"
	"llmlab/lora"
	"llmlab/rlhf"
)

// ppoTask is a PPO prompt with the messages it was rendered from (a
// reward model renders them again through its own template).
type ppoTask struct {
	rlhf.Task
	msgs []chat.Message
}

// ppoTasks reads JSONL records: the prompt is every turn before the last
// assistant turn (a record may have none: {"messages":[{"role":"user",...}]}),
// the answer, optional, the record's "answer" field or that last turn.
func ppoTasks(l *loaded, tmpl chat.Format, path string) ([]ppoTask, error) {
	ds, err := data.LoadJSONL(path)
	if err != nil {
		return nil, BadInput(err)
	}
	var tasks []ppoTask
	for _, r := range ds.Records {
		msgs := r.Conversation()
		answer := ""
		if n := len(msgs); n > 0 && msgs[n-1].Role == chat.RoleAssistant {
			answer, msgs = msgs[n-1].Content, msgs[:n-1]
		}
		if raw, ok := r.Extra["answer"]; ok {
			if err := json.Unmarshal(raw, &answer); err != nil {
				return nil, BadInput(fmt.Errorf("%s:%d: \"answer\" is not a string", path, r.Line))
			}
		}
		if len(msgs) == 0 {
			return nil, BadInput(fmt.Errorf("%s:%d: no prompt before the answer", path, r.Line))
		}
		ids, err := data.EncodeChatPrompt(l.Tok, tmpl, msgs)
		if err != nil {
			return nil, BadInput(fmt.Errorf("%s:%d: %w", path, r.Line, err))
		}
		tasks = append(tasks, ppoTask{rlhf.Task{Prompt: ids, Answer: answer}, msgs})
	}
	if len(tasks) == 0 {
		return nil, BadInput(fmt.Errorf("%s: no prompts", path))
	}
	return tasks, nil
}

// needsAnswer reports whether a rule reward compares with the task's answer.
func needsAnswer(s rlhf.Sum) bool {
	for _, t := range s {
		switch t.Reward.(type) {
		case rlhf.ExactMatch, rlhf.NumberMatch:
			return true
		}
	}
	return false
}

// rmScorer loads a reward model made by `llmlab rm` and scores each
// response as that model was trained to read it: the prompt's messages and
// the response as the assistant turn, through its own tokenizer and
// template.
// The template is tmplName, else the reward model's own, else fallback
// (the policy's) when the reward model ships none.
func rmScorer(dir, tmplName string, fallback chat.Format, tasks []ppoTask, mf *modelFlags, b tensor.Backend) (*rlhf.RMScorer, error) {
	rf := modelFlags{model: dir, device: mf.device, threads: mf.threads}
	rl, err := rf.load(model.LoadOptions{})
	if err != nil {
		return nil, err
	}
	rm := rlhf.NewRewardModel(rl.M)
	if err := rm.LoadHead(rl.Dir); err != nil {
		return nil, BadInput(fmt.Errorf("--reward-model %s is not a reward model (make one with llmlab rm): %w", dir, err))
	}
	tmpl, err := chooseFormat(rl, tmplName)
	if err != nil && tmplName != "" {
		return nil, err
	}
	if err != nil || tmplName == "" && tmpl.Own == nil && rl.Tok.ChatTemplate() == "" {
		tmpl = fallback
	}
	opts := data.BuildOpts{Ctx: rl.M.Cfg.MaxPos}.With(tmpl)
	encode := func(r rlhf.Rollout) (data.Example, error) {
		rec := data.Record{Line: r.Task + 1, Prompt: tasks[r.Task].msgs,
			Completion: []chat.Message{{Role: chat.RoleAssistant, Content: r.Text}}, Label: true}
		exs, _, err := data.BuildKTO(rl.Tok, &data.Dataset{File: "rollout", Shape: data.ShapeKTO, Records: []data.Record{rec}}, opts)
		if err != nil {
			return data.Example{}, err
		}
		if len(exs) == 0 {
			return data.Example{}, fmt.Errorf("the response encodes to no tokens for %s", dir)
		}
		return exs[0].Example, nil
	}
	pad := max(rl.Tok.PAD(), max(rl.Tok.EOS(), 0))
	return &rlhf.RMScorer{RM: rm, B: b, Pad: pad, Encode: encode}, nil
}

// runPPO improves a policy with PPO: a value head, KL-shaped rewards from a
// reward model, a rule or a web service, GAE, clipped updates.
func runPPO(e *Env) error {
	fs := newFlags(e, "ppo")
	var mf modelFlags
	mf.register(fs, true)
	dataPath := fs.String("data", "", "JSONL of prompts: chat records ending with a user turn, or with an answer to check (required)")
	tmplName := fs.String("template", "", "chat template (default: the model's own): "+chat.Names())
	var rewards stringList
	fs.Var(&rewards, "reward", "rule reward term, repeatable: exact, exact-fold, number[:tol], regex:PAT, format, length:MAX[:COEF], weight prefix as 0.5*format")
	rmDir := fs.String("reward-model", "", "reward model folder made by llmlab rm")
	rmTmpl := fs.String("reward-template", "", "chat template of --reward-model (default: its own, else the policy's)")
	rewardURL := fs.String("reward-url", "", `HTTP endpoint: POST {"prompt","response"[,"answer"]} -> {"reward": number}`)
	rewardTimeout := fs.Duration("reward-timeout", 30*time.Second, "time limit of one --reward-url request")
	rewardRetries := fs.Int("reward-retries", 3, "retries of a --reward-url request after a network error, 5xx or 429")
	d := rlhf.DefaultPPO()
	fs.IntVar(&d.Iterations, "iterations", d.Iterations, "PPO iterations (rollout, score, update)")
	fs.IntVar(&d.Prompts, "prompts", d.Prompts, "rollouts (prompts) per iteration")
	fs.IntVar(&d.MaxTokens, "max-tokens", d.MaxTokens, "response tokens at most")
	fs.Float64Var(&d.Temperature, "temperature", d.Temperature, "sampling temperature of the rollouts")
	fs.IntVar(&d.Epochs, "epochs", d.Epochs, "passes over each iteration's rollouts")
	fs.IntVar(&d.MiniBatch, "minibatch", d.MiniBatch, "rollouts per update")
	gamma := fs.Float64("gamma", float64(d.Gamma), "discount γ")
	lambda := fs.Float64("lambda", float64(d.Lambda), "GAE λ")
	clip := fs.Float64("clip", float64(d.Clip), "policy ratio clip ε")
	vclip := fs.Float64("vf-clip", float64(d.ClipValue), "value clip")
	vfCoef := fs.Float64("vf-coef", float64(d.VFCoef), "value loss weight")
	entCoef := fs.Float64("ent-coef", float64(d.EntCoef), "entropy bonus weight")
	klName := fs.String("kl", d.KL.String(), "per-token KL estimator: k1, k2 or k3")
	fs.Float64Var(&d.KLCoef, "kl-coef", d.KLCoef, "KL coefficient β (the initial one with --target-kl)")
	fs.Float64Var(&d.TargetKL, "target-kl", d.TargetKL, "summed KL per response the adaptive controller aims for (0: β fixed)")
	fs.Float64Var(&d.KLHorizon, "kl-horizon", d.KLHorizon, "adaptive KL horizon in rollouts")
	lr := fs.Float64("lr", 5e-4, "policy learning rate")
	valueLR := fs.Float64("value-lr", 0, "value head learning rate (0: --lr)")
	fs.Float64Var(&d.MaxGradNorm, "max-grad-norm", d.MaxGradNorm, "gradient-norm clip of each parameter group (0: off)")
	wd := fs.Float64("weight-decay", 0, "AdamW weight decay")
	var pf peftFlags
	pf.register(fs)
	out := fs.String("out", "", "run folder: checkpoints, and the policy with its value head in OUT/final (required)")
	fs.Uint64Var(&d.Seed, "seed", d.Seed, "seed (adapter init, sampling, minibatch order)")
	fs.IntVar(&d.SaveEvery, "save-every", 0, "checkpoint every N iterations (0: at the end and on Ctrl-C)")
	fs.IntVar(&d.KeepLast, "keep", 2, "checkpoints to keep")
	resume := fs.Bool("resume", false, "continue from the newest checkpoint in --out")
	jsonOut := fs.Bool("json", false, "one JSON object per iteration, then the summary")
	if err := parse(fs, e.Args); err != nil {
		return err
	}
	if *dataPath == "" || *out == "" {
		return Usagef("--data and --out are required")
	}
	sources := 0
	for _, on := range []bool{len(rewards) > 0, *rmDir != "", *rewardURL != ""} {
		if on {
			sources++
		}
	}
	if sources != 1 {
		return Usagef("give exactly one reward source: --reward SPEC, --reward-model DIR or --reward-url URL")
	}
	kl, err := rlhf.ParseKLEstimator(*klName)
	if err != nil {
		return BadInput(err)
	}
	cfg := d
	cfg.KL, cfg.Gamma, cfg.Lambda, cfg.Clip, cfg.ClipValue = kl, float32(*gamma), float32(*lambda), float32(*clip), float32(*vclip)
	cfg.VFCoef, cfg.EntCoef, cfg.LR, cfg.ValueLR = float32(*vfCoef), float32(*entCoef), float32(*lr), float32(*valueLR)
	cfg.Optim.WeightDecay = float32(*wd)
	if err := cfg.Validate(); err != nil {
		return BadInput(err)
	}
	if pf.method != "lora" && pf.method != "none" {
		return BadInput(fmt.Errorf("--peft %q: ppo supports lora and none", pf.method))
	}
	if pf.method == "none" && mf.adapter != "" {
		return Usagef("--adapter needs --peft lora (merge it first for a full fine-tune)")
	}
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
	tasks, err := ppoTasks(l, tmpl, *dataPath)
	if err != nil {
		return err
	}

	var scorer rlhf.Scorer
	rewardDesc := ""
	switch {
	case len(rewards) > 0:
		sum, err := rlhf.ParseRewards(rewards...)
		if err != nil {
			return BadInput(err)
		}
		if needsAnswer(sum) {
			for i, tk := range tasks {
				if tk.Answer == "" {
					return BadInput(fmt.Errorf("%s: record %d has no answer for the reward %s to check", *dataPath, i+1, sum))
				}
			}
		}
		scorer, rewardDesc = rlhf.RuleScorer{Reward: sum}, sum.String()
	case *rmDir != "":
		if scorer, err = rmScorer(*rmDir, *rmTmpl, tmpl, tasks, &mf, b); err != nil {
			return err
		}
		rewardDesc = "reward model " + *rmDir
	default:
		scorer = &rlhf.HTTPScorer{URL: *rewardURL, Timeout: *rewardTimeout, Retries: *rewardRetries}
		rewardDesc = "endpoint " + *rewardURL
	}

	// run.json holds the PPO settings but the number of iterations: a run
	// may be resumed with more of them.
	hashed := cfg
	hashed.Iterations = 0
	rec := runRecord{Command: "ppo", Model: mf.model, Data: []string{*dataPath}, Batch: cfg.Prompts, Device: mf.device, Threads: mf.threads, Out: *out,
		Extra: map[string]any{"adapter": mf.adapter, "template": tmpl.String(), "reward": rewards, "reward_model": *rmDir, "reward_template": *rmTmpl, "reward_url": *rewardURL,
			"ppo": hashed, "peft": pf.method, "rank": pf.rank, "alpha": pf.alpha, "targets": pf.targets, "rslora": pf.rslora, "modules_to_save": pf.save}}
	if err := prepareRun(*out, rec, *resume); err != nil {
		return err
	}

	// The policy and its reference: a fresh adapter over the base (the
	// reference is the adapter switched off), an adapter given with
	// --adapter (the reference is a snapshot of it, swapped in without a
	// second model), or all weights against a frozen copy.
	run := &rlhf.PPORun{M: l.M, Tok: l.Tok, B: b, Cfg: cfg, Scorer: scorer, Value: rlhf.NewScalarHead(rlhf.ValueHeadName, l.M.Cfg.Hidden, true),
		Out: *out, Resume: *resume, Hash: runHash(rec)}
	adapter := l.Adapter
	switch {
	case pf.method == "none":
		ref, err := model.Load(l.Dir, model.LoadOptions{})
		if err != nil {
			return BadInput(err)
		}
		l.M.Freeze(false)
		run.Ref, run.Params, run.Weights = ref, l.M.ParamList(), train.ModelWeights{M: l.M}
	case adapter == nil:
		if adapter, err = lora.Apply(l.M, lora.Config{Rank: pf.rank, Alpha: pf.alpha, RSLoRA: pf.rslora, Targets: splitList(pf.targets),
			ModulesToSave: splitList(pf.save), Seed: cfg.Seed}); err != nil {
			return BadInput(err)
		}
		run.SetPolicy, run.Params, run.Weights = adapter.SetEnabled, adapter.Params(), adapter
	default:
		ps := adapter.Params()
		snap := make([]*tensor.Tensor, len(ps))
		for i, p := range ps {
			snap[i] = p.Value.Clone()
		}
		policyOn := true
		run.SetPolicy = func(on bool) {
			if on != policyOn {
				for i, p := range ps {
					p.Value, snap[i] = snap[i], p.Value
				}
				policyOn = on
			}
		}
		run.Params, run.Weights = ps, adapter
	}
	run.StopIDs, run.Stops = tmpl.Stops(l.Tok)
	run.Pad = max(l.Tok.PAD(), max(l.Tok.EOS(), 0))

	log := e.Stdout
	if *jsonOut {
		log = e.Stderr
	}
	fmt.Fprintf(log, "PPO: %d prompts, %d rollouts x %d epochs (minibatch %d) per iteration, reward %s, %s β=%g target %g, %s\n",
		len(tasks), cfg.Prompts, cfg.Epochs, cfg.MiniBatch, rewardDesc, cfg.KL, cfg.KLCoef, cfg.TargetKL, pf.method)
	enc := json.NewEncoder(e.Stdout)
	var first, last []float64 // rewards of the first and the last iterations reported
	plain := make([]rlhf.Task, len(tasks))
	for i, tk := range tasks {
		plain[i] = tk.Task
	}
	err = run.Train(e.Ctx, plain, func(it rlhf.PPOIteration) {
		if len(first) < 3 {
			first = append(first, it.Reward)
		}
		last = append(last, it.Reward)
		if len(last) > 3 {
			last = last[1:]
		}
		if *jsonOut {
			enc.Encode(it)
			return
		}
		if it.Iteration == 1 || it.Iteration%max(1, it.Iterations/10) == 0 || it.Iteration == it.Iterations {
			fmt.Fprintf(log, "iter %d/%d  reward %.3f  kl %.4f  β %.4f  entropy %.3f  clip %.2f  value loss %.4f  policy loss %.4f  length %.1f\n"+
				"    rollout %.2fs (%.0f tok/s)  score %.2fs  forward %.2fs  reference %.2fs  update %.2fs (%.0f tok/s)\n",
				it.Iteration, it.Iterations, it.Reward, it.KL, it.KLCoef, it.Entropy, it.ClipFrac, it.ValueLoss, it.PolicyLoss, it.Length,
				it.RolloutS, it.RolloutTPS, it.ScoreS, it.ForwardS, it.RefS, it.UpdateS, it.UpdateTPS)
		}
	})
	if e.Ctx.Err() != nil && errors.Is(err, e.Ctx.Err()) {
		fmt.Fprintln(e.Stderr, "stopped; resume with the same command and --resume")
		return nil
	}
	var mm *rlhf.PPOCheckpointMismatchError
	if errors.As(err, &mm) {
		return BadInput(err)
	}
	if err != nil {
		return err
	}

	final := filepath.Join(*out, "final")
	run.SetPolicyOn()
	if pf.method == "none" {
		err = writeFinal(final, l.M, tensor.F32, l.Tok, l.Dir)
	} else {
		err = adapter.Save(final, l.Dir)
	}
	if err != nil {
		return err
	}
	if err := rlhf.SaveValueHead(final, run.Value); err != nil {
		return err
	}
	if *jsonOut {
		return enc.Encode(map[string]any{"reward_first": meanOf(first), "reward_last": meanOf(last), "kl_coef": run.KLCtl.Coef, "out": final})
	}
	fmt.Fprintf(log, "mean reward %.3f over the first iterations, %.3f over the last; policy and value head saved in %s\n", meanOf(first), meanOf(last), final)
	return nil
}

func meanOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
