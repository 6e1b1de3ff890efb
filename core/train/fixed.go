package train

import (
	"fmt"
	"math"

	"llmlab/core/autograd"
	"llmlab/core/model"
	"llmlab/core/optim"
	"llmlab/core/tensor"
)

// FixedBatch returns n token ids and next-token targets below vocab,
// deterministic and spread over the vocabulary: the inputs of speed
// measurements, which need every embedding row busy but no real data.
func FixedBatch(vocab, n int) (ids, targets []int32) {
	ids, targets = make([]int32, n), make([]int32, n)
	for i := range ids {
		ids[i] = int32((i*7919 + 13) % vocab)
		targets[i] = int32((i*104729 + 7) % vocab)
	}
	return ids, targets
}

// FixedStep returns one training step of m on a FixedBatch of B rows of
// T tokens: a tape reset, the loss, backward, hook (nil: none; speed
// measurements read memory there), an update of opt at lr, and zeroed
// gradients, then a read of the loss (an error when it is not finite). The
// tape and batch are made once and reused by every call.
func FixedStep(m *model.Transformer, b tensor.Backend, opt *optim.AdamW, B, T int, lr float32, hook func()) func() error {
	return NewFixed(m, b, opt, B, T, lr, hook).Step
}

// Fixed is FixedStep's step with its tape, for a caller that measures
// several steps on one backend and gives the tape's memory back between
// them (Release).
type Fixed struct {
	tp   *autograd.Tape
	Step func() error
}

// NewFixed returns the step FixedStep returns, with its tape.
func NewFixed(m *model.Transformer, b tensor.Backend, opt *optim.AdamW, B, T int, lr float32, hook func()) *Fixed {
	ids, targets := FixedBatch(m.Cfg.VocabSize, B*T)
	tp := autograd.NewTape(b)
	return &Fixed{tp: tp, Step: func() error {
		tp.Reset()
		loss, _, err := m.Loss(tp, model.Inputs{B: B, T: T, IDs: ids}, targets)
		if err != nil {
			return err
		}
		if err := tp.Backward(loss); err != nil {
			return err
		}
		if hook != nil {
			hook()
		}
		opt.Update(b, lr)
		opt.ZeroGrad()
		// Read the loss, as a training loop does: on a device backend
		// this waits for the step's queued work, so a timed step is the
		// whole step.
		if lv := loss.Value.At(0); math.IsNaN(float64(lv)) || math.IsInf(float64(lv), 0) {
			return fmt.Errorf("train: the loss of a fixed step is %v", lv)
		}
		return nil
	}}
}

// Release gives the tape's activation memory back to the backend (device
// memory on a device backend); Step must not be called afterwards.
func (f *Fixed) Release() { f.tp.Release() }
