package rlhf

import (
	"fmt"
	"path/filepath"

	"llmlab/core/autograd"
	"llmlab/core/checkpoint"
	"llmlab/core/data"
	"llmlab/core/model"
	"llmlab/core/tensor"
	"llmlab/core/train"
)

// RewardModel is a transformer with a scalar head read at the last token
// of each sequence (HF's "score" head of *ForSequenceClassification).
type RewardModel struct {
	M    *model.Transformer
	Head *ScalarHead
}

// NewRewardModel puts a fresh, zero-initialised score head on m.
func NewRewardModel(m *model.Transformer) *RewardModel {
	return &RewardModel{M: m, Head: NewScalarHead("score", m.Cfg.Hidden, false)}
}

// Rewards returns (B) the reward of each row of b, read at the row's last
// real token (the one after its last labelled position).
func (r *RewardModel) Rewards(t *autograd.Tape, b data.Batch) (*autograd.Var, error) {
	h, err := r.M.Hidden(t, model.Inputs{B: b.B, T: b.T, IDs: b.IDs, Pos: b.Pos, Seg: b.Seg})
	if err != nil {
		return nil, err
	}
	all := r.Head.Forward(t, h) // (B*T)
	idx := LastTokenRows(b.Labels, b.B, b.T)
	for k, i := range idx {
		if i < 0 {
			return nil, fmt.Errorf("rlhf: row %d has no completion tokens to score", k)
		}
		if i+1 < (k+1)*b.T {
			idx[k] = i + 1
		}
	}
	return Gather(t, all, idx), nil
}

// SaveHead writes the head to dir/score.safetensors.
func (r *RewardModel) SaveHead(dir string) error {
	return checkpoint.Write(filepath.Join(dir, "score.safetensors"), []checkpoint.Named{{Name: r.Head.W.Name, T: r.Head.W.Value}}, map[string]string{"format": "pt"})
}

// LoadHead reads dir/score.safetensors.
func (r *RewardModel) LoadHead(dir string) error {
	path := filepath.Join(dir, "score.safetensors")
	f, err := checkpoint.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := f.Tensor("score.weight")
	if err != nil {
		return err
	}
	if !w.Shape.Equal(r.Head.W.Value.Shape) {
		return fmt.Errorf("%s: score.weight has shape %v, the model needs %v", path, w.Shape, r.Head.W.Value.Shape)
	}
	tensor.Copy(r.Head.W.Value, tensor.FromF32(w.Float32s(), r.Head.W.Value.Shape...))
	return nil
}

// RewardObjective trains a reward model on PairSource batches with the
// Bradley–Terry loss −log σ(r_chosen − r_rejected − margin).
type RewardObjective struct {
	RM     *RewardModel
	Margin float32
}

// Loss implements train.Objective.
func (o *RewardObjective) Loss(t *autograd.Tape, b data.Batch) (*autograd.Var, train.Metrics, error) {
	if b.B%2 != 0 {
		return nil, nil, fmt.Errorf("rlhf: a reward batch needs chosen and rejected rows, got %d rows", b.B)
	}
	half := b.B / 2
	r, err := o.RM.Rewards(t, b)
	if err != nil {
		return nil, nil, err
	}
	parts := t.SplitCols(t.View(r, 1, b.B), half, half)
	var margin []float32
	if o.Margin != 0 {
		margin = make([]float32, half)
		for i := range margin {
			margin[i] = o.Margin
		}
	}
	loss, m := BradleyTerryVar(t, t.View(parts[0], half), t.View(parts[1], half), margin)
	return loss, train.Metrics{"accuracy": m.Accuracy, "margin": m.Margin, "reward_chosen": m.RewardChosen, "reward_rejected": m.RewardRejected}, nil
}
