package rlhf

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"

	"llmlab/core/autograd"
	"llmlab/core/data"
	"llmlab/core/model"
	"llmlab/core/train"
)

// PairSource serves preference pairs to the training loop as batches of
// 2·Rows rows: the chosen answers first, then the rejected ones in the
// same order, padded to one length. Each epoch visits the pairs in a
// seeded random order; the cursor is saved in checkpoints.
type PairSource struct {
	Pairs []data.Pair
	Rows  int
	Seed  uint64
	Pad   int32

	epoch, index int
	perm         []int
}

// Next implements train.BatchSource.
func (s *PairSource) Next() (data.Batch, error) {
	if len(s.Pairs) == 0 {
		return data.Batch{}, fmt.Errorf("rlhf: no preference pairs")
	}
	var ch, rj []data.Example
	longest := 0
	for len(ch) < s.Rows {
		if s.perm == nil {
			s.perm = rand.New(rand.NewPCG(s.Seed, uint64(s.epoch))).Perm(len(s.Pairs))
		}
		if s.index >= len(s.perm) {
			s.epoch, s.index, s.perm = s.epoch+1, 0, nil
			continue
		}
		p := s.Pairs[s.perm[s.index]]
		s.index++
		ch, rj = append(ch, p.Chosen), append(rj, p.Rejected)
		longest = max(longest, len(p.Chosen.IDs), len(p.Rejected.IDs))
	}
	return data.Collate(append(ch, rj...), longest, s.Pad)
}

type cursor struct{ Epoch, Index int }

// State implements train.BatchSource.
func (s *PairSource) State() ([]byte, error) { return json.Marshal(cursor{s.epoch, s.index}) }

// Restore implements train.BatchSource.
func (s *PairSource) Restore(b []byte) error {
	var c cursor
	if err := json.Unmarshal(b, &c); err != nil {
		return err
	}
	s.epoch, s.index, s.perm = c.Epoch, c.Index, nil
	return nil
}

// DPOObjective trains a policy on preference pairs with the DPO family of
// losses against a reference (a frozen copy of the model, or the same
// model with its adapter switched off), whose log-probabilities are
// computed once per pair and cached.
type DPOObjective struct {
	M   *model.Transformer
	Cfg DPOConfig
	Ref Reference // unused by the reference-free SimPO and ORPO
	Ctx context.Context
	// Kind picks the loss: "dpo" (Cfg.Loss's variant), "simpo" or "orpo".
	Kind       string
	SimPO      SimPOConfig
	ORPOLambda float32

	ref []float32
}

// Loss implements train.Objective on a PairSource batch.
func (o *DPOObjective) Loss(t *autograd.Tape, b data.Batch) (*autograd.Var, train.Metrics, error) {
	if b.B%2 != 0 {
		return nil, nil, fmt.Errorf("rlhf: a DPO batch needs chosen and rejected rows, got %d rows", b.B)
	}
	half := b.B / 2
	if cap(o.ref) < b.B {
		o.ref = make([]float32, b.B)
	}
	ref := o.ref[:b.B]
	if o.Kind == "simpo" || o.Kind == "orpo" {
		return o.referenceFree(t, b)
	}
	ctx := o.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	if err := o.Ref.LogProbs(ctx, b, ref); err != nil {
		return nil, nil, err
	}
	nll, err := o.M.TokenNLL(t, model.Inputs{B: b.B, T: b.T, IDs: b.IDs, Pos: b.Pos, Seg: b.Seg}, b.Labels)
	if err != nil {
		return nil, nil, err
	}
	seq := SequenceLogProbsNLL(t, nll, b.Labels, b.B, b.T) // (2·half)
	parts := t.SplitCols(t.View(seq, 1, b.B), half, half)
	polC, polR := t.View(parts[0], half), t.View(parts[1], half)
	loss, m := DPOVar(t, o.Cfg, polC, polR, ref[:half], ref[half:])
	return loss, train.Metrics{
		"rewards_chosen": m.RewardChosen, "rewards_rejected": m.RewardRejected,
		"rewards_margin": m.Margin, "rewards_accuracy": m.Accuracy,
	}, nil
}

// referenceFree computes SimPO or ORPO from length-normalised log-probs.
func (o *DPOObjective) referenceFree(t *autograd.Tape, b data.Batch) (*autograd.Var, train.Metrics, error) {
	half := b.B / 2
	nll, err := o.M.TokenNLL(t, model.Inputs{B: b.B, T: b.T, IDs: b.IDs, Pos: b.Pos, Seg: b.Seg}, b.Labels)
	if err != nil {
		return nil, nil, err
	}
	avg := SequenceMeanLogProbsNLL(t, nll, b.Labels, b.B, b.T)
	parts := t.SplitCols(t.View(avg, 1, b.B), half, half)
	avgC, avgR := t.View(parts[0], half), t.View(parts[1], half)
	if o.Kind == "simpo" {
		loss, m := SimPOVar(t, o.SimPO, avgC, avgR)
		return loss, train.Metrics{"rewards_chosen": m.RewardChosen, "rewards_rejected": m.RewardRejected,
			"rewards_margin": m.Margin, "rewards_accuracy": m.Accuracy}, nil
	}
	lenC := TokenCounts(b.Labels, b.B, b.T)[:half]
	loss, m := ORPOVar(t, o.ORPOLambda, avgC, avgR, lenC)
	return loss, train.Metrics{"rewards_chosen": m.RewardChosen, "rewards_rejected": m.RewardRejected,
		"rewards_margin": m.Margin, "rewards_accuracy": m.Accuracy, "nll_loss": m.NLL, "log_odds_ratio": m.LogOddsRatio}, nil
}
