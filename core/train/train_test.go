package train

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"llmlab/core/autograd"
	"llmlab/core/data"
	"llmlab/core/optim"
	"llmlab/core/tensor"
)

// quadratic is a toy objective: loss = mean((w - target)²), NaN from step nanAt.
type quadratic struct {
	w      *autograd.Param
	calls  int
	nanAt  int
	cancel func()
	stopAt int
}

func (q *quadratic) Loss(t *autograd.Tape, b data.Batch) (*autograd.Var, Metrics, error) {
	q.calls++
	if q.cancel != nil && q.calls == q.stopAt {
		q.cancel()
	}
	w := t.Param(q.w)
	d := t.Add(w, t.Const(tensor.FromF32([]float32{-1, -2, -3}, 1, 3)))
	loss := t.SumScaled(t.Mul(d, d), 1.0/3)
	if q.nanAt > 0 && q.calls >= q.nanAt {
		loss.Value.F32[0] = float32(math.NaN())
	}
	return loss, Metrics{"w0": float64(q.w.Value.F32[0])}, nil
}

type counter struct{ n int }

func (c *counter) Next() (data.Batch, error) { c.n++; return data.NewBatch(1, 1), nil }
func (c *counter) State() ([]byte, error)    { return []byte{byte(c.n)}, nil }
func (c *counter) Restore(b []byte) error    { c.n = int(b[0]); return nil }

type paramWeights struct{ p *autograd.Param }

func (w paramWeights) SaveWeights(dir string) error {
	os.MkdirAll(dir, 0o755)
	return os.WriteFile(filepath.Join(dir, "w"), w.p.Value.Bytes(), 0o644)
}
func (w paramWeights) LoadWeights(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "w"))
	copy(w.p.Value.Bytes(), b)
	return err
}

func cfg(out string, steps int) Config {
	return Config{Steps: steps, LR: 0.1, Optim: optim.AdamWConfig{LR: 0.1, Beta1: 0.9, Beta2: 0.99, Eps: 1e-8}, Out: out}
}

func TestConvergesAndStopsOnNaN(t *testing.T) {
	p := &autograd.Param{Name: "w", Value: tensor.New(1, 3)}
	q := &quadratic{w: p}
	var last Event
	if err := Run(context.Background(), cfg("", 200), tensor.NewCPU(1), q, &counter{}, nil, []*autograd.Param{p}, nil, func(e Event) {
		if e.Kind == "step" {
			last = e
		}
	}); err != nil {
		t.Fatal(err)
	}
	if last.Loss > 1e-2 || math.Abs(last.Metrics["w0"]-1) > 0.05 {
		t.Fatalf("did not converge: %+v", last)
	}

	out := t.TempDir()
	p2 := &autograd.Param{Name: "w", Value: tensor.New(1, 3)}
	c := cfg(out, 20)
	c.SaveEvery = 2
	err := Run(context.Background(), c, tensor.NewCPU(1), &quadratic{w: p2, nanAt: 5}, &counter{}, nil, []*autograd.Param{p2}, paramWeights{p2}, nil)
	var nf *NonFiniteError
	if !errors.As(err, &nf) || nf.Step != 5 || !strings.Contains(err.Error(), "step 5: the loss is NaN") {
		t.Fatalf("want a NaN stop at step 5, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "checkpoints", "step-4", "state.json")); err != nil {
		t.Fatalf("the last good checkpoint is gone: %v", err)
	}
	// The good checkpoint resumes (its cursor is not JSON: stored as bytes).
	c.Resume = true
	p3 := &autograd.Param{Name: "w", Value: tensor.New(1, 3)}
	src := &counter{}
	if err := Run(context.Background(), c, tensor.NewCPU(1), &quadratic{w: p3}, src, nil, []*autograd.Param{p3}, paramWeights{p3}, nil); err != nil {
		t.Fatal(err)
	}
	if src.n != 20 {
		t.Errorf("resumed source drew up to batch %d, want 20", src.n)
	}
}

func TestCancelWritesCheckpoint(t *testing.T) {
	out := t.TempDir()
	p := &autograd.Param{Name: "w", Value: tensor.New(1, 3)}
	ctx, cancel := context.WithCancel(context.Background())
	q := &quadratic{w: p, cancel: cancel, stopAt: 7}
	err := Run(ctx, cfg(out, 100), tensor.NewCPU(1), q, &counter{}, nil, []*autograd.Param{p}, paramWeights{p}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "checkpoints", "step-7", "state.json")); err != nil {
		t.Fatalf("no checkpoint after cancel: %v", err)
	}
}
