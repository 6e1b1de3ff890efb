package rlhf

import (
	"context"
	"fmt"
	"math"
	"time"

	"llmlab/core/autograd"
	"llmlab/core/data"
	"llmlab/core/generate"
	"llmlab/core/model"
	"llmlab/core/optim"
	"llmlab/core/tensor"
)

// Task is one prompt of a GRPO run with the answer its reward checks.
type Task struct {
	Prompt []int32 // encoded, generation prompt included
	Answer string
}

// GRPORun configures GRPO: G samples per prompt, group-normalised
// rewards as advantages, the clipped surrogate with a k3 KL to the
// reference (the policy with its adapter off, or none when Beta is 0).
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

// Train runs steps of GRPO over tasks (cycled in order), calling on after
// each step.
func (r *GRPORun) Train(ctx context.Context, tasks []Task, steps int, on func(GRPOStep)) error {
	if r.G < 2 {
		return fmt.Errorf("grpo: need at least 2 samples per prompt, got %d", r.G)
	}
	opt := optim.NewAdamW(r.Optim, r.Params)
	gen := generate.New(r.M, r.B, r.Tok)
	tape := autograd.NewTape(r.B)
	next := 0
	for step := 1; step <= steps; step++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		t0 := time.Now()
		// Rollouts: each prompt G times, sampled from the policy.
		var prompts [][]int32
		var answers []string
		for p := 0; p < r.Prompts; p++ {
			tk := tasks[next%len(tasks)]
			next++
			for range r.G {
				prompts = append(prompts, tk.Prompt)
				answers = append(answers, tk.Answer)
			}
		}
		res, err := gen.Generate(ctx, generate.Request{Prompts: prompts, MaxTokens: r.MaxTokens, Seed: r.Seed + uint64(step)*7919,
			Sampling: generate.Sampling{Temperature: r.Temp}, StopIDs: r.StopIDs, StopStrings: r.Stops})
		if err != nil {
			return err
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
			return err
		}
		mask := make([]bool, len(b.Labels))
		for i, l := range b.Labels {
			mask[i] = l >= 0
		}
		in := model.Inputs{B: b.B, T: b.T, IDs: b.IDs, Pos: b.Pos}
		var ref []float32
		if r.Cfg.Beta != 0 {
			r.SetPolicy(false)
			tape.Reset()
			tape.NoGrad = true
			logits, err := r.M.Forward(tape, in)
			if err != nil {
				r.SetPolicy(true)
				return err
			}
			ref = append([]float32(nil), TokenLogProbs(tape, logits, b.Labels).Value.F32...)
			tape.NoGrad = false
			r.SetPolicy(true)
		}
		rollout := time.Since(t0)
		t1 := time.Now()
		tape.Reset()
		logits, err := r.M.Forward(tape, in)
		if err != nil {
			return err
		}
		logp := TokenLogProbs(tape, logits, b.Labels)
		loss, m := GRPOLossVar(tape, r.Cfg, logp, nil, ref, adv, mask, b.T)
		lv := float64(loss.Value.F32[0])
		if math.IsNaN(lv) || math.IsInf(lv, 0) {
			return fmt.Errorf("grpo: step %d: loss is %v", step, lv)
		}
		if err := tape.Backward(loss); err != nil {
			return err
		}
		optim.ClipGradNorm(r.B, opt.Params, 1)
		opt.Update(r.B, r.LR)
		opt.ZeroGrad()
		if on != nil {
			on(GRPOStep{Step: step, Reward: meanR, KL: m.KL, ClipFrac: m.ClipFrac, Loss: lv, Length: meanLen,
				RolloutS: rollout.Seconds(), UpdateS: time.Since(t1).Seconds()})
		}
	}
	return nil
}
