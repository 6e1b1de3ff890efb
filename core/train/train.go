// Package train is llmlab's one training loop. Every stage (pretraining,
// SFT, PEFT, reward models, DPO) supplies an Objective (a loss over a
// batch), a BatchSource (deterministic, with a cursor that checkpoints
// save) and the parameters to train; the loop does gradient accumulation,
// the learning-rate schedule, clipping, periodic evaluation, events,
// cancellation and atomic checkpoints that resume bit for bit.
//
// Determinism: the loop itself draws no random numbers except through one
// explicit generator (a PCG seeded from Config.Seed) that it hands to
// objectives implementing Randomized; its state is saved in every
// checkpoint with the data cursor, the optimizer moments and the weights,
// so a resumed run repeats exactly the updates an uninterrupted run makes.
// The CPU kernels split work independently of the thread count, so the
// thread count does not change a result either.
//
// Checkpoint layout, RUN/checkpoints/step-N/:
//
//	weights/                what Weights.SaveWeights writes (HF folder or adapter)
//	optimizer.safetensors   AdamW moments and step
//	state.json              step, tokens, data cursor, RNG state, config and
//	                        its hash, and the size and CRC-32C of every file above
//
// A checkpoint is written into step-N.tmp, every file fsynced, state.json
// last, then the folder is renamed into place. Resuming takes the newest
// checkpoint whose files all match state.json and skips the others with a
// warning, so a folder cut short by a crash or a full disk costs only the
// steps since the one before.
package train

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"time"

	"llmlab/core/autograd"
	"llmlab/core/checkpoint"
	"llmlab/core/data"
	"llmlab/core/optim"
	"llmlab/core/tensor"
)

// Objective computes the loss of a batch. Metrics are reported in events.
type Objective interface {
	Loss(t *autograd.Tape, b data.Batch) (*autograd.Var, Metrics, error)
}

// Randomized is implemented by objectives that draw random numbers
// (dropout, sampled masks). Run hands them its seeded generator before the
// first step; the generator's state travels in checkpoints, so draw from
// nothing else.
type Randomized interface {
	SetRand(r *rand.Rand)
}

// Metrics are named figures an objective reports for a batch.
type Metrics map[string]float64

// BatchSource yields training batches deterministically; State and
// Restore save and restore its cursor. State should be JSON (it is stored
// readably in state.json); other bytes are stored base64-encoded.
type BatchSource interface {
	Next() (data.Batch, error)
	State() ([]byte, error)
	Restore(state []byte) error
}

// EvalSource yields the held-out batches, the same ones every time.
type EvalSource func() func(yield func(data.Batch) bool)

// Weights is what a checkpoint stores besides the optimizer: the whole
// model, or only an adapter.
type Weights interface {
	SaveWeights(dir string) error
	LoadWeights(dir string) error
}

// Config is a run's training configuration; it is saved in run.json.
type Config struct {
	Steps     int               `json:"steps"`
	Accum     int               `json:"accum"` // micro-batches per step
	LR        float64           `json:"lr"`
	Schedule  optim.Schedule    `json:"schedule"`
	Clip      float64           `json:"clip"` // global grad-norm limit; 0: off
	Optim     optim.AdamWConfig `json:"optim"`
	Seed      uint64            `json:"seed"`
	EvalEvery int               `json:"eval_every"` // 0: only at the end
	SaveEvery int               `json:"save_every"` // 0: only at the end
	KeepLast  int               `json:"keep_last"`  // checkpoints kept; 0 means 2
	Out       string            `json:"-"`          // run folder; "" writes no checkpoints
	// Resume continues from the newest valid checkpoint in Out.
	Resume bool `json:"-"`
	// Hash identifies everything that must match for a resume (model,
	// data, method); the caller fills it from the resolved config.
	Hash string `json:"-"`
}

// Event is one thing that happened, for the CLI, the GUI and tests.
type Event struct {
	Kind         string             `json:"event"` // start, step, eval, checkpoint, warning, done, stopped
	Step         int                `json:"step"`
	Steps        int                `json:"steps"`
	Loss         float64            `json:"loss,omitempty"`
	EvalLoss     float64            `json:"eval_loss,omitempty"`
	LR           float64            `json:"lr,omitempty"`
	GradNorm     float64            `json:"grad_norm,omitempty"`
	Tokens       int64              `json:"tokens,omitempty"`
	TokensPerSec float64            `json:"tokens_per_s,omitempty"`
	Elapsed      float64            `json:"elapsed_s"`
	ETA          float64            `json:"eta_s,omitempty"`
	Metrics      map[string]float64 `json:"metrics,omitempty"`
	Path         string             `json:"path,omitempty"`
	Message      string             `json:"message,omitempty"`
}

// NonFiniteError stops a run whose loss or gradient is NaN or Inf.
type NonFiniteError struct {
	Step  int
	What  string
	Value float64
}

func (e *NonFiniteError) Error() string {
	return fmt.Sprintf("step %d: %s is %v; stopping (the last good checkpoint is kept)", e.Step, e.What, e.Value)
}

// ConfigMismatchError refuses to resume a checkpoint written by a run with
// another configuration. Diff lists the settings that differ.
type ConfigMismatchError struct {
	Dir  string
	Diff []string // "key: checkpoint value -> this run's value"
}

func (e *ConfigMismatchError) Error() string {
	msg := e.Dir + " was written by a run with a different configuration"
	if len(e.Diff) > 0 {
		msg += ":\n  " + strings.Join(e.Diff, "\n  ")
	} else {
		msg += " (the model, data or method differ)"
	}
	return msg + "\nstart a new run folder or use the same settings"
}

// state is a checkpoint's state.json.
type state struct {
	Step      int                           `json:"step"`
	Tokens    int64                         `json:"tokens"`
	Source    json.RawMessage               `json:"source,omitempty"`
	SourceBin []byte                        `json:"source_bin,omitempty"` // a cursor that is not JSON
	RNG       []byte                        `json:"rng"`                  // PCG state
	Hash      string                        `json:"hash"`
	Config    json.RawMessage               `json:"config,omitempty"`
	Files     map[string]checkpoint.FileSum `json:"files"`
	Time      string                        `json:"time"`
}

// rngStream separates the loop's generator from other users of the seed
// (model init and the data sampler use the seed with other streams).
const rngStream = 0x747261696e // "train"

// runner is one run's state between steps.
type runner struct {
	c    Config
	b    tensor.Backend
	o    Objective
	src  BatchSource
	ev   EvalSource
	w    Weights
	on   func(Event)
	opt  *optim.AdamW
	tape *autograd.Tape
	pcg  *rand.PCG

	step   int
	tokens int64

	start       time.Time
	startStep   int
	startTokens int64
}

// Run trains ps with o on batches from src until c.Steps, ctx is
// cancelled (a checkpoint is written, then Run returns ctx.Err()), or an
// error. ev may be nil (no evaluation); w may be nil when c.Out is "".
func Run(ctx context.Context, c Config, b tensor.Backend, o Objective, src BatchSource, ev EvalSource, ps []*autograd.Param, w Weights, on func(Event)) error {
	r, err := newRunner(c, b, o, src, ev, ps, w, on)
	if err != nil {
		return err
	}
	if r.c.Resume && r.c.Out != "" {
		if err := r.resume(); err != nil {
			return err
		}
	}
	r.start = time.Now()
	r.startStep, r.startTokens = r.step, r.tokens
	r.on(Event{Kind: "start", Step: r.step, Steps: r.c.Steps})
	lastSaved := r.step
	for r.step < r.c.Steps {
		if err := ctx.Err(); err != nil {
			if r.step > lastSaved {
				if serr := r.save(); serr != nil {
					return serr
				}
			}
			r.on(Event{Kind: "stopped", Step: r.step, Steps: r.c.Steps, Elapsed: r.elapsed(), Message: "cancelled; checkpoint written"})
			return err
		}
		e, err := r.trainStep()
		if err != nil {
			return err
		}
		r.on(e)
		if (r.c.EvalEvery > 0 && r.step%r.c.EvalEvery == 0) || r.step == r.c.Steps {
			if err := r.evaluate(); err != nil {
				return err
			}
		}
		if (r.c.SaveEvery > 0 && r.step%r.c.SaveEvery == 0) || r.step == r.c.Steps {
			if err := r.save(); err != nil {
				return err
			}
			lastSaved = r.step
		}
	}
	if r.step == r.startStep {
		// Resumed from the final checkpoint: still report the held-out loss.
		if err := r.evaluate(); err != nil {
			return err
		}
	}
	r.on(Event{Kind: "done", Step: r.step, Steps: r.c.Steps, Tokens: r.tokens, Elapsed: r.elapsed()})
	return nil
}

func newRunner(c Config, b tensor.Backend, o Objective, src BatchSource, ev EvalSource, ps []*autograd.Param, w Weights, on func(Event)) (*runner, error) {
	if on == nil {
		on = func(Event) {}
	}
	if c.Steps <= 0 {
		return nil, fmt.Errorf("train: steps must be positive, got %d", c.Steps)
	}
	if c.Accum <= 0 {
		c.Accum = 1
	}
	if c.KeepLast <= 0 {
		c.KeepLast = 2
	}
	if c.Out != "" && w == nil {
		return nil, errors.New("train: a run folder needs Weights to checkpoint")
	}
	r := &runner{c: c, b: b, o: o, src: src, ev: ev, w: w, on: on,
		opt: optim.NewAdamW(c.Optim, ps), tape: autograd.NewTape(b), pcg: rand.NewPCG(c.Seed, rngStream)}
	if len(r.opt.Params) == 0 {
		return nil, errors.New("train: no trainable parameters")
	}
	if ro, ok := o.(Randomized); ok {
		ro.SetRand(rand.New(r.pcg))
	}
	return r, nil
}

func (r *runner) elapsed() float64 { return time.Since(r.start).Seconds() }

// trainStep runs one optimizer step: Accum micro-batches forward and
// backward on the reused tape, then clipping and the AdamW update. It
// allocates nothing in steady state beyond what the objective does.
func (r *runner) trainStep() (Event, error) {
	c, t := &r.c, r.tape
	var lossSum float64
	var metrics Metrics
	for range c.Accum {
		batch, err := r.src.Next()
		if err != nil {
			return Event{}, err
		}
		t.Reset()
		loss, m, err := r.o.Loss(t, batch)
		if err != nil {
			return Event{}, fmt.Errorf("train: step %d: %w", r.step+1, err)
		}
		lv := float64(loss.Value.F32[0])
		if math.IsNaN(lv) || math.IsInf(lv, 0) {
			return Event{}, &NonFiniteError{Step: r.step + 1, What: "the loss", Value: lv}
		}
		if c.Accum > 1 {
			loss = t.Scale(loss, 1/float32(c.Accum))
		}
		if err := t.Backward(loss); err != nil {
			return Event{}, err
		}
		lossSum += lv
		r.tokens += int64(batch.Tokens())
		if len(m) > 0 && metrics == nil {
			metrics = Metrics{}
		}
		for k, v := range m {
			metrics[k] += v / float64(c.Accum)
		}
	}
	step := r.step + 1
	norm := optim.ClipGradNorm(r.b, r.opt.Params, c.Clip)
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return Event{}, &NonFiniteError{Step: step, What: "the gradient norm", Value: norm}
	}
	lr := c.Schedule.LR(c.LR, step)
	r.opt.Update(r.b, float32(lr))
	r.opt.ZeroGrad()
	r.step = step
	el := r.elapsed()
	var tps float64
	if el > 0 {
		tps = float64(r.tokens-r.startTokens) / el
	}
	eta := el / float64(step-r.startStep) * float64(c.Steps-step)
	return Event{Kind: "step", Step: step, Steps: c.Steps, Loss: lossSum / float64(c.Accum), LR: lr, GradNorm: norm,
		Tokens: r.tokens, TokensPerSec: tps, Elapsed: el, ETA: eta, Metrics: metrics}, nil
}

// evaluate reports the token-weighted mean loss over the eval batches.
func (r *runner) evaluate() error {
	if r.ev == nil {
		return nil
	}
	t := r.tape
	var sum float64
	var n int
	t.NoGrad = true
	defer func() { t.NoGrad = false }()
	for batch := range r.ev() {
		t.Reset()
		loss, _, err := r.o.Loss(t, batch)
		if err != nil {
			return fmt.Errorf("train: evaluation at step %d: %w", r.step, err)
		}
		k := batch.Tokens()
		sum += float64(loss.Value.F32[0]) * float64(k)
		n += k
	}
	if n == 0 {
		return nil
	}
	r.on(Event{Kind: "eval", Step: r.step, Steps: r.c.Steps, EvalLoss: sum / float64(n), Elapsed: r.elapsed()})
	return nil
}

// save writes a checkpoint of the current step (nothing without Out).
func (r *runner) save() error {
	if r.c.Out == "" {
		return nil
	}
	dir, err := r.writeCheckpoint()
	if err != nil {
		return fmt.Errorf("train: checkpoint at step %d: %w", r.step, err)
	}
	r.on(Event{Kind: "checkpoint", Step: r.step, Steps: r.c.Steps, Path: dir, Elapsed: r.elapsed()})
	return nil
}

func (r *runner) writeCheckpoint() (string, error) {
	st := state{Step: r.step, Tokens: r.tokens, Hash: r.c.Hash, Time: time.Now().UTC().Format(time.RFC3339)}
	fill := func(tmp string) error {
		if err := r.w.SaveWeights(filepath.Join(tmp, "weights")); err != nil {
			return err
		}
		if err := r.opt.Save(tmp); err != nil {
			return err
		}
		cur, err := r.src.State()
		if err != nil {
			return err
		}
		if json.Valid(cur) {
			st.Source = cur
		} else {
			st.SourceBin = cur
		}
		if st.RNG, err = r.pcg.MarshalBinary(); err != nil {
			return err
		}
		st.Config, err = json.Marshal(r.c)
		return err
	}
	return checkpoint.WriteStepState(filepath.Join(r.c.Out, "checkpoints"), r.step, r.c.KeepLast, fill,
		func(files map[string]checkpoint.FileSum) any { st.Files = files; return st })
}

// resume loads the newest valid checkpoint in Out, if any.
func (r *runner) resume() error {
	st, dir, warns, err := latest(r.c.Out, r.c.Hash, r.c)
	for _, msg := range warns {
		r.on(Event{Kind: "warning", Steps: r.c.Steps, Message: msg})
	}
	if err != nil || dir == "" {
		return err
	}
	fail := func(err error) error { return fmt.Errorf("train: resume from %s: %w", dir, err) }
	if err := r.w.LoadWeights(filepath.Join(dir, "weights")); err != nil {
		return fail(err)
	}
	if err := r.opt.Load(dir); err != nil {
		return fail(err)
	}
	cur := []byte(st.Source)
	if st.SourceBin != nil {
		cur = st.SourceBin
	}
	if err := r.src.Restore(cur); err != nil {
		return fail(err)
	}
	if len(st.RNG) > 0 {
		if err := r.pcg.UnmarshalBinary(st.RNG); err != nil {
			return fail(fmt.Errorf("rng state: %w", err))
		}
	}
	r.step, r.tokens = st.Step, st.Tokens
	r.on(Event{Kind: "warning", Step: r.step, Steps: r.c.Steps, Message: "resumed from " + dir})
	return nil
}

// latest finds the newest complete checkpoint; broken ones are skipped
// with a warning. A checkpoint from a different configuration is an error.
func latest(out, hash string, c Config) (state, string, []string, error) {
	var st state
	dir, warns, err := checkpoint.NewestStep(filepath.Join(out, "checkpoints"), func(dir string) error {
		st = state{}
		if err := readState(dir, &st); err != nil {
			return err
		}
		if err := verify(dir, st); err != nil {
			return err
		}
		if hash != "" && st.Hash != "" && st.Hash != hash {
			now, _ := json.Marshal(c)
			return checkpoint.Final(&ConfigMismatchError{Dir: dir, Diff: checkpoint.DiffJSON(st.Config, now)})
		}
		return nil
	})
	for i, w := range warns {
		warns[i] = "skipping checkpoint " + w
	}
	if dir == "" {
		st = state{}
	}
	return st, dir, warns, err
}

func readState(dir string, st *state) error {
	if err := checkpoint.ReadState(dir, st); err != nil {
		return err
	}
	if st.Step <= 0 {
		return fmt.Errorf("state.json: step %d", st.Step)
	}
	return nil
}

func verify(dir string, st state) error {
	if st.Files == nil {
		f, err := checkpoint.Open(filepath.Join(dir, "optimizer.safetensors"))
		if err != nil {
			return err
		}
		return f.Close()
	}
	if _, ok := st.Files["optimizer.safetensors"]; !ok {
		return errors.New("state.json lists no optimizer.safetensors")
	}
	return checkpoint.VerifySums(dir, st.Files)
}

// Hash returns a short stable hash of v's JSON, for Config.Hash.
func Hash(v any) string {
	b, _ := json.Marshal(v)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}
