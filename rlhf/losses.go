package rlhf

import (
	"fmt"
	"math"
	"strings"
)

// DPOLoss selects the per-pair loss of DPO-style training. All variants
// are functions of the same logit h = (logπ(c) − logπ(r)) − (logπref(c) −
// logπref(r)), written here as in TRL's DPOTrainer.
type DPOLoss uint8

const (
	// Sigmoid is DPO (Rafailov et al. 2023, eq. 7); with label smoothing
	// ε > 0 it is conservative DPO (cDPO, Mitchell 2023, eq. 3):
	// ℓ = −(1−ε)·logσ(βh) − ε·logσ(−βh).
	Sigmoid DPOLoss = iota
	// Robust is rDPO (Chowdhury et al. 2024), the unbiased loss under
	// preference flips with rate ε < ½:
	// ℓ = ((1−ε)·(−logσ(βh)) − ε·(−logσ(−βh))) / (1−2ε).
	// Note the minus between the terms: this is TRL's "robust", not cDPO
	// divided by (1−2ε).
	Robust
	// IPO (Azar et al. 2023, eq. 17): ℓ = (h − 1/(2β))². TRL feeds IPO
	// length-averaged log-probabilities; pass those if you want its scale.
	IPO
	// Hinge is SLiC's hinge (Zhao et al. 2023): ℓ = max(0, 1 − βh).
	Hinge
)

var dpoLossNames = [...]string{Sigmoid: "sigmoid", Robust: "robust", IPO: "ipo", Hinge: "hinge"}

func (l DPOLoss) String() string {
	if int(l) < len(dpoLossNames) {
		return dpoLossNames[l]
	}
	return fmt.Sprintf("DPOLoss(%d)", uint8(l))
}

// ParseDPOLoss accepts "sigmoid" (also "dpo" and "cdpo"), "robust",
// "ipo" and "hinge", case-insensitively.
func ParseDPOLoss(s string) (DPOLoss, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "sigmoid", "dpo", "cdpo":
		return Sigmoid, nil
	case "robust", "rdpo":
		return Robust, nil
	case "ipo":
		return IPO, nil
	case "hinge":
		return Hinge, nil
	}
	return 0, fmt.Errorf("unknown DPO loss %q (want sigmoid, robust, ipo or hinge)", s)
}

// MarshalText and UnmarshalText let a DPOLoss live in run.json as its name.
func (l DPOLoss) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

func (l *DPOLoss) UnmarshalText(b []byte) error {
	v, err := ParseDPOLoss(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// DPOConfig configures DPO.
type DPOConfig struct {
	Loss           DPOLoss `json:"loss"`
	Beta           float32 `json:"beta"`            // KL strength β (IPO's τ), > 0; TRL's default is 0.1
	LabelSmoothing float32 `json:"label_smoothing"` // ε: Sigmoid (cDPO) needs [0, ½], Robust [0, ½)
}

// Validate reports a configuration the loss cannot use.
func (c DPOConfig) Validate() error {
	if !(c.Beta > 0) {
		return fmt.Errorf("dpo: beta %v must be > 0", c.Beta)
	}
	if c.LabelSmoothing < 0 || c.LabelSmoothing > 0.5 || (c.Loss == Robust && c.LabelSmoothing == 0.5) {
		return fmt.Errorf("dpo: label smoothing %v out of range for %v (want 0 <= ε < 0.5)", c.LabelSmoothing, c.Loss)
	}
	if c.Loss > Hinge {
		return fmt.Errorf("dpo: unknown loss %v", c.Loss)
	}
	return nil
}

// Metrics are the per-step figures of a preference loss, averaged over the
// batch. Rewards are the implicit rewards β·(logπ − logπref) for DPO and
// KTO, β·logπ(avg) for the reference-free SimPO and ORPO, and the reward
// model's scores for Bradley–Terry.
type Metrics struct {
	RewardChosen   float64 `json:"rewards_chosen"`
	RewardRejected float64 `json:"rewards_rejected"`
	Margin         float64 `json:"rewards_margin"`   // mean(chosen − rejected)
	Accuracy       float64 `json:"rewards_accuracy"` // fraction of pairs with chosen > rejected
}

func pairMetrics(rc, rr func(i int) float64, n int) Metrics {
	var m Metrics
	if n == 0 {
		return m
	}
	for i := range n {
		c, r := rc(i), rr(i)
		m.RewardChosen += c
		m.RewardRejected += r
		m.Margin += c - r
		if c > r {
			m.Accuracy++
		}
	}
	inv := 1 / float64(n)
	m.RewardChosen *= inv
	m.RewardRejected *= inv
	m.Margin *= inv
	m.Accuracy *= inv
	return m
}

// logSigmoid returns log σ(x) without overflow: −softplus(−x).
func logSigmoid(x float64) float64 {
	if x >= 0 {
		return -math.Log1p(math.Exp(-x))
	}
	return x - math.Log1p(math.Exp(x))
}

func sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

// smoothedSigmoidLoss is −(1−ε)·logσ(z) − ε·logσ(−z) and its derivative in
// z; SimPO and cDPO share it.
func smoothedSigmoidLoss(z, eps float64) (l, dz float64) {
	l = -(1-eps)*logSigmoid(z) - eps*logSigmoid(-z)
	dz = -(1-eps)*sigmoid(-z) + eps*sigmoid(z)
	return
}

func checkLen(what string, n int, xs ...[]float32) {
	for _, x := range xs {
		if x != nil && len(x) != n {
			panic(fmt.Sprintf("rlhf.%s: a slice has %d values, want %d", what, len(x), n))
		}
	}
}

func at(x []float32, i int) float64 {
	if x == nil {
		return 0
	}
	return float64(x[i])
}

// DPO returns the mean DPO loss over B pairs and writes its gradient with
// respect to the policy log-probabilities into dC and dR (len B, either may
// be nil; they are overwritten). polC, polR are the policy's summed
// log-probabilities of the chosen and rejected completions; refC, refR the
// frozen reference's (nil for reference-free DPO, where they count as 0).
//
// For a pair, h = (polC − polR) − (refC − refR); the loss per variant is in
// DPOLoss's doc. Example: β = 0.1, h = 2 gives Sigmoid loss
// −logσ(0.2) ≈ 0.598.
func DPO(dC, dR []float32, c DPOConfig, polC, polR, refC, refR []float32) (float32, Metrics) {
	B := len(polC)
	checkLen("DPO", B, dC, dR, polR, refC, refR)
	beta, eps := float64(c.Beta), float64(c.LabelSmoothing)
	var sum float64
	for i := range B {
		h := (float64(polC[i]) - float64(polR[i])) - (at(refC, i) - at(refR, i))
		z := beta * h
		var l, dh float64
		switch c.Loss {
		case Sigmoid:
			var dz float64
			l, dz = smoothedSigmoidLoss(z, eps)
			dh = beta * dz
		case Robust:
			l = (-(1-eps)*logSigmoid(z) + eps*logSigmoid(-z)) / (1 - 2*eps)
			dh = beta * (-(1-eps)*sigmoid(-z) - eps*sigmoid(z)) / (1 - 2*eps)
		case IPO:
			d := h - 1/(2*beta)
			l, dh = d*d, 2*d
		case Hinge:
			if z < 1 {
				l, dh = 1-z, -beta
			}
		default:
			panic(fmt.Sprintf("rlhf.DPO: unknown loss %v", c.Loss))
		}
		sum += l
		if dC != nil {
			dC[i] = float32(dh / float64(B))
		}
		if dR != nil {
			dR[i] = float32(-dh / float64(B))
		}
	}
	m := pairMetrics(
		func(i int) float64 { return beta * (float64(polC[i]) - at(refC, i)) },
		func(i int) float64 { return beta * (float64(polR[i]) - at(refR, i)) }, B)
	return meanOf(sum, B), m
}

func meanOf(sum float64, n int) float32 {
	if n == 0 {
		return 0
	}
	return float32(sum / float64(n))
}

// SimPOConfig configures SimPO (Meng et al. 2024).
type SimPOConfig struct {
	Beta           float32 `json:"beta"`            // reward scale β (the paper uses 2–10)
	Gamma          float32 `json:"gamma"`           // target reward margin γ (TRL's simpo_gamma)
	LabelSmoothing float32 `json:"label_smoothing"` // ε, as in cDPO
}

// SimPO returns the mean SimPO loss over B pairs,
// ℓ = −(1−ε)·logσ(β(avgC − avgR) − γ) − ε·logσ(−(β(avgC − avgR) − γ)),
// as TRL's CPOTrainer with loss_type "simpo" (which writes it as
// β·((avgC − avgR) − γ/β)). avgC, avgR are length-normalised (mean
// per-token) log-probabilities; there is no reference. Gradients with
// respect to avgC and avgR go to dC and dR (nil to skip). Rewards in the
// metrics are β·avg.
func SimPO(dC, dR []float32, c SimPOConfig, avgC, avgR []float32) (float32, Metrics) {
	B := len(avgC)
	checkLen("SimPO", B, dC, dR, avgR)
	beta, gamma, eps := float64(c.Beta), float64(c.Gamma), float64(c.LabelSmoothing)
	var sum float64
	for i := range B {
		z := beta*(float64(avgC[i])-float64(avgR[i])) - gamma
		l, dz := smoothedSigmoidLoss(z, eps)
		sum += l
		if dC != nil {
			dC[i] = float32(beta * dz / float64(B))
		}
		if dR != nil {
			dR[i] = float32(-beta * dz / float64(B))
		}
	}
	m := pairMetrics(func(i int) float64 { return beta * float64(avgC[i]) },
		func(i int) float64 { return beta * float64(avgR[i]) }, B)
	return meanOf(sum, B), m
}

// ORPOMetrics adds ORPO's two terms to the preference metrics.
type ORPOMetrics struct {
	Metrics
	NLL          float64 `json:"nll_loss"`
	LogOddsRatio float64 `json:"log_odds_ratio"` // mean log σ(log odds_c − log odds_r)
	LogOdds      float64 `json:"log_odds_chosen"`
}

// logOdds returns log(p/(1−p)) for log p = x < 0, and its derivative
// 1/(1 − eˣ). expm1 keeps it accurate when x is near 0.
func logOdds(x float64) (lo, d float64) {
	em1 := math.Expm1(x) // eˣ − 1 < 0
	return x - math.Log(-em1), -1 / em1
}

// ORPO returns the ORPO loss (Hong et al. 2024) over B pairs as in TRL's
// ORPOTrainer: NLL(chosen) − λ·mean logσ(log odds(avgC) − log odds(avgR)),
// with log odds(x) = x − log(1 − eˣ) of the mean per-token
// log-probabilities avgC, avgR (each < 0). The NLL term is the token-mean
// cross-entropy of the chosen completions, −Σ avgC·lenC / Σ lenC, where
// lenC holds each chosen completion's token count (nil: every sequence
// weighs the same, −mean avgC). Gradients w.r.t. avgC and avgR go to dC and
// dR. Rewards in the metrics are λ·avg, as TRL reports them.
func ORPO(dC, dR []float32, lambda float32, avgC, avgR, lenC []float32) (float32, ORPOMetrics) {
	B := len(avgC)
	checkLen("ORPO", B, dC, dR, avgR, lenC)
	lam := float64(lambda)
	var tokens float64
	for i := range B {
		if lenC != nil {
			tokens += float64(lenC[i])
		} else {
			tokens++
		}
	}
	var m ORPOMetrics
	for i := range B {
		w := 1.0
		if lenC != nil {
			w = float64(lenC[i])
		}
		ac, ar := float64(avgC[i]), float64(avgR[i])
		loC, dloC := logOdds(ac)
		loR, dloR := logOdds(ar)
		d := loC - loR
		ratio := logSigmoid(d)
		m.NLL -= ac * w / tokens
		m.LogOddsRatio += ratio / float64(B)
		m.LogOdds += d / float64(B)
		// d/dd of −λ·mean logσ(d) is −λ·σ(−d)/B.
		g := -lam * sigmoid(-d) / float64(B)
		if dC != nil {
			dC[i] = float32(-w/tokens + g*dloC)
		}
		if dR != nil {
			dR[i] = float32(-g * dloR)
		}
	}
	m.Metrics = pairMetrics(func(i int) float64 { return lam * float64(avgC[i]) },
		func(i int) float64 { return lam * float64(avgR[i]) }, B)
	if B == 0 {
		return 0, m
	}
	return float32(m.NLL - lam*m.LogOddsRatio), m
}

// KTOConfig configures KTO (Ethayarajh et al. 2024).
type KTOConfig struct {
	Beta              float32 `json:"beta"`
	DesirableWeight   float32 `json:"desirable_weight"`   // λ_D, TRL default 1
	UndesirableWeight float32 `json:"undesirable_weight"` // λ_U, TRL default 1
}

// KTOMetrics adds the reference point to the preference metrics. For KTO
// RewardChosen and RewardRejected average over the desirable and the
// undesirable examples; Margin is their difference; Accuracy is the
// fraction of examples whose implicit reward has their label's sign
// (desirable > 0, undesirable < 0), KTO having no pairs.
type KTOMetrics struct {
	Metrics
	KL float64 `json:"kl"` // the reference point z used (clamped at 0)
}

// KTOReferencePoint estimates KTO's reference point z = max(0,
// mean(polKL − refKL)) from log-probabilities of mismatched pairs (each
// prompt with another example's completion), as TRL does. It carries no
// gradient.
func KTOReferencePoint(polKL, refKL []float32) float32 {
	checkLen("KTOReferencePoint", len(polKL), refKL)
	var s float64
	for i := range polKL {
		s += float64(polKL[i]) - float64(refKL[i])
	}
	if len(polKL) == 0 || s <= 0 {
		return 0
	}
	return float32(s / float64(len(polKL)))
}

// KTO returns the KTO loss over B unpaired examples as in TRL's KTOTrainer
// (eq. 7 of the paper): with the log-ratio r = pol − ref and z = max(0, z),
// a desirable example costs λ_D·(1 − σ(β(r − z))) and an undesirable one
// λ_U·(1 − σ(β(z − r))); the loss is the mean over all B examples. z is a
// constant (TRL detaches it). The gradient w.r.t. pol goes to dPol.
func KTO(dPol []float32, c KTOConfig, pol, ref []float32, desirable []bool, z float32) (float32, KTOMetrics) {
	B := len(pol)
	checkLen("KTO", B, dPol, ref)
	if len(desirable) != B {
		panic(fmt.Sprintf("rlhf.KTO: %d labels for %d examples", len(desirable), B))
	}
	beta := float64(c.Beta)
	zz := math.Max(0, float64(z))
	var sum float64
	var m KTOMetrics
	m.KL = zz
	nd, nu := 0, 0
	for i := range B {
		r := float64(pol[i]) - at(ref, i)
		var l, dr float64
		if desirable[i] {
			s := sigmoid(beta * (r - zz))
			w := float64(c.DesirableWeight)
			l, dr = w*(1-s), -w*s*(1-s)*beta
			m.RewardChosen += beta * r
			nd++
			if r > 0 {
				m.Accuracy++
			}
		} else {
			s := sigmoid(beta * (zz - r))
			w := float64(c.UndesirableWeight)
			l, dr = w*(1-s), w*s*(1-s)*beta
			m.RewardRejected += beta * r
			nu++
			if r < 0 {
				m.Accuracy++
			}
		}
		sum += l
		if dPol != nil {
			dPol[i] = float32(dr / float64(B))
		}
	}
	if nd > 0 {
		m.RewardChosen /= float64(nd)
	}
	if nu > 0 {
		m.RewardRejected /= float64(nu)
	}
	m.Margin = m.RewardChosen - m.RewardRejected
	if B > 0 {
		m.Accuracy /= float64(B)
	}
	return meanOf(sum, B), m
}

// BradleyTerry returns the reward model's pairwise loss as in TRL's
// RewardTrainer, mean −logσ(rc − rr − margin), over B pairs of scalar
// rewards; margin (len B) is optional (nil = 0). Gradients w.r.t. rc and rr
// go to dC and dR. Metrics hold the mean rewards, margin and accuracy.
func BradleyTerry(dC, dR []float32, rc, rr, margin []float32) (float32, Metrics) {
	B := len(rc)
	checkLen("BradleyTerry", B, dC, dR, rr, margin)
	var sum float64
	for i := range B {
		d := float64(rc[i]) - float64(rr[i]) - at(margin, i)
		sum -= logSigmoid(d)
		g := -sigmoid(-d) / float64(B)
		if dC != nil {
			dC[i] = float32(g)
		}
		if dR != nil {
			dR[i] = float32(-g)
		}
	}
	m := pairMetrics(func(i int) float64 { return float64(rc[i]) }, func(i int) float64 { return float64(rr[i]) }, B)
	return meanOf(sum, B), m
}
