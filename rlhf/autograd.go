package rlhf

import (
	"fmt"

	"llmlab/core/autograd"
	"llmlab/core/tensor"
)

// This file puts the pure losses on the tape. Each op computes its loss and
// input gradients in the forward pass (they cost one pass over B numbers)
// and its backward adds upstream·gradient into the inputs: one Custom node
// per loss.

// SequenceLogProbs returns (B) the summed log-probability of each row's
// labels under logits (B*T, V): Σ_t log p(labels[b,t]) over the positions
// whose label is not negative (data.IgnoreIndex). labels must stay
// unchanged until Backward.
func SequenceLogProbs(t *autograd.Tape, logits *autograd.Var, labels []int32, B, T int) *autograd.Var {
	return seqLogProbs(t, logits, labels, B, T, false)
}

// SequenceMeanLogProbs is SequenceLogProbs divided by each row's number of
// labelled positions (0 for a row without any): the length-normalised
// log-probability SimPO, ORPO and TRL's IPO use.
func SequenceMeanLogProbs(t *autograd.Tape, logits *autograd.Var, labels []int32, B, T int) *autograd.Var {
	return seqLogProbs(t, logits, labels, B, T, true)
}

// SequenceLogProbsNLL is SequenceLogProbs from the per-token losses nll
// (B*T, −log p, 0 where ignored) that model.Transformer.TokenNLL computes
// without holding the whole (B*T, V) logits.
func SequenceLogProbsNLL(t *autograd.Tape, nll *autograd.Var, labels []int32, B, T int) *autograd.Var {
	return seqFromNLL(t, nll, labels, B, T, false)
}

// SequenceMeanLogProbsNLL is SequenceMeanLogProbs from per-token losses.
func SequenceMeanLogProbsNLL(t *autograd.Tape, nll *autograd.Var, labels []int32, B, T int) *autograd.Var {
	return seqFromNLL(t, nll, labels, B, T, true)
}

func seqLogProbs(t *autograd.Tape, logits *autograd.Var, labels []int32, B, T int, mean bool) *autograd.Var {
	if len(labels) != B*T || logits.Value.Rows() != B*T {
		panic(fmt.Sprintf("rlhf.SequenceLogProbs: %d labels, logits %v for batch %dx%d", len(labels), logits.Value.Shape, B, T))
	}
	return seqFromNLL(t, t.CrossEntropy(logits, labels), labels, B, T, mean)
}

func seqFromNLL(t *autograd.Tape, ce *autograd.Var, labels []int32, B, T int, mean bool) *autograd.Var {
	if len(labels) != B*T || ce.Value.Numel() != B*T {
		panic(fmt.Sprintf("rlhf.SequenceLogProbs: %d labels, %d token losses for batch %dx%d", len(labels), ce.Value.Numel(), B, T))
	}
	scale := t.Alloc(B) // (B) −1 or −1/count per row
	for b := range B {
		n := 0
		for _, l := range labels[b*T : (b+1)*T] {
			if l >= 0 {
				n++
			}
		}
		scale.F32[b] = -1
		if mean {
			scale.F32[b] = 0
			if n > 0 {
				scale.F32[b] = -1 / float32(n)
			}
		}
	}
	out := t.Alloc(B)
	for b := range B {
		var s float64
		for i := b * T; i < (b+1)*T; i++ {
			if labels[i] >= 0 {
				s += float64(ce.Value.F32[i])
			}
		}
		out.F32[b] = float32(s) * scale.F32[b]
	}
	var o *autograd.Var
	o = t.Custom(out, func() {
		dce := t.GradOf(ce).F32
		for b := range B {
			g := o.Grad.F32[b] * scale.F32[b]
			for i := b * T; i < (b+1)*T; i++ {
				if labels[i] >= 0 {
					dce[i] += g
				}
			}
		}
	}, ce)
	return o
}

// TokenLogProbs returns (B*T) log p(labels[i]) under logits (B*T, V), 0
// where the label is negative: the per-token log-probabilities PPO and GRPO
// need.
func TokenLogProbs(t *autograd.Tape, logits *autograd.Var, labels []int32) *autograd.Var {
	return t.Scale(t.CrossEntropy(logits, labels), -1)
}

// TokenCounts returns (B) the number of labelled positions of each row.
func TokenCounts(labels []int32, B, T int) []float32 {
	out := make([]float32, B)
	for i, l := range labels[:B*T] {
		if l >= 0 {
			out[i/T]++
		}
	}
	return out
}

// scalarOp records a scalar loss whose gradient with respect to each input
// (grads[k], same length as ins[k]) was computed in the forward pass.
func scalarOp(t *autograd.Tape, loss float32, ins []*autograd.Var, grads [][]float32) *autograd.Var {
	out := t.Alloc(1)
	out.F32[0] = loss
	var o *autograd.Var
	o = t.Custom(out, func() {
		g := o.Grad.F32[0]
		for k, v := range ins {
			if !v.NeedsGrad() {
				continue
			}
			dst := t.GradOf(v).F32
			for i, d := range grads[k] {
				dst[i] += g * d
			}
		}
	}, ins...)
	return o
}

func vec(v *autograd.Var) []float32 { return v.Value.F32 }

// DPOVar is DPO on the tape: polC, polR are (B) policy log-probabilities
// (from SequenceLogProbs), refC, refR plain reference values (nil for
// reference-free). It returns the scalar loss.
func DPOVar(t *autograd.Tape, c DPOConfig, polC, polR *autograd.Var, refC, refR []float32) (*autograd.Var, Metrics) {
	B := polC.Value.Numel()
	dC, dR := t.Alloc(B).F32, t.Alloc(B).F32
	loss, m := DPO(dC, dR, c, vec(polC), vec(polR), refC, refR)
	return scalarOp(t, loss, []*autograd.Var{polC, polR}, [][]float32{dC, dR}), m
}

// SimPOVar is SimPO on the tape over (B) mean per-token log-probabilities
// (from SequenceMeanLogProbs).
func SimPOVar(t *autograd.Tape, c SimPOConfig, avgC, avgR *autograd.Var) (*autograd.Var, Metrics) {
	B := avgC.Value.Numel()
	dC, dR := t.Alloc(B).F32, t.Alloc(B).F32
	loss, m := SimPO(dC, dR, c, vec(avgC), vec(avgR))
	return scalarOp(t, loss, []*autograd.Var{avgC, avgR}, [][]float32{dC, dR}), m
}

// ORPOVar is ORPO on the tape over (B) mean per-token log-probabilities;
// lenC (from TokenCounts) weighs the NLL term per token as TRL does.
func ORPOVar(t *autograd.Tape, lambda float32, avgC, avgR *autograd.Var, lenC []float32) (*autograd.Var, ORPOMetrics) {
	B := avgC.Value.Numel()
	dC, dR := t.Alloc(B).F32, t.Alloc(B).F32
	loss, m := ORPO(dC, dR, lambda, vec(avgC), vec(avgR), lenC)
	return scalarOp(t, loss, []*autograd.Var{avgC, avgR}, [][]float32{dC, dR}), m
}

// KTOVar is KTO on the tape: pol (B) policy log-probabilities, ref the
// reference's, desirable the labels, z the reference point (see
// KTOReferencePoint).
func KTOVar(t *autograd.Tape, c KTOConfig, pol *autograd.Var, ref []float32, desirable []bool, z float32) (*autograd.Var, KTOMetrics) {
	d := t.Alloc(pol.Value.Numel()).F32
	loss, m := KTO(d, c, vec(pol), ref, desirable, z)
	return scalarOp(t, loss, []*autograd.Var{pol}, [][]float32{d}), m
}

// BradleyTerryVar is the reward model's loss on the tape over (B) scores of
// the chosen and rejected completions; margin may be nil.
func BradleyTerryVar(t *autograd.Tape, rc, rr *autograd.Var, margin []float32) (*autograd.Var, Metrics) {
	B := rc.Value.Numel()
	dC, dR := t.Alloc(B).F32, t.Alloc(B).F32
	loss, m := BradleyTerry(dC, dR, vec(rc), vec(rr), margin)
	return scalarOp(t, loss, []*autograd.Var{rc, rr}, [][]float32{dC, dR}), m
}

// PolicyLossVar is PPO's clipped surrogate on the tape over (B*T) token
// log-probabilities (from TokenLogProbs).
func PolicyLossVar(t *autograd.Tape, logp *autograd.Var, oldLogp, adv []float32, mask []bool, clip float32) (*autograd.Var, PolicyMetrics) {
	d := t.Alloc(logp.Value.Numel()).F32
	loss, m := PolicyLoss(d, vec(logp), oldLogp, adv, mask, clip)
	return scalarOp(t, loss, []*autograd.Var{logp}, [][]float32{d}), m
}

// ValueLossVar is PPO's clipped value loss on the tape over (B*T) values
// from the value head.
func ValueLossVar(t *autograd.Tape, v *autograd.Var, vOld, returns []float32, mask []bool, clip float32) (*autograd.Var, float64) {
	d := t.Alloc(v.Value.Numel()).F32
	loss, cf := ValueLoss(d, vec(v), vOld, returns, mask, clip)
	return scalarOp(t, loss, []*autograd.Var{v}, [][]float32{d}), cf
}

// GRPOLossVar is the GRPO loss on the tape over (B*T) token
// log-probabilities.
func GRPOLossVar(t *autograd.Tape, c GRPOConfig, logp *autograd.Var, oldLogp, refLogp, adv []float32, mask []bool, T int) (*autograd.Var, GRPOMetrics) {
	d := t.Alloc(logp.Value.Numel()).F32
	loss, m := GRPOLoss(d, c, vec(logp), oldLogp, refLogp, adv, mask, T)
	return scalarOp(t, loss, []*autograd.Var{logp}, [][]float32{d}), m
}

// EntropyVar returns (N) the entropy of softmax over each row of logits
// (N, V), for PPO's entropy bonus (subtract coef·MaskedMean of it).
func EntropyVar(t *autograd.Tape, logits *autograd.Var) *autograd.Var {
	N, V := logits.Value.Rows(), logits.Value.Cols()
	out := t.Alloc(N)
	Entropy(out.F32, logits.Value.F32, V)
	var o *autograd.Var
	o = t.Custom(out, func() {
		EntropyBackward(t.GradOf(logits).F32, o.Grad.F32, logits.Value.F32, V)
	}, logits)
	return o
}

// MaskedMean returns the scalar mean of x over the positions where mask is
// true (0 when none is).
func MaskedMean(t *autograd.Tape, x *autograd.Var, mask []bool) *autograd.Var {
	n := x.Value.Numel()
	if len(mask) != n {
		panic(fmt.Sprintf("rlhf.MaskedMean: mask has %d values for %v", len(mask), x.Value.Shape))
	}
	cnt := 0
	var s float64
	for i, m := range mask {
		if m {
			cnt++
			s += float64(x.Value.F32[i])
		}
	}
	inv := float32(0)
	if cnt > 0 {
		inv = 1 / float32(cnt)
	}
	out := t.Alloc(1)
	out.F32[0] = float32(s) * inv
	var o *autograd.Var
	o = t.Custom(out, func() {
		g := o.Grad.F32[0] * inv
		dx := t.GradOf(x).F32
		for i, m := range mask {
			if m {
				dx[i] += g
			}
		}
	}, x)
	return o
}

// Parameter name prefixes of the scalar heads, as the Hugging Face
// ecosystem writes them: TRL's value head and transformers' sequence
// classification (reward model) head.
const (
	ValueHeadName  = "v_head.summary"
	RewardHeadName = "score"
)

// ScalarHead maps each hidden state (N, C) to one number (N): the value
// head of PPO and the reward head of a reward model. It is a small module
// over the transformer's last hidden state, not a second model.
type ScalarHead struct {
	W *autograd.Param // (1, C)
	B *autograd.Param // (1), nil without bias
}

// NewScalarHead returns a zero-initialised head named prefix.weight (and
// prefix.bias): it starts by predicting 0 for every state, which neither
// biases early PPO advantages nor the reward model's first comparisons,
// and its gradient is not zero because it depends on the hidden state.
func NewScalarHead(prefix string, C int, bias bool) *ScalarHead {
	h := &ScalarHead{W: &autograd.Param{Name: prefix + ".weight", Value: tensor.New(1, C)}}
	if bias {
		h.B = &autograd.Param{Name: prefix + ".bias", Value: tensor.New(1)}
	}
	return h
}

// Params lists the head's parameters.
func (h *ScalarHead) Params() []*autograd.Param {
	if h.B == nil {
		return []*autograd.Param{h.W}
	}
	return []*autograd.Param{h.W, h.B}
}

// Forward returns (N) w·h + b for each row of hidden (N, C).
func (h *ScalarHead) Forward(t *autograd.Tape, hidden *autograd.Var) *autograd.Var {
	var b *autograd.Var
	if h.B != nil {
		b = t.Param(h.B)
	}
	y := t.Linear(hidden, t.Param(h.W), b) // (N, 1)
	return t.View(y, hidden.Value.Rows())
}

// LastTokenRows returns, for each row of labels (B, T), the flat index of
// its last labelled position (-1 for none): where a reward model reads its
// score of a completion.
func LastTokenRows(labels []int32, B, T int) []int {
	out := make([]int, B)
	for b := range B {
		out[b] = -1
		for i := (b+1)*T - 1; i >= b*T; i-- {
			if labels[i] >= 0 {
				out[b] = i
				break
			}
		}
	}
	return out
}

// Gather returns (len(idx)) x[idx[k]] of a vector x; an index of -1 gives
// 0 and no gradient.
func Gather(t *autograd.Tape, x *autograd.Var, idx []int) *autograd.Var {
	out := t.Alloc(len(idx))
	for k, i := range idx {
		out.F32[k] = 0
		if i >= 0 {
			out.F32[k] = x.Value.F32[i]
		}
	}
	var o *autograd.Var
	o = t.Custom(out, func() {
		dx := t.GradOf(x).F32
		for k, i := range idx {
			if i >= 0 {
				dx[i] += o.Grad.F32[k]
			}
		}
	}, x)
	return o
}
