package rlhf

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"llmlab/core/autograd"
	"llmlab/core/data"
	"llmlab/core/generate"
	"llmlab/core/model"
	"llmlab/core/optim"
	"llmlab/core/tensor"
	"llmlab/core/train"
)

// PPO, the loop (Ziegler et al. 2019; Ouyang et al. 2022; TRL's
// PPOTrainer). Each iteration:
//
//  1. rollouts: Prompts prompts, one sample each, generated with the KV
//     cache (core/generate) from the policy;
//  2. scoring: a Scorer gives each response one number (a reward model, a
//     rule, or an HTTP endpoint);
//  3. no-grad passes: the policy's log-probabilities of its own tokens and
//     the value head's V per token (one forward), then the reference's
//     log-probabilities (the adapter switched off, or a frozen copy);
//  4. per-token rewards −β·KL(π‖πref), the score added at the last token
//     (ShapeRewards); GAE(γ, λ); advantages whitened over the batch;
//  5. Epochs passes over shuffled minibatches of rows: the clipped
//     surrogate, the clipped value loss (×VFCoef) and the entropy bonus
//     (×EntCoef), one AdamW step per minibatch for the policy and one for
//     the value head;
//  6. the adaptive KL controller moves β towards TargetKL.
//
// The token arrays of an iteration are the rows of one right-padded batch
// (prompt + response, data.Collate): position t carries the label of token
// t+1, so the mask (labels ≥ 0) marks exactly the response tokens, the
// value of a response token is read at the position that predicts it (the
// state before it was chosen), and prompt and padding positions count as
// the ends GAE expects. A response ends with the stop token the model
// sampled (it is rewarded for stopping); nothing after it exists.
//
// Determinism: generation draws from per-row samplers seeded from Seed and
// the iteration number, and minibatch order from one PCG whose state is
// checkpointed, so a resumed run repeats the updates an uninterrupted run
// makes, bit for bit at a fixed backend.

// PPOConfig holds PPO's hyper-parameters (TRL's names in brackets). It is
// saved and hashed in checkpoints: a resume must match it.
type PPOConfig struct {
	Iterations  int               `json:"iterations"`
	Prompts     int               `json:"prompts"`    // rollouts per iteration [batch_size]
	MaxTokens   int               `json:"max_tokens"` // response tokens at most [response_length]
	Temperature float64           `json:"temperature"`
	Epochs      int               `json:"epochs"`     // passes over each batch [num_ppo_epochs]
	MiniBatch   int               `json:"mini_batch"` // rows per update [mini_batch_size]
	Gamma       float32           `json:"gamma"`      // discount, 1 [gamma]
	Lambda      float32           `json:"lambda"`     // GAE λ, 0.95 [lam]
	Clip        float32           `json:"clip"`       // ratio clip ε, 0.2 [cliprange]
	ClipValue   float32           `json:"clip_value"` // value clip, 0.2 [cliprange_value]
	VFCoef      float32           `json:"vf_coef"`    // value loss weight, 0.1 [vf_coef]
	EntCoef     float32           `json:"ent_coef"`   // entropy bonus weight, 0: off
	KL          KLEstimator       `json:"kl"`         // per-token KL estimate, k1 [kl_estimator]
	KLCoef      float64           `json:"kl_coef"`    // initial β, 0.05 [kl_coef]
	TargetKL    float64           `json:"target_kl"`  // summed KL per response the controller aims for; 0: β fixed
	KLHorizon   float64           `json:"kl_horizon"` // controller horizon in samples, 10000
	LR          float32           `json:"lr"`         // policy learning rate
	ValueLR     float32           `json:"value_lr"`   // value head learning rate; 0: LR
	MaxGradNorm float64           `json:"max_grad_norm"`
	Optim       optim.AdamWConfig `json:"optim"` // betas, eps, weight decay (LR ignored)
	Seed        uint64            `json:"seed"`
	SaveEvery   int               `json:"-"` // checkpoint every N iterations; 0: at the end and on cancel
	KeepLast    int               `json:"-"` // checkpoints kept; 0 means 2
}

// DefaultPPO returns TRL's defaults scaled to a small CPU run.
func DefaultPPO() PPOConfig {
	return PPOConfig{Iterations: 20, Prompts: 8, MaxTokens: 16, Temperature: 1, Epochs: 4, MiniBatch: 4,
		Gamma: 1, Lambda: 0.95, Clip: 0.2, ClipValue: 0.2, VFCoef: 0.1, KL: K1, KLCoef: 0.05, KLHorizon: 10000,
		LR: 1e-4, MaxGradNorm: 1, Optim: optim.AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}, Seed: 1}
}

// Validate checks the ranges.
func (c PPOConfig) Validate() error {
	switch {
	case c.Iterations <= 0 || c.Prompts <= 0 || c.MaxTokens <= 0 || c.Epochs <= 0:
		return fmt.Errorf("ppo: iterations (%d), prompts (%d), max tokens (%d) and epochs (%d) must be positive",
			c.Iterations, c.Prompts, c.MaxTokens, c.Epochs)
	case c.MiniBatch <= 0 || c.MiniBatch > c.Prompts:
		return fmt.Errorf("ppo: minibatch of %d rows must be in [1, %d] (the prompts per iteration)", c.MiniBatch, c.Prompts)
	case c.Temperature < 0 || math.IsNaN(c.Temperature):
		return fmt.Errorf("ppo: temperature must be >= 0, got %v", c.Temperature)
	case c.Gamma < 0 || c.Gamma > 1 || c.Lambda < 0 || c.Lambda > 1:
		return fmt.Errorf("ppo: gamma (%g) and lambda (%g) must be in [0, 1]", c.Gamma, c.Lambda)
	case c.Clip <= 0 || c.ClipValue <= 0:
		return fmt.Errorf("ppo: clip ranges must be positive, got %g and %g", c.Clip, c.ClipValue)
	case c.KLCoef < 0 || c.TargetKL < 0 || c.VFCoef < 0 || c.EntCoef < 0:
		return fmt.Errorf("ppo: kl coef (%g), target kl (%g), vf coef (%g) and entropy coef (%g) must be >= 0",
			c.KLCoef, c.TargetKL, c.VFCoef, c.EntCoef)
	case c.TargetKL > 0 && (c.KLHorizon <= 0 || c.KLCoef == 0):
		return fmt.Errorf("ppo: an adaptive KL (target %g) needs a positive horizon (%g) and initial coef (%g)", c.TargetKL, c.KLHorizon, c.KLCoef)
	case c.LR <= 0 || c.ValueLR < 0:
		return fmt.Errorf("ppo: learning rates must be positive, got %g and %g", c.LR, c.ValueLR)
	}
	return nil
}

// Rollout is one sampled response, as a Scorer sees it.
type Rollout struct {
	Task       int     // index of the task in the list Train was given
	Prompt     []int32 // the prompt's ids
	PromptText string  // the prompt decoded (chat template included)
	Response   []int32 // generated ids, with the stop token when the model stopped
	Text       string  // the response decoded, cut at a stop string, without the stop token
	Answer     string  // the task's answer ("" when it has none)
	Finish     string  // "stop" or "length"
}

// PPORun is one PPO run: the policy (M with Params trainable), the value
// head, the reference and where the scores come from.
type PPORun struct {
	M      *model.Transformer
	Tok    generate.Decoder
	B      tensor.Backend
	Cfg    PPOConfig
	Scorer Scorer
	Params []*autograd.Param // the policy's trainable parameters (adapter or full)
	Value  *ScalarHead       // d_model → 1 on the policy's final hidden states
	// The reference policy: Ref, a frozen copy of the starting model, or
	// when Ref is nil, M with SetPolicy(false) (a LoRA adapter switched
	// off: no second copy of the weights).
	Ref       *model.Transformer
	SetPolicy func(on bool)
	Weights   train.Weights // what checkpoints store of the policy (the adapter, or the model)
	// StopIDs end a response, usually just EOS. The generator does not say
	// which one it sampled, so a response that stopped gets the first
	// appended: give one stop token, or the others' log-probabilities are
	// those of the first.
	StopIDs []int32
	Stops   []string
	Pad     int32
	// Out is the run folder (checkpoints in Out/checkpoints); "" writes none.
	Out    string
	Resume bool   // continue from the newest valid checkpoint in Out
	Hash   string // identifies model, data and reward: a resume must match (Cfg is checked too)

	// Iteration is the last iteration done (after a resume, the one it
	// resumed at); KLCtl the controller's state.
	Iteration int
	KLCtl     AdaptiveKL
	cursor    int
	pcg       *rand.PCG
	polOpt    *optim.AdamW
	valOpt    *optim.AdamW
	tape      *autograd.Tape
	refTape   *autograd.Tape
	gen       *generate.Generator
}

// PPOIteration reports one iteration.
type PPOIteration struct {
	Iteration  int     `json:"iteration"`
	Iterations int     `json:"iterations"`
	Reward     float64 `json:"reward"`          // mean score of the responses
	RewardStd  float64 `json:"reward_std"`      // their spread
	KL         float64 `json:"kl"`              // mean over responses of the summed per-token KL estimate
	KLCoef     float64 `json:"kl_coef"`         // β used for this iteration's rewards
	Entropy    float64 `json:"entropy"`         // mean per-token entropy of the policy over responses
	ClipFrac   float64 `json:"clipfrac"`        // fraction of tokens where the clipped surrogate won
	ApproxKL   float64 `json:"approx_kl"`       // ½(logπ − logπold)² over the updates
	VClipFrac  float64 `json:"vf_clipfrac"`     // fraction of tokens where the clipped value loss won
	PolicyLoss float64 `json:"policy_loss"`     // means over minibatches and epochs
	ValueLoss  float64 `json:"value_loss"`      //
	Length     float64 `json:"response_length"` // mean tokens per response, stop token included
	Return     float64 `json:"return"`          // mean GAE return over response tokens
	Value      float64 `json:"value"`           // mean value-head prediction over response tokens

	RolloutS   float64 `json:"rollout_s"`   // generation
	ScoreS     float64 `json:"score_s"`     // the Scorer
	ForwardS   float64 `json:"forward_s"`   // the policy's no-grad pass (old log-probs, values)
	RefS       float64 `json:"reference_s"` // the reference's pass
	UpdateS    float64 `json:"update_s"`    // the epochs of minibatch updates
	RolloutTPS float64 `json:"rollout_tokens_per_s"`
	UpdateTPS  float64 `json:"update_tokens_per_s"` // real (non-pad) tokens through forward+backward per second
}

// ppoStream separates the run's PCG from other users of the seed.
const ppoStream = 0x70706f // "ppo"

// setup builds the optimizers, tapes and the controller, and resumes.
func (r *PPORun) setup() error {
	if err := r.Cfg.Validate(); err != nil {
		return err
	}
	if r.Scorer == nil || r.Value == nil {
		return errors.New("ppo: a scorer and a value head are required")
	}
	if r.Ref == nil && r.SetPolicy == nil {
		return errors.New("ppo: no reference: give Ref (a frozen copy) or SetPolicy (the adapter switch)")
	}
	if r.Out != "" && r.Weights == nil {
		return errors.New("ppo: checkpoints need Weights (the adapter or the model)")
	}
	oc := r.Cfg.Optim
	oc.LR = r.Cfg.LR
	r.polOpt = optim.NewAdamW(oc, r.Params)
	oc.LR = r.valueLR()
	r.valOpt = optim.NewAdamW(oc, r.Value.Params())
	r.tape = autograd.NewTape(r.B)
	r.refTape = autograd.NewTape(r.B)
	r.refTape.NoGrad = true
	r.gen = generate.New(r.M, r.B, r.Tok)
	r.pcg = rand.NewPCG(r.Cfg.Seed, ppoStream)
	r.KLCtl = AdaptiveKL{Coef: r.Cfg.KLCoef, Target: r.Cfg.TargetKL, Horizon: r.Cfg.KLHorizon}
	r.Iteration, r.cursor = 0, 0
	if r.Resume && r.Out != "" {
		return r.resume()
	}
	return nil
}

func (r *PPORun) valueLR() float32 {
	if r.Cfg.ValueLR > 0 {
		return r.Cfg.ValueLR
	}
	return r.Cfg.LR
}

// Train runs PPO over tasks (taken in order, cycled) until Cfg.Iterations,
// calling on after each iteration. When ctx is cancelled a checkpoint is
// written (with Out) and ctx.Err() returned.
func (r *PPORun) Train(ctx context.Context, tasks []Task, on func(PPOIteration)) error {
	if len(tasks) == 0 {
		return errors.New("ppo: no tasks")
	}
	if err := r.setup(); err != nil {
		return err
	}
	saved := r.Iteration
	for r.Iteration < r.Cfg.Iterations {
		if err := ctx.Err(); err != nil {
			if r.Iteration > saved {
				if serr := r.save(); serr != nil {
					return serr
				}
			}
			return err
		}
		it, err := r.iterate(ctx, tasks)
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				continue // write the checkpoint of the last whole iteration above
			}
			return fmt.Errorf("ppo: iteration %d: %w", r.Iteration+1, err)
		}
		r.Iteration++
		it.Iteration, it.Iterations = r.Iteration, r.Cfg.Iterations
		if on != nil {
			on(it)
		}
		if (r.Cfg.SaveEvery > 0 && r.Iteration%r.Cfg.SaveEvery == 0) || r.Iteration == r.Cfg.Iterations {
			if err := r.save(); err != nil {
				return err
			}
			saved = r.Iteration
		}
	}
	return nil
}

// splitmix64 scrambles x; it seeds each iteration's generation so that no
// two iterations share a row's sampler seed.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// batchState is one iteration's rollouts laid out for the updates; every
// token array is (B, T) over the rows of b.
type batchState struct {
	b       data.Batch
	mask    []bool
	oldLogp []float32
	refLogp []float32
	values  []float32
	adv     []float32
	returns []float32
	tokens  []int // real (non-pad) tokens of each row
}

// iterate runs one iteration; it changes the run's state only when it
// succeeds up to the updates.
func (r *PPORun) iterate(ctx context.Context, tasks []Task) (PPOIteration, error) {
	c := r.Cfg
	var it PPOIteration
	n := c.Prompts

	// 1. Rollouts.
	t0 := time.Now()
	rolls := make([]Rollout, n)
	prompts := make([][]int32, n)
	for i := range n {
		k := (r.cursor + i) % len(tasks)
		rolls[i] = Rollout{Task: k, Prompt: tasks[k].Prompt, Answer: tasks[k].Answer}
		prompts[i] = tasks[k].Prompt
	}
	r.SetPolicyOn()
	res, err := r.gen.Generate(ctx, generate.Request{Prompts: prompts, MaxTokens: c.MaxTokens,
		Seed: splitmix64(c.Seed ^ splitmix64(uint64(r.Iteration+1))), Sampling: generate.Sampling{Temperature: c.Temperature},
		StopIDs: r.StopIDs, StopStrings: r.Stops})
	if err != nil {
		return it, err
	}
	exs := make([]data.Example, n)
	longest := 0
	for i := range rolls {
		comp := res.IDs[i]
		if res.Finish[i] == "stop" && len(r.StopIDs) > 0 && r.stoppedOnID(comp, res.Text[i]) {
			comp = append(append([]int32(nil), comp...), r.StopIDs[0])
		}
		rolls[i].Response, rolls[i].Text, rolls[i].Finish = comp, res.Text[i], res.Finish[i]
		if r.Tok != nil {
			rolls[i].PromptText = r.Tok.Decode(rolls[i].Prompt)
		}
		ids := append(append([]int32(nil), rolls[i].Prompt...), comp...)
		labels := make([]int32, len(ids))
		for k := range labels {
			labels[k] = data.IgnoreIndex
		}
		copy(labels[len(rolls[i].Prompt):], comp)
		exs[i] = data.Example{IDs: ids, Labels: labels}
		longest = max(longest, len(ids))
		it.Length += float64(len(comp)) / float64(n)
	}
	it.RolloutS = time.Since(t0).Seconds()
	if it.RolloutS > 0 {
		it.RolloutTPS = float64(res.Tokens) / it.RolloutS
	}

	// 2. Scores.
	t1 := time.Now()
	scores := make([]float32, n)
	if err := r.Scorer.Scores(ctx, rolls, scores); err != nil {
		return it, fmt.Errorf("scoring: %w", err)
	}
	for i, s := range scores {
		if math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) {
			return it, fmt.Errorf("scoring: response %d got score %v", i, s)
		}
		it.Reward += float64(s) / float64(n)
	}
	for _, s := range scores {
		d := float64(s) - it.Reward
		it.RewardStd += d * d / float64(n)
	}
	it.RewardStd = math.Sqrt(it.RewardStd)
	it.ScoreS = time.Since(t1).Seconds()

	// 3. The policy's and the reference's no-grad passes.
	b, err := data.Collate(exs, longest, r.Pad)
	if err != nil {
		return it, err
	}
	st := &batchState{b: b, mask: make([]bool, len(b.Labels)), tokens: make([]int, n)}
	for i, l := range b.Labels {
		st.mask[i] = l >= 0
	}
	for i, e := range exs {
		st.tokens[i] = len(e.IDs)
	}
	t2 := time.Now()
	if st.oldLogp, st.values, err = r.policyPass(b); err != nil {
		return it, err
	}
	it.ForwardS = time.Since(t2).Seconds()
	t3 := time.Now()
	if st.refLogp, err = r.referencePass(b); err != nil {
		return it, err
	}
	it.RefS = time.Since(t3).Seconds()

	// 4. Rewards, advantages, returns.
	T := b.T
	rewards := make([]float32, len(st.mask))
	it.KLCoef = r.KLCtl.Coef
	it.KL = ShapeRewards(rewards, st.oldLogp, st.refLogp, st.mask, scores, T, float32(r.KLCtl.Coef), c.KL)
	st.adv, st.returns = make([]float32, len(st.mask)), make([]float32, len(st.mask))
	GAE(st.adv, st.returns, rewards, st.values, st.mask, T, c.Gamma, c.Lambda)
	cnt := 0
	for i, m := range st.mask {
		if m {
			cnt++
			it.Return += float64(st.returns[i])
			it.Value += float64(st.values[i])
		}
	}
	if cnt > 0 {
		it.Return /= float64(cnt)
		it.Value /= float64(cnt)
	}
	Whiten(st.adv, st.adv, st.mask, true)

	// 5. Updates.
	t4 := time.Now()
	upd, err := r.update(st)
	if err != nil {
		return it, err
	}
	it.UpdateS = time.Since(t4).Seconds()
	it.Entropy, it.ClipFrac, it.ApproxKL, it.VClipFrac = upd.entropy, upd.clipFrac, upd.approxKL, upd.vClipFrac
	it.PolicyLoss, it.ValueLoss = upd.policyLoss, upd.valueLoss
	if it.UpdateS > 0 {
		it.UpdateTPS = float64(upd.tokens) / it.UpdateS
	}

	// 6. The KL controller, and the next prompts.
	if c.TargetKL > 0 {
		r.KLCtl.Update(it.KL, n)
	}
	r.cursor = (r.cursor + n) % len(tasks)
	return it, nil
}

// SetPolicyOn makes sure the policy (not the reference) is what M computes.
func (r *PPORun) SetPolicyOn() {
	if r.Ref == nil && r.SetPolicy != nil {
		r.SetPolicy(true)
	}
}

// stoppedOnID reports whether a response that finished with "stop" ended
// on a stop token (then the token belongs to the response) rather than a
// stop string (then its text was cut).
func (r *PPORun) stoppedOnID(ids []int32, text string) bool {
	if len(r.Stops) == 0 || r.Tok == nil {
		return true
	}
	return r.Tok.Decode(ids) == text
}

// logProbs puts the token log-probabilities of b's labels under m on t,
// logits divided by the sampling temperature as the sampler saw them, and
// returns them with the final hidden states.
func (r *PPORun) logProbs(t *autograd.Tape, m *model.Transformer, b data.Batch) (logp, logits, hidden *autograd.Var, err error) {
	hidden, err = m.Hidden(t, model.Inputs{B: b.B, T: b.T, IDs: b.IDs, Pos: b.Pos})
	if err != nil {
		return nil, nil, nil, err
	}
	logits = m.Logits(t, hidden) // (B*T, V)
	if tau := r.Cfg.Temperature; tau > 0 && tau != 1 {
		logits = t.Scale(logits, float32(1/tau))
	}
	return TokenLogProbs(t, logits, b.Labels), logits, hidden, nil
}

// policyPass returns the policy's log-probabilities of b's labels and the
// value head's predictions (B*T each), without recording gradients. It
// runs in minibatches of the update's size, so the first update sees the
// very numbers computed here (ratio exactly 1).
func (r *PPORun) policyPass(b data.Batch) (logp, values []float32, err error) {
	r.SetPolicyOn()
	t := r.refTape
	logp, values = make([]float32, b.B*b.T), make([]float32, b.B*b.T)
	for lo := 0; lo < b.B; lo += r.Cfg.MiniBatch {
		hi := min(lo+r.Cfg.MiniBatch, b.B)
		t.Reset()
		lp, _, h, err := r.logProbs(t, r.M, b.Rows(lo, hi))
		if err != nil {
			return nil, nil, err
		}
		copy(logp[lo*b.T:], lp.Value.Float32s())
		copy(values[lo*b.T:], r.Value.Forward(t, h).Value.Float32s())
	}
	t.Reset()
	return logp, values, nil
}

// referencePass returns the reference's log-probabilities of b's labels.
func (r *PPORun) referencePass(b data.Batch) ([]float32, error) {
	m := r.Ref
	if m == nil {
		m = r.M
		r.SetPolicy(false)
		defer r.SetPolicy(true)
	}
	t := r.refTape
	out := make([]float32, b.B*b.T)
	for lo := 0; lo < b.B; lo += r.Cfg.MiniBatch {
		hi := min(lo+r.Cfg.MiniBatch, b.B)
		t.Reset()
		lp, _, _, err := r.logProbs(t, m, b.Rows(lo, hi))
		if err != nil {
			return nil, fmt.Errorf("reference: %w", err)
		}
		copy(out[lo*b.T:], lp.Value.Float32s())
	}
	t.Reset()
	return out, nil
}

type updateStats struct {
	entropy, clipFrac, approxKL, vClipFrac, policyLoss, valueLoss float64
	tokens                                                        int
}

// update runs the epochs of minibatch updates over st.
func (r *PPORun) update(st *batchState) (updateStats, error) {
	c := r.Cfg
	n, T := st.b.B, st.b.T
	var u updateStats
	steps := 0
	rng := rand.New(r.pcg)
	order := make([]int, n)
	mb := c.MiniBatch
	sub := data.NewBatch(mb, T)
	gather := func(dst, src []float32, rows []int) []float32 {
		dst = dst[:0]
		for _, k := range rows {
			dst = append(dst, src[k*T:(k+1)*T]...)
		}
		return dst
	}
	var oldLogp, values, adv, returns []float32
	var mask []bool
	r.SetPolicyOn()
	for epoch := range c.Epochs {
		for i := range order {
			order[i] = i
		}
		// The first epoch goes in rollout order, in the minibatches the
		// no-grad pass used: its first update starts at ratio exactly 1.
		if epoch > 0 {
			rng.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
		}
		for lo := 0; lo < n; lo += mb {
			rows := order[lo:min(lo+mb, n)]
			k := len(rows)
			sub.B = k
			sub.IDs, sub.Labels, sub.Pos = sub.IDs[:0], sub.Labels[:0], sub.Pos[:0]
			mask = mask[:0]
			for _, row := range rows {
				sub.IDs = append(sub.IDs, st.b.IDs[row*T:(row+1)*T]...)
				sub.Labels = append(sub.Labels, st.b.Labels[row*T:(row+1)*T]...)
				sub.Pos = append(sub.Pos, st.b.Pos[row*T:(row+1)*T]...)
				mask = append(mask, st.mask[row*T:(row+1)*T]...)
				u.tokens += st.tokens[row]
			}
			oldLogp = gather(oldLogp, st.oldLogp, rows)
			values = gather(values, st.values, rows)
			adv = gather(adv, st.adv, rows)
			returns = gather(returns, st.returns, rows)

			t := r.tape
			t.Reset()
			logp, logits, h, err := r.logProbs(t, r.M, sub)
			if err != nil {
				return u, err
			}
			v := r.Value.Forward(t, h) // (k*T)
			pl, pm := PolicyLossVar(t, logp, oldLogp, adv, mask, c.Clip)
			vl, vcf := ValueLossVar(t, v, values, returns, mask, c.ClipValue)
			loss := t.Add(pl, t.Scale(vl, c.VFCoef))
			var ent float64
			if c.EntCoef != 0 {
				e := MaskedMean(t, EntropyVar(t, logits), mask)
				ent = float64(e.Value.At(0))
				loss = t.Add(loss, t.Scale(e, -c.EntCoef))
			} else {
				ent = maskedEntropy(logits.Value.Float32s(), logits.Value.Cols(), mask)
			}
			lv := float64(loss.Value.At(0))
			if math.IsNaN(lv) || math.IsInf(lv, 0) {
				return u, fmt.Errorf("update: loss is %v (policy %v, value %v)", lv, pl.Value.At(0), vl.Value.At(0))
			}
			if err := t.Backward(loss); err != nil {
				return u, err
			}
			optim.ClipGradNorm(r.B, r.polOpt.Params, c.MaxGradNorm)
			optim.ClipGradNorm(r.B, r.valOpt.Params, c.MaxGradNorm)
			r.polOpt.Update(r.B, c.LR)
			r.valOpt.Update(r.B, r.valueLR())
			r.polOpt.ZeroGrad()
			r.valOpt.ZeroGrad()

			steps++
			u.entropy += ent
			u.clipFrac += pm.ClipFrac
			u.approxKL += pm.ApproxKL
			u.vClipFrac += vcf
			u.policyLoss += float64(pl.Value.At(0))
			u.valueLoss += float64(vl.Value.At(0))
		}
	}
	r.tape.Reset()
	inv := 1 / float64(steps)
	u.entropy *= inv
	u.clipFrac *= inv
	u.approxKL *= inv
	u.vClipFrac *= inv
	u.policyLoss *= inv
	u.valueLoss *= inv
	return u, nil
}

// maskedEntropy is the mean entropy of softmax over the rows of logits (N,
// V) whose mask is set: the entropy figure when no bonus is trained.
func maskedEntropy(logits []float32, V int, mask []bool) float64 {
	var sum float64
	cnt := 0
	h := make([]float32, 1)
	for i, m := range mask {
		if !m {
			continue
		}
		Entropy(h, logits[i*V:(i+1)*V], V)
		sum += float64(h[0])
		cnt++
	}
	if cnt == 0 {
		return 0
	}
	return sum / float64(cnt)
}
