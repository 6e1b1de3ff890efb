package rlhf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"time"

	"llmlab/core/autograd"
	"llmlab/core/data"
	"llmlab/core/generate"
	"llmlab/core/model"
	"llmlab/core/optim"
	"llmlab/core/tensor"
	"llmlab/core/train"
)

// Task is one prompt of a GRPO run with the answer its reward checks.
type Task struct {
	Prompt []int32 // encoded, generation prompt included
	Answer string
}

// GRPORun configures GRPO: G samples per prompt, group-normalised
// rewards as advantages, the clipped surrogate with a k3 KL to the
// reference (the policy with its adapter off, or none when Beta is 0).
//
// Determinism: step s samples its rollouts from per-row samplers seeded
// with Seed + s·7919 and takes its prompts from a cursor over the tasks;
// nothing else draws random numbers. A checkpoint (step, cursor, the
// trainable weights, AdamW's moments) therefore lets a resumed run repeat
// the updates an uninterrupted one makes, bit for bit at a fixed backend.
type GRPORun struct {
	M         *model.Transformer
	Tok       generate.Decoder
	B         tensor.Backend
	Cfg       GRPOConfig
	Reward    Reward
	Params    []*autograd.Param // trainable
	SetPolicy func(on bool)     // switches the adapter (reference = off)
	Optim     optim.AdamWConfig
	LR        float32
	Prompts   int // prompts per step
	G         int // samples per prompt
	MaxTokens int
	Temp      float64
	StopIDs   []int32
	Stops     []string
	Pad       int32
	Seed      uint64

	// Checkpoints, as PPO's: Out/checkpoints/step-N/ with the policy
	// (Weights), AdamW's state and state.json. Out "" writes none.
	Weights   train.Weights // what checkpoints store of the policy (the adapter, or the model)
	Out       string
	Resume    bool   // continue from the newest valid checkpoint in Out
	Hash      string // identifies model, data and reward: a resume must match (the settings are checked too)
	SaveEvery int    // checkpoint every N steps; 0: at the end and on cancel
	KeepLast  int    // checkpoints kept; 0 means 2

	// Step is the last step done (after a resume, the one it resumed at).
	Step int
	next int // index of the next task
	opt  *optim.AdamW
	gen  *generate.Generator
	tape *autograd.Tape
}

// GRPOStep reports one step.
type GRPOStep struct {
	Step     int     `json:"step"`
	Reward   float64 `json:"reward"`
	KL       float64 `json:"kl"`
	ClipFrac float64 `json:"clipfrac"`
	Loss     float64 `json:"loss"`
	Length   float64 `json:"response_length"`
	RolloutS float64 `json:"rollout_s"`
	UpdateS  float64 `json:"update_s"`
}

// Train runs GRPO over tasks (cycled in order) until step steps, calling
// on after each step. With Out it checkpoints every SaveEvery steps and at
// the end; when ctx is cancelled it writes a checkpoint of the last whole
// step and returns ctx.Err(). With Resume it first continues from the
// newest valid checkpoint in Out.
func (r *GRPORun) Train(ctx context.Context, tasks []Task, steps int, on func(GRPOStep)) error {
	if r.G < 2 {
		return fmt.Errorf("grpo: need at least 2 samples per prompt, got %d", r.G)
	}
	if len(tasks) == 0 || steps <= 0 || r.Prompts <= 0 {
		return fmt.Errorf("grpo: %d tasks, %d steps, %d prompts per step: all must be positive", len(tasks), steps, r.Prompts)
	}
	if r.Cfg.Beta != 0 && r.SetPolicy == nil {
		return errors.New("grpo: a KL to the reference (beta > 0) needs SetPolicy (the adapter switch)")
	}
	if r.Out != "" && r.Weights == nil {
		return errors.New("grpo: checkpoints need Weights (the adapter or the model)")
	}
	r.opt = optim.NewAdamW(r.Optim, r.Params)
	r.gen = generate.New(r.M, r.B, r.Tok)
	r.tape = autograd.NewTape(r.B)
	r.Step, r.next = 0, 0
	if r.Resume && r.Out != "" {
		if err := r.resume(steps); err != nil {
			return err
		}
	}
	saved := r.Step
	for r.Step < steps {
		if err := ctx.Err(); err != nil {
			if r.Step > saved {
				if serr := r.save(steps); serr != nil {
					return serr
				}
			}
			return err
		}
		s, err := r.step(ctx, tasks, r.Step+1)
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				continue // write the checkpoint of the last whole step above
			}
			return err
		}
		r.Step++
		if on != nil {
			on(s)
		}
		if (r.SaveEvery > 0 && r.Step%r.SaveEvery == 0) || r.Step == steps {
			if err := r.save(steps); err != nil {
				return err
			}
			saved = r.Step
		}
	}
	return nil
}

// step runs step number step; it changes the run's state (cursor,
// weights, optimizer) only once nothing can fail but the update.
func (r *GRPORun) step(ctx context.Context, tasks []Task, step int) (GRPOStep, error) {
	t0 := time.Now()
	// Rollouts: each prompt G times, sampled from the policy.
	var prompts [][]int32
	var answers []string
	next := r.next
	for p := 0; p < r.Prompts; p++ {
		tk := tasks[next%len(tasks)]
		next++
		for range r.G {
			prompts = append(prompts, tk.Prompt)
			answers = append(answers, tk.Answer)
		}
	}
	res, err := r.gen.Generate(ctx, generate.Request{Prompts: prompts, MaxTokens: r.MaxTokens, Seed: r.Seed + uint64(step)*7919,
		Sampling: generate.Sampling{Temperature: r.Temp}, StopIDs: r.StopIDs, StopStrings: r.Stops})
	if err != nil {
		return GRPOStep{}, err
	}
	n := len(prompts)
	rewards := make([]float32, n)
	var meanR, meanLen float64
	exs := make([]data.Example, n)
	longest := 0
	for i := range prompts {
		rewards[i] = r.Reward.Score(res.Text[i], answers[i])
		meanR += float64(rewards[i]) / float64(n)
		comp := res.IDs[i]
		if res.Finish[i] == "stop" && len(r.StopIDs) > 0 && len(comp) < r.MaxTokens {
			comp = append(append([]int32(nil), comp...), r.StopIDs[0]) // the model is rewarded for stopping
		}
		meanLen += float64(len(comp)) / float64(n)
		ids := append(append([]int32(nil), prompts[i]...), comp...)
		labels := make([]int32, len(ids))
		for k := range labels {
			labels[k] = data.IgnoreIndex
		}
		copy(labels[len(prompts[i]):], comp)
		exs[i] = data.Example{IDs: ids, Labels: labels}
		longest = max(longest, len(ids))
	}
	adv := make([]float32, n)
	GroupAdvantages(adv, rewards, r.G)
	b, err := data.Collate(exs, longest, r.Pad)
	if err != nil {
		return GRPOStep{}, err
	}
	mask := make([]bool, len(b.Labels))
	for i, l := range b.Labels {
		mask[i] = l >= 0
	}
	in := model.Inputs{B: b.B, T: b.T, IDs: b.IDs, Pos: b.Pos}
	tape := r.tape
	var ref []float32
	if r.Cfg.Beta != 0 {
		r.SetPolicy(false)
		tape.Reset()
		tape.NoGrad = true
		nll, err := r.M.TokenNLL(tape, in, b.Labels)
		if err != nil {
			tape.NoGrad = false
			r.SetPolicy(true)
			return GRPOStep{}, err
		}
		ref = append([]float32(nil), tape.Scale(nll, -1).Value.F32...)
		tape.NoGrad = false
		r.SetPolicy(true)
	}
	rollout := time.Since(t0)
	t1 := time.Now()
	tape.Reset()
	nll, err := r.M.TokenNLL(tape, in, b.Labels)
	if err != nil {
		return GRPOStep{}, err
	}
	logp := tape.Scale(nll, -1) // (B*T) log p, 0 where ignored
	loss, m := GRPOLossVar(tape, r.Cfg, logp, nil, ref, adv, mask, b.T)
	lv := float64(loss.Value.F32[0])
	if math.IsNaN(lv) || math.IsInf(lv, 0) {
		return GRPOStep{}, fmt.Errorf("grpo: step %d: loss is %v", step, lv)
	}
	if err := tape.Backward(loss); err != nil {
		return GRPOStep{}, err
	}
	optim.ClipGradNorm(r.B, r.opt.Params, 1)
	r.opt.Update(r.B, r.LR)
	r.opt.ZeroGrad()
	r.next = next % len(tasks)
	return GRPOStep{Step: step, Reward: meanR, KL: m.KL, ClipFrac: m.ClipFrac, Loss: lv, Length: meanLen,
		RolloutS: rollout.Seconds(), UpdateS: time.Since(t1).Seconds()}, nil
}

// grpoSettings are the settings a checkpoint records; a resume must match
// them all but Steps.
type grpoSettings struct {
	Steps int `json:"steps"`
	GRPOConfig
	Optim     optim.AdamWConfig `json:"optim"`
	LR        float32           `json:"lr"`
	Prompts   int               `json:"prompts"`
	G         int               `json:"group"`
	MaxTokens int               `json:"max_tokens"`
	Temp      float64           `json:"temperature"`
	StopIDs   []int32           `json:"stop_ids"`
	Stops     []string          `json:"stops"`
	Pad       int32             `json:"pad"`
	Seed      uint64            `json:"seed"`
}

func (r *GRPORun) settings(steps int) grpoSettings {
	return grpoSettings{Steps: steps, GRPOConfig: r.Cfg, Optim: r.Optim, LR: r.LR, Prompts: r.Prompts, G: r.G, MaxTokens: r.MaxTokens,
		Temp: r.Temp, StopIDs: r.StopIDs, Stops: r.Stops, Pad: r.Pad, Seed: r.Seed}
}

// grpoState is a GRPO checkpoint's state.json. The folder holds the
// policy in weights/ (Weights.SaveWeights) and AdamW's state in
// optimizer.safetensors; the sampling seed of a step follows from its
// number.
type grpoState struct {
	Step   int `json:"step"`
	Cursor int `json:"cursor"` // index of the next task
	runManifest
}

// save writes the checkpoint of the current step (nothing without Out).
func (r *GRPORun) save(steps int) error {
	if r.Out == "" {
		return nil
	}
	st := grpoState{Step: r.Step, Cursor: r.next, runManifest: runManifest{Hash: r.Hash}}
	var err error
	if st.Config, err = json.Marshal(r.settings(steps)); err != nil {
		return err
	}
	write := func(tmp string) error {
		if r.SetPolicy != nil {
			r.SetPolicy(true)
		}
		if err := r.Weights.SaveWeights(filepath.Join(tmp, "weights")); err != nil {
			return err
		}
		return r.opt.Save(tmp)
	}
	if err := writeRunCheckpoint(filepath.Join(r.Out, "checkpoints"), r.Step, r.KeepLast, write, &st, &st.runManifest); err != nil {
		return fmt.Errorf("grpo: checkpoint at step %d: %w", r.Step, err)
	}
	return nil
}

// resume loads the newest valid checkpoint in Out, if there is one.
func (r *GRPORun) resume(steps int) error {
	var st grpoState
	dir, err := newestRunCheckpoint("grpo", filepath.Join(r.Out, "checkpoints"), func(dir string) error {
		var err error
		st, err = readGRPOState(dir)
		return err
	})
	if err != nil || dir == "" {
		return err
	}
	now := r.settings(steps)
	if err := checkRunConfig("grpo", dir, &st.runManifest, r.Hash, now, func(then *grpoSettings) { then.Steps = steps }); err != nil {
		return err
	}
	if st.Step > steps {
		return fmt.Errorf("grpo: %s is at step %d, past the %d asked for", dir, st.Step, steps)
	}
	fail := func(err error) error { return fmt.Errorf("grpo: resume from %s: %w", dir, err) }
	if r.SetPolicy != nil {
		r.SetPolicy(true)
	}
	if err := r.Weights.LoadWeights(filepath.Join(dir, "weights")); err != nil {
		return fail(err)
	}
	if err := r.opt.Load(dir); err != nil {
		return fail(err)
	}
	r.Step, r.next = st.Step, st.Cursor
	return nil
}

func readGRPOState(dir string) (grpoState, error) {
	var st grpoState
	err := readRunState(dir, &st, &st.runManifest, func() error {
		if st.Step <= 0 || st.Cursor < 0 || len(st.Files) == 0 {
			return fmt.Errorf("step %d, cursor %d, %d files", st.Step, st.Cursor, len(st.Files))
		}
		return nil
	})
	return st, err
}
