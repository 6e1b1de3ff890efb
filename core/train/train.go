// Package train is llmlab's one training loop. Every stage (pretraining,
// SFT, PEFT, reward models, DPO) supplies an Objective (a loss over a
// batch), a BatchSource (deterministic, with a cursor that checkpoints
// save) and the parameters to train; the loop does gradient accumulation,
// the learning-rate schedule, clipping, periodic evaluation, events,
// cancellation and atomic checkpoints that resume bit for bit.
package train

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
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

// Metrics are named figures an objective reports for a batch.
type Metrics map[string]float64

// BatchSource yields training batches deterministically; State and
// Restore save and restore its cursor.
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

type state struct {
	Step   int             `json:"step"`
	Tokens int64           `json:"tokens"`
	Source json.RawMessage `json:"source"`
	Hash   string          `json:"hash"`
	Time   string          `json:"time"`
}

// Run trains ps with o on batches from src until c.Steps, ctx is
// cancelled (a checkpoint is written, then Run returns ctx.Err()), or an
// error. ev may be nil (no evaluation); w may be nil when c.Out is "".
func Run(ctx context.Context, c Config, b tensor.Backend, o Objective, src BatchSource, ev EvalSource, ps []*autograd.Param, w Weights, on func(Event)) error {
	if on == nil {
		on = func(Event) {}
	}
	if c.Steps <= 0 {
		return fmt.Errorf("train: steps must be positive, got %d", c.Steps)
	}
	if c.Accum <= 0 {
		c.Accum = 1
	}
	if c.KeepLast <= 0 {
		c.KeepLast = 2
	}
	opt := optim.NewAdamW(c.Optim, ps)
	if len(opt.Params) == 0 {
		return errors.New("train: no trainable parameters")
	}
	step, tokens := 0, int64(0)
	if c.Resume && c.Out != "" {
		st, dir, warns, err := latest(c.Out, c.Hash)
		for _, wmsg := range warns {
			on(Event{Kind: "warning", Message: wmsg})
		}
		if err != nil {
			return err
		}
		if dir != "" {
			if err := w.LoadWeights(filepath.Join(dir, "weights")); err != nil {
				return fmt.Errorf("train: resume from %s: %w", dir, err)
			}
			if err := opt.Load(dir); err != nil {
				return fmt.Errorf("train: resume from %s: %w", dir, err)
			}
			if err := src.Restore(st.Source); err != nil {
				return fmt.Errorf("train: resume from %s: %w", dir, err)
			}
			step, tokens = st.Step, st.Tokens
			on(Event{Kind: "warning", Step: step, Steps: c.Steps, Message: "resumed from " + dir})
		}
	}
	tape := autograd.NewTape(b)
	start := time.Now()
	startStep, startTokens := step, tokens
	on(Event{Kind: "start", Step: step, Steps: c.Steps})
	save := func() error {
		if c.Out == "" {
			return nil
		}
		dir, err := saveCheckpoint(c, step, tokens, src, opt, w)
		if err != nil {
			return err
		}
		on(Event{Kind: "checkpoint", Step: step, Steps: c.Steps, Path: dir, Elapsed: time.Since(start).Seconds()})
		return nil
	}
	evaluate := func() (float64, error) {
		if ev == nil {
			return 0, nil
		}
		var sum float64
		var n int
		tape.NoGrad = true
		defer func() { tape.NoGrad = false }()
		for batch := range ev() {
			tape.Reset()
			loss, _, err := o.Loss(tape, batch)
			if err != nil {
				return 0, err
			}
			k := batch.Tokens()
			sum += float64(loss.Value.F32[0]) * float64(k)
			n += k
		}
		if n == 0 {
			return 0, nil
		}
		return sum / float64(n), nil
	}
	lastSaved := step
	for step < c.Steps {
		if err := ctx.Err(); err != nil {
			if step > lastSaved {
				if serr := save(); serr != nil {
					return serr
				}
			}
			on(Event{Kind: "stopped", Step: step, Steps: c.Steps, Elapsed: time.Since(start).Seconds(), Message: "cancelled; checkpoint written"})
			return err
		}
		var lossSum float64
		metrics := Metrics{}
		for range c.Accum {
			batch, err := src.Next()
			if err != nil {
				return err
			}
			tape.Reset()
			loss, m, err := o.Loss(tape, batch)
			if err != nil {
				return fmt.Errorf("train: step %d: %w", step+1, err)
			}
			lv := float64(loss.Value.F32[0])
			if math.IsNaN(lv) || math.IsInf(lv, 0) {
				return &NonFiniteError{Step: step + 1, What: "the loss", Value: lv}
			}
			if c.Accum > 1 {
				loss = tape.Scale(loss, 1/float32(c.Accum))
			}
			if err := tape.Backward(loss); err != nil {
				return err
			}
			lossSum += lv
			tokens += int64(batch.Tokens())
			for k, v := range m {
				metrics[k] += v / float64(c.Accum)
			}
		}
		step++
		norm := optim.ClipGradNorm(b, opt.Params, c.Clip)
		if math.IsNaN(norm) || math.IsInf(norm, 0) {
			return &NonFiniteError{Step: step, What: "the gradient norm", Value: norm}
		}
		lr := c.Schedule.LR(c.LR, step)
		opt.Update(b, float32(lr))
		opt.ZeroGrad()
		el := time.Since(start)
		tps := float64(tokens-startTokens) / el.Seconds()
		eta := el.Seconds() / float64(step-startStep) * float64(c.Steps-step)
		e := Event{Kind: "step", Step: step, Steps: c.Steps, Loss: lossSum / float64(c.Accum), LR: lr, GradNorm: norm,
			Tokens: tokens, TokensPerSec: tps, Elapsed: el.Seconds(), ETA: eta}
		if len(metrics) > 0 {
			e.Metrics = metrics
		}
		on(e)
		if (c.EvalEvery > 0 && step%c.EvalEvery == 0) || step == c.Steps {
			el, err := evaluate()
			if err != nil {
				return err
			}
			if ev != nil {
				on(Event{Kind: "eval", Step: step, Steps: c.Steps, EvalLoss: el, Elapsed: time.Since(start).Seconds()})
			}
		}
		if (c.SaveEvery > 0 && step%c.SaveEvery == 0) || step == c.Steps {
			if err := save(); err != nil {
				return err
			}
			lastSaved = step
		}
	}
	on(Event{Kind: "done", Step: step, Steps: c.Steps, Tokens: tokens, Elapsed: time.Since(start).Seconds()})
	return nil
}

func saveCheckpoint(c Config, step int, tokens int64, src BatchSource, opt *optim.AdamW, w Weights) (string, error) {
	root := filepath.Join(c.Out, "checkpoints")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	final := filepath.Join(root, fmt.Sprintf("step-%d", step))
	tmp := final + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", err
	}
	fail := func(err error) (string, error) {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("train: checkpoint at step %d: %w", step, err)
	}
	if err := w.SaveWeights(filepath.Join(tmp, "weights")); err != nil {
		return fail(err)
	}
	if err := opt.Save(tmp); err != nil {
		return fail(err)
	}
	srcState, err := src.State()
	if err != nil {
		return fail(err)
	}
	st, _ := json.MarshalIndent(state{Step: step, Tokens: tokens, Source: srcState, Hash: c.Hash, Time: time.Now().UTC().Format(time.RFC3339)}, "", "  ")
	// state.json is written last: its presence marks a complete checkpoint.
	if err := checkpoint.WriteFileAtomic(filepath.Join(tmp, "state.json"), st, 0o644); err != nil {
		return fail(err)
	}
	os.RemoveAll(final)
	if err := os.Rename(tmp, final); err != nil {
		return fail(err)
	}
	prune(root, c.KeepLast)
	return final, nil
}

// checkpoints lists step-N folders, newest first.
func checkpoints(root string) []int {
	ents, _ := os.ReadDir(root)
	var steps []int
	for _, e := range ents {
		if n, ok := strings.CutPrefix(e.Name(), "step-"); ok && e.IsDir() {
			if s, err := strconv.Atoi(n); err == nil {
				steps = append(steps, s)
			}
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(steps)))
	return steps
}

func prune(root string, keep int) {
	for i, s := range checkpoints(root) {
		if i >= keep {
			os.RemoveAll(filepath.Join(root, fmt.Sprintf("step-%d", s)))
		}
	}
}

// latest finds the newest complete checkpoint; broken ones are skipped
// with a warning. A checkpoint from a different configuration is an error.
func latest(out, hash string) (state, string, []string, error) {
	root := filepath.Join(out, "checkpoints")
	var warns []string
	for _, s := range checkpoints(root) {
		dir := filepath.Join(root, fmt.Sprintf("step-%d", s))
		b, err := os.ReadFile(filepath.Join(dir, "state.json"))
		var st state
		if err == nil {
			err = json.Unmarshal(b, &st)
		}
		if err == nil {
			_, err = os.Stat(filepath.Join(dir, "optimizer.safetensors"))
		}
		if err == nil {
			var f *checkpoint.File
			if f, err = checkpoint.Open(filepath.Join(dir, "optimizer.safetensors")); err == nil {
				f.Close()
			}
		}
		if err != nil {
			warns = append(warns, fmt.Sprintf("skipping checkpoint %s: %v", dir, err))
			continue
		}
		if hash != "" && st.Hash != "" && st.Hash != hash {
			return st, "", warns, fmt.Errorf("%s was written by a run with a different configuration; start a new run folder or use the same flags", dir)
		}
		return st, dir, warns, nil
	}
	return state{}, "", warns, nil
}

// Hash returns a short stable hash of v's JSON, for Config.Hash.
func Hash(v any) string {
	b, _ := json.Marshal(v)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}
