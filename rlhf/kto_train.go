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

// KTOSource serves unpaired examples for KTO as batches of 2·Rows rows:
// the examples, then the same prompts with the next example's completion
// (the mismatched pairs from which KTO estimates its reference point z, as
// TRL does). Desirable holds the labels of the last batch's examples.
type KTOSource struct {
	Examples  []data.KTOExample
	Rows      int
	Seed      uint64
	Pad       int32
	Desirable []bool

	epoch, index int
	perm         []int
}

// split cuts an example at its first trained position.
func split(e data.Example) (prompt, completion []int32) {
	for i, l := range e.Labels {
		if l >= 0 {
			return e.IDs[:i], e.IDs[i:]
		}
	}
	return e.IDs, nil
}

// Next implements train.BatchSource.
func (s *KTOSource) Next() (data.Batch, error) {
	if len(s.Examples) < 2 {
		return data.Batch{}, fmt.Errorf("rlhf: KTO needs at least 2 examples")
	}
	var picked []data.KTOExample
	for len(picked) < s.Rows {
		if s.perm == nil {
			s.perm = rand.New(rand.NewPCG(s.Seed, uint64(s.epoch))).Perm(len(s.Examples))
		}
		if s.index >= len(s.perm) {
			s.epoch, s.index, s.perm = s.epoch+1, 0, nil
			continue
		}
		picked = append(picked, s.Examples[s.perm[s.index]])
		s.index++
	}
	exs := make([]data.Example, 0, 2*len(picked))
	s.Desirable = s.Desirable[:0]
	for _, e := range picked {
		exs = append(exs, e.Example)
		s.Desirable = append(s.Desirable, e.Desirable)
	}
	for i, e := range picked {
		prompt, _ := split(e.Example)
		_, comp := split(picked[(i+1)%len(picked)].Example)
		ids := append(append([]int32(nil), prompt...), comp...)
		labels := make([]int32, len(ids))
		for k := range labels {
			labels[k] = data.IgnoreIndex
		}
		copy(labels[len(prompt):], comp)
		exs = append(exs, data.Example{IDs: ids, Labels: labels})
	}
	longest := 0
	for _, e := range exs {
		longest = max(longest, len(e.IDs))
	}
	return data.Collate(exs, longest, s.Pad)
}

// State implements train.BatchSource.
func (s *KTOSource) State() ([]byte, error) { return json.Marshal(cursor{s.epoch, s.index}) }

// Restore implements train.BatchSource.
func (s *KTOSource) Restore(b []byte) error {
	var c cursor
	if err := json.Unmarshal(b, &c); err != nil {
		return err
	}
	s.epoch, s.index, s.perm = c.Epoch, c.Index, nil
	return nil
}

// KTOObjective is KTO (Ethayarajh et al. 2024) on KTOSource batches.
type KTOObjective struct {
	M   *model.Transformer
	Cfg KTOConfig
	Ref Reference
	Src *KTOSource
	Ctx context.Context
}

// Loss implements train.Objective.
func (o *KTOObjective) Loss(t *autograd.Tape, b data.Batch) (*autograd.Var, train.Metrics, error) {
	half := b.B / 2
	ref := make([]float32, b.B)
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
	seq := SequenceLogProbsNLL(t, nll, b.Labels, b.B, b.T)
	parts := t.SplitCols(t.View(seq, 1, b.B), half, half)
	z := KTOReferencePoint(parts[1].Value.F32, ref[half:]) // no gradient, as in TRL
	desirable := o.Src.Desirable
	if len(desirable) != half {
		return nil, nil, fmt.Errorf("rlhf: KTO batch of %d rows has %d labels", half, len(desirable))
	}
	loss, m := KTOVar(t, o.Cfg, t.View(parts[0], half), ref[:half], desirable, z)
	return loss, train.Metrics{"kl": m.KL, "rewards_chosen": m.RewardChosen, "rewards_rejected": m.RewardRejected,
		"rewards_margin": m.Margin, "rewards_accuracy": m.Accuracy}, nil
}
