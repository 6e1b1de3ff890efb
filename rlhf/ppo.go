package rlhf

import (
	"fmt"
	"math"
	"strings"
)

// Token-level arrays in this file are (B, T) row-major: row b is one
// rollout's response, and mask (B, T) marks its real tokens (false for
// padding). Every function takes T, the row length, and derives B.

// KLEstimator selects a per-token estimate of KL(π‖πref) from the sampled
// token's log-probabilities (Schulman, "Approximating KL divergence").
// With d = logπ − logπref:
//
//	k1 = d                    unbiased, can be negative
//	k2 = d²/2                 biased, low variance, ≥ 0
//	k3 = exp(−d) − 1 + d      unbiased, ≥ 0 (TRL's GRPO and PPO "k3")
type KLEstimator uint8

const (
	K1 KLEstimator = iota
	K2
	K3
)

func (e KLEstimator) String() string {
	switch e {
	case K1:
		return "k1"
	case K2:
		return "k2"
	case K3:
		return "k3"
	}
	return fmt.Sprintf("KLEstimator(%d)", uint8(e))
}

// ParseKLEstimator accepts "k1", "k2" or "k3".
func ParseKLEstimator(s string) (KLEstimator, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "k1":
		return K1, nil
	case "k2":
		return K2, nil
	case "k3":
		return K3, nil
	}
	return 0, fmt.Errorf("unknown KL estimator %q (want k1, k2 or k3)", s)
}

func (e KLEstimator) MarshalText() ([]byte, error) { return []byte(e.String()), nil }

func (e *KLEstimator) UnmarshalText(b []byte) error {
	v, err := ParseKLEstimator(string(b))
	if err != nil {
		return err
	}
	*e = v
	return nil
}

// kl returns the estimate for d = logp − ref and its derivative in logp.
func (e KLEstimator) kl(logp, ref float64) (k, dk float64) {
	d := logp - ref
	switch e {
	case K1:
		return d, 1
	case K2:
		return 0.5 * d * d, d
	case K3:
		// exp(ref−logp) − 1 − (ref−logp); expm1 keeps small d accurate.
		em := math.Expm1(-d)
		return em + d, 1 - math.Exp(-d)
	}
	panic(fmt.Sprintf("rlhf: unknown KL estimator %v", e))
}

// KL writes the per-token estimate e(logp, ref) into dst (all the same
// length). When logp equals ref every estimator is exactly 0.
func KL(dst, logp, ref []float32, e KLEstimator) {
	checkLen("KL", len(dst), logp, ref)
	for i := range dst {
		k, _ := e.kl(float64(logp[i]), float64(ref[i]))
		dst[i] = float32(k)
	}
}

// ShapeRewards builds PPO's per-token rewards as TRL's PPOTrainer does:
// each real token gets −klCoef·KL(logp, ref) and the last real token of
// row b also gets scores[b], the reward model's score of the whole
// response; padding gets 0. It returns the mean over rows of each row's
// summed KL, the figure the adaptive controller tracks.
func ShapeRewards(rewards, logp, ref []float32, mask []bool, scores []float32, T int, klCoef float32, e KLEstimator) float64 {
	n := len(rewards)
	checkLen("ShapeRewards", n, logp, ref)
	B := rows("ShapeRewards", n, T, mask)
	checkLen("ShapeRewards", B, scores)
	var total float64
	for b := range B {
		last := -1
		for t := range T {
			i := b*T + t
			if !mask[i] {
				rewards[i] = 0
				continue
			}
			k, _ := e.kl(float64(logp[i]), float64(ref[i]))
			total += k
			rewards[i] = float32(-float64(klCoef) * k)
			last = i
		}
		if last >= 0 {
			rewards[last] += scores[b]
		}
	}
	if B == 0 {
		return 0
	}
	return total / float64(B)
}

func rows(what string, n, T int, mask []bool) int {
	if T <= 0 || n%T != 0 {
		panic(fmt.Sprintf("rlhf.%s: %d values are not rows of %d", what, n, T))
	}
	if len(mask) != n {
		panic(fmt.Sprintf("rlhf.%s: mask has %d values, want %d", what, len(mask), n))
	}
	return n / T
}

// GAE computes generalised advantage estimates (Schulman et al. 2016) and
// returns for each row of (B, T) rewards and values, going backwards:
//
//	δ_t = r_t + γ·V_{t+1} − V_t,  A_t = δ_t + γλ·A_{t+1},  R_t = A_t + V_t
//
// The response ends at its last real token, where V_{t+1} = 0 (no
// bootstrap: the episode is over). Padding (mask false) gets A = R = 0 and
// counts as the end, which for right-padded rows is exactly TRL's loop over
// zero-filled rewards and values. Advantages are not whitened here; see
// Whiten.
func GAE(adv, returns, rewards, values []float32, mask []bool, T int, gamma, lambda float32) {
	n := len(rewards)
	checkLen("GAE", n, adv, returns, values)
	B := rows("GAE", n, T, mask)
	g, gl := float64(gamma), float64(gamma)*float64(lambda)
	for b := range B {
		var next, lastA float64 // V_{t+1} and A_{t+1}
		for t := T - 1; t >= 0; t-- {
			i := b*T + t
			if !mask[i] {
				adv[i], returns[i] = 0, 0
				next, lastA = 0, 0
				continue
			}
			v := float64(values[i])
			delta := float64(rewards[i]) + g*next - v
			lastA = delta + gl*lastA
			adv[i] = float32(lastA)
			returns[i] = float32(lastA + v)
			next = v
		}
	}
}

// Whiten writes (x − mean)/sqrt(var + 1e-8) into dst over the positions
// where mask is true, with the masked mean and the unbiased (Bessel) masked
// variance, as TRL's masked_whiten; shiftMean false adds the mean back
// (only the scale changes: TRL does this for rewards). Masked-out positions
// get 0. dst may be x.
func Whiten(dst, x []float32, mask []bool, shiftMean bool) {
	n := len(x)
	checkLen("Whiten", n, dst)
	if len(mask) != n {
		panic(fmt.Sprintf("rlhf.Whiten: mask has %d values, want %d", len(mask), n))
	}
	var sum, cnt float64
	for i, v := range x {
		if mask[i] {
			sum += float64(v)
			cnt++
		}
	}
	if cnt == 0 {
		clear(dst)
		return
	}
	mean := sum / cnt
	var ss float64
	for i, v := range x {
		if mask[i] {
			d := float64(v) - mean
			ss += d * d
		}
	}
	variance := 0.0
	if cnt > 1 {
		variance = ss / (cnt - 1)
	}
	rstd := 1 / math.Sqrt(variance+1e-8)
	for i, v := range x {
		if !mask[i] {
			dst[i] = 0
			continue
		}
		w := (float64(v) - mean) * rstd
		if !shiftMean {
			w += mean
		}
		dst[i] = float32(w)
	}
}

// PolicyMetrics describe one clipped-surrogate step.
type PolicyMetrics struct {
	ClipFrac float64 `json:"clipfrac"`  // fraction of tokens where the clipped term won
	ApproxKL float64 `json:"approx_kl"` // mean ½(logπ − logπold)², TRL's approxkl
	Ratio    float64 `json:"ratio"`     // mean π/πold
}

// PolicyLoss is PPO's clipped surrogate (Schulman et al. 2017) as in TRL's
// PPOTrainer: with ratio ρ = exp(logp − oldLogp) per token,
//
//	loss = masked mean of max(−A·ρ, −A·clip(ρ, 1−ε, 1+ε))
//
// over all real tokens of the batch. adv, logp, oldLogp and mask are all
// (B·T) token arrays (adv already whitened). The gradient w.r.t. logp goes
// to dLogp (nil to skip; padding gets 0).
func PolicyLoss(dLogp []float32, logp, oldLogp, adv []float32, mask []bool, clip float32) (float32, PolicyMetrics) {
	n := len(logp)
	checkLen("PolicyLoss", n, dLogp, oldLogp, adv)
	if len(mask) != n {
		panic(fmt.Sprintf("rlhf.PolicyLoss: mask has %d values, want %d", len(mask), n))
	}
	cnt := 0
	for _, m := range mask {
		if m {
			cnt++
		}
	}
	var m PolicyMetrics
	if cnt == 0 {
		if dLogp != nil {
			clear(dLogp)
		}
		return 0, m
	}
	inv := 1 / float64(cnt)
	eps := float64(clip)
	var sum float64
	for i := range n {
		if !mask[i] {
			if dLogp != nil {
				dLogp[i] = 0
			}
			continue
		}
		diff := float64(logp[i]) - float64(oldLogp[i])
		r := math.Exp(diff)
		a := float64(adv[i])
		rc := math.Min(math.Max(r, 1-eps), 1+eps)
		l1, l2 := -a*r, -a*rc
		// The unclipped term carries the gradient unless the clipped one
		// is strictly larger, and then ρ lies outside the band, where
		// clip has zero slope: the gradient is 0.
		g := -a * r
		if l2 > l1 {
			sum += l2
			m.ClipFrac++
			g = 0
		} else {
			sum += l1
		}
		if dLogp != nil {
			dLogp[i] = float32(g * inv)
		}
		m.ApproxKL += 0.5 * diff * diff
		m.Ratio += r
	}
	m.ClipFrac *= inv
	m.ApproxKL *= inv
	m.Ratio *= inv
	return float32(sum * inv), m
}

// ValueLoss is PPO's clipped value loss as in TRL's PPOTrainer:
//
//	½ · masked mean of max((v − R)², (clip(v, vOld−ε, vOld+ε) − R)²)
//
// with v the value head's current predictions, vOld those at rollout time
// and R the GAE returns, all (B·T) token arrays. The gradient w.r.t. v
// goes to dV. It also returns the fraction of tokens where the clipped
// term won.
func ValueLoss(dV []float32, v, vOld, returns []float32, mask []bool, clip float32) (loss float32, clipFrac float64) {
	n := len(v)
	checkLen("ValueLoss", n, dV, vOld, returns)
	if len(mask) != n {
		panic(fmt.Sprintf("rlhf.ValueLoss: mask has %d values, want %d", len(mask), n))
	}
	cnt := 0
	for _, m := range mask {
		if m {
			cnt++
		}
	}
	if cnt == 0 {
		if dV != nil {
			clear(dV)
		}
		return 0, 0
	}
	inv := 1 / float64(cnt)
	eps := float64(clip)
	var sum float64
	for i := range n {
		if !mask[i] {
			if dV != nil {
				dV[i] = 0
			}
			continue
		}
		x, old, R := float64(v[i]), float64(vOld[i]), float64(returns[i])
		vc := math.Min(math.Max(x, old-eps), old+eps)
		l1, l2 := (x-R)*(x-R), (vc-R)*(vc-R)
		g := x - R // d(½(v−R)²)/dv
		if l2 > l1 {
			sum += l2
			clipFrac++
			g = 0 // v is outside the band, where clip is flat
		} else {
			sum += l1
		}
		if dV != nil {
			dV[i] = float32(g * inv)
		}
	}
	return float32(0.5 * sum * inv), clipFrac * inv
}

// Entropy writes the entropy of softmax(logits) for each row of logits (N,
// V) into dst (N): H = lse(z) − Σ p·z, computed from the max-shifted
// logits so no exp overflows.
func Entropy(dst, logits []float32, V int) {
	N := len(dst)
	if len(logits) != N*V {
		panic(fmt.Sprintf("rlhf.Entropy: %d logits for %d rows of %d", len(logits), N, V))
	}
	for r := range N {
		row := logits[r*V : (r+1)*V]
		mx, se, sz := softmaxStats(row)
		// p = e^{z−mx}/se; H = log se + mx − Σ p·z
		dst[r] = float32(math.Log(se) + mx - sz/se)
	}
}

// softmaxStats returns max z, Σ e^{z−max} and Σ z·e^{z−max}.
func softmaxStats(row []float32) (mx, se, sz float64) {
	mx = math.Inf(-1)
	for _, z := range row {
		mx = math.Max(mx, float64(z))
	}
	for _, z := range row {
		e := math.Exp(float64(z) - mx)
		se += e
		sz += e * float64(z)
	}
	return
}

// EntropyBackward adds dH[r]·∂H/∂z into dlogits (N, V), where
// ∂H/∂z_j = −p_j·(z_j − Σ p·z).
func EntropyBackward(dlogits, dH, logits []float32, V int) {
	N := len(dH)
	if len(logits) != N*V || len(dlogits) != N*V {
		panic(fmt.Sprintf("rlhf.EntropyBackward: %d logits, %d gradients for %d rows of %d", len(logits), len(dlogits), N, V))
	}
	for r := range N {
		row := logits[r*V : (r+1)*V]
		mx, se, sz := softmaxStats(row)
		mean := sz / se
		g := float64(dH[r])
		d := dlogits[r*V : (r+1)*V]
		for j, z := range row {
			p := math.Exp(float64(z)-mx) / se
			d[j] += float32(-g * p * (float64(z) - mean))
		}
	}
}

// AdaptiveKL is the adaptive KL coefficient of Ziegler et al. (2019), as
// TRL's AdaptiveKLController: it nudges Coef so the measured KL tracks
// Target, with a proportional error clipped to ±0.2 and a time constant of
// Horizon steps.
type AdaptiveKL struct {
	Coef    float64 `json:"coef"`    // the current β, starts at the initial value
	Target  float64 `json:"target"`  // KL the controller aims for, > 0
	Horizon float64 `json:"horizon"` // steps (samples) over which to correct, > 0
}

// Update adjusts Coef after nSteps samples whose KL was current:
// Coef *= 1 + clip(current/Target − 1, −0.2, 0.2)·nSteps/Horizon.
func (a *AdaptiveKL) Update(current float64, nSteps int) {
	e := math.Min(math.Max(current/a.Target-1, -0.2), 0.2)
	a.Coef *= 1 + e*float64(nSteps)/a.Horizon
}
