package rlhf

import (
	"fmt"
	"math"
)

// GroupAdvantages writes GRPO's group-normalised advantages (Shao et al.
// 2024) into adv: rewards holds consecutive groups of G completions of the
// same prompt, and each gets (r − mean_group)/(std_group + 1e-4) with the
// unbiased (n−1) standard deviation, as TRL's GRPOTrainer (torch.std). A
// group of one has no spread: its advantage is 0.
func GroupAdvantages(adv, rewards []float32, G int) {
	n := len(rewards)
	checkLen("GroupAdvantages", n, adv)
	if G <= 0 || n%G != 0 {
		panic(fmt.Sprintf("rlhf.GroupAdvantages: %d rewards are not groups of %d", n, G))
	}
	for g := 0; g < n; g += G {
		grp := rewards[g : g+G]
		var sum float64
		for _, r := range grp {
			sum += float64(r)
		}
		mean := sum / float64(G)
		var ss float64
		for _, r := range grp {
			d := float64(r) - mean
			ss += d * d
		}
		std := 0.0
		if G > 1 {
			std = math.Sqrt(ss / float64(G-1))
		}
		for i, r := range grp {
			adv[g+i] = float32((float64(r) - mean) / (std + 1e-4))
		}
	}
}

// GRPOConfig configures the GRPO loss.
type GRPOConfig struct {
	Beta    float32 `json:"beta"`    // KL coefficient (TRL default 0.04; 0 skips the reference)
	Epsilon float32 `json:"epsilon"` // ratio clip ε (TRL default 0.2)
}

// GRPOMetrics describe one GRPO step, as token means over the batch.
type GRPOMetrics struct {
	KL       float64 `json:"kl"`       // mean per-token k3 to the reference
	ClipFrac float64 `json:"clipfrac"` // fraction of tokens where the clipped term won
}

// GRPOLoss is TRL's GRPOTrainer loss: per real token,
//
//	ℓ_t = −min(ρ_t·A, clip(ρ_t, 1−ε, 1+ε)·A) + β·k3_t
//
// with ρ_t = exp(logp − oldLogp), A the sequence's advantage and k3_t the
// k3 estimate of KL to the reference; ℓ is averaged over each sequence's
// real tokens, then over the B sequences (a row without real tokens
// contributes 0). logp, oldLogp, refLogp and mask are (B, T) token arrays,
// adv is (B). oldLogp nil means a single update per rollout (TRL's
// num_iterations = 1): ρ = 1 but its gradient is still A. refLogp may be
// nil when Beta is 0. The gradient w.r.t. logp goes to dLogp.
func GRPOLoss(dLogp []float32, c GRPOConfig, logp, oldLogp, refLogp, adv []float32, mask []bool, T int) (float32, GRPOMetrics) {
	n := len(logp)
	checkLen("GRPOLoss", n, dLogp, oldLogp, refLogp)
	B := rows("GRPOLoss", n, T, mask)
	checkLen("GRPOLoss", B, adv)
	if c.Beta != 0 && refLogp == nil {
		panic("rlhf.GRPOLoss: beta != 0 needs reference log-probabilities")
	}
	beta, eps := float64(c.Beta), float64(c.Epsilon)
	var loss float64
	var m GRPOMetrics
	tokens := 0
	for b := range B {
		cnt := 0
		for t := range T {
			if mask[b*T+t] {
				cnt++
			}
		}
		w := 0.0
		if cnt > 0 {
			w = 1 / (float64(cnt) * float64(B))
		}
		tokens += cnt
		a := float64(adv[b])
		for t := range T {
			i := b*T + t
			if !mask[i] {
				if dLogp != nil {
					dLogp[i] = 0
				}
				continue
			}
			lp := float64(logp[i])
			r := 1.0
			if oldLogp != nil {
				r = math.Exp(lp - float64(oldLogp[i]))
			}
			rc := math.Min(math.Max(r, 1-eps), 1+eps)
			l1, l2 := r*a, rc*a
			l, g := -l1, -a*r
			if l2 < l1 { // the clipped term wins; clip is flat out there
				l, g = -l2, 0
				m.ClipFrac++
			}
			if beta != 0 {
				k, dk := K3.kl(lp, float64(refLogp[i]))
				l += beta * k
				g += beta * dk
				m.KL += k
			}
			loss += l * w
			if dLogp != nil {
				dLogp[i] = float32(g * w)
			}
		}
	}
	if tokens > 0 {
		m.KL /= float64(tokens)
		m.ClipFrac /= float64(tokens)
	}
	return float32(loss), m
}
