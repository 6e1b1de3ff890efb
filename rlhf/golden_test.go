package rlhf

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"

	"llmlab/core/tensor/tensortest"
)

// The golden file is written by tools/golden/rlhf.py (PyTorch autograd over
// TRL's formulas, in float64); `make golden` regenerates it.
const goldenTol = 1e-5

type goldenMetrics struct {
	Chosen   float64  `json:"rewards_chosen"`
	Rejected float64  `json:"rewards_rejected"`
	Margin   float64  `json:"rewards_margin"`
	Accuracy float64  `json:"rewards_accuracy"`
	NLL      *float64 `json:"nll_loss"`
	LogOdds  *float64 `json:"log_odds_ratio"`
	LogOddsC *float64 `json:"log_odds_chosen"`
	KL       *float64 `json:"kl"`
}

type golden struct {
	DPO []struct {
		LossType       string        `json:"loss_type"`
		Beta           float32       `json:"beta"`
		LabelSmoothing float32       `json:"label_smoothing"`
		PolC           []float32     `json:"pol_c"`
		PolR           []float32     `json:"pol_r"`
		RefC           []float32     `json:"ref_c"`
		RefR           []float32     `json:"ref_r"`
		Loss           float64       `json:"loss"`
		DC             []float32     `json:"d_c"`
		DR             []float32     `json:"d_r"`
		Metrics        goldenMetrics `json:"metrics"`
	} `json:"dpo"`
	SimPO []struct {
		Beta           float32       `json:"beta"`
		Gamma          float32       `json:"gamma"`
		LabelSmoothing float32       `json:"label_smoothing"`
		AvgC           []float32     `json:"avg_c"`
		AvgR           []float32     `json:"avg_r"`
		Loss           float64       `json:"loss"`
		DC             []float32     `json:"d_c"`
		DR             []float32     `json:"d_r"`
		Metrics        goldenMetrics `json:"metrics"`
	} `json:"simpo"`
	ORPO []struct {
		Lambda  float32       `json:"lambda"`
		AvgC    []float32     `json:"avg_c"`
		AvgR    []float32     `json:"avg_r"`
		LenC    []float32     `json:"len_c"`
		Loss    float64       `json:"loss"`
		DC      []float32     `json:"d_c"`
		DR      []float32     `json:"d_r"`
		Metrics goldenMetrics `json:"metrics"`
	} `json:"orpo"`
	KTO []struct {
		Beta              float32       `json:"beta"`
		DesirableWeight   float32       `json:"desirable_weight"`
		UndesirableWeight float32       `json:"undesirable_weight"`
		Pol               []float32     `json:"pol"`
		Ref               []float32     `json:"ref"`
		Desirable         []bool        `json:"desirable"`
		PolKL             []float32     `json:"pol_kl"`
		RefKL             []float32     `json:"ref_kl"`
		Z                 float64       `json:"z"`
		Loss              float64       `json:"loss"`
		DPol              []float32     `json:"d_pol"`
		Metrics           goldenMetrics `json:"metrics"`
	} `json:"kto"`
	BT []struct {
		RC      []float32     `json:"r_c"`
		RR      []float32     `json:"r_r"`
		Margin  []float32     `json:"margin"`
		Loss    float64       `json:"loss"`
		DC      []float32     `json:"d_c"`
		DR      []float32     `json:"d_r"`
		Metrics goldenMetrics `json:"metrics"`
	} `json:"bradley_terry"`
	PPO  goldenPPO  `json:"ppo"`
	GRPO goldenGRPO `json:"grpo"`
}

type goldenPPO struct {
	B, T     int
	Mask     []bool    `json:"mask"`
	Logp     []float32 `json:"logp"`
	OldLogp  []float32 `json:"old_logp"`
	RefLogp  []float32 `json:"ref_logp"`
	Values   []float32 `json:"values"`
	VNew     []float32 `json:"v_new"`
	Scores   []float32 `json:"scores"`
	Logits   []float32 `json:"logits"`
	EntropyW []float32 `json:"entropy_w"`
	KLk1     []float32 `json:"kl_k1"`
	KLk2     []float32 `json:"kl_k2"`
	KLk3     []float32 `json:"kl_k3"`
	DKLk1    []float32 `json:"dkl_k1"`
	DKLk2    []float32 `json:"dkl_k2"`
	DKLk3    []float32 `json:"dkl_k3"`
	Shaped   map[string]struct {
		Coef    float32   `json:"coef"`
		Rewards []float32 `json:"rewards"`
		MeanKL  float64   `json:"mean_kl"`
	} `json:"shaped"`
	Rewards []float32 `json:"rewards"`
	GAE     []struct {
		Gamma, Lambda float32
		Adv           []float32 `json:"adv"`
		Returns       []float32 `json:"returns"`
		Whiten        []float32 `json:"whiten"`
		WhitenNoShift []float32 `json:"whiten_noshift"`
	} `json:"gae"`
	AdvW      []float32 `json:"adv_w"`
	ReturnsIn []float32 `json:"returns_in"`
	Policy    []struct {
		Clip     float32   `json:"clip"`
		Loss     float64   `json:"loss"`
		DLogp    []float32 `json:"d_logp"`
		ClipFrac float64   `json:"clipfrac"`
		ApproxKL float64   `json:"approx_kl"`
		Ratio    float64   `json:"ratio"`
	} `json:"policy"`
	Value []struct {
		Clip     float32   `json:"clip"`
		Loss     float64   `json:"loss"`
		DV       []float32 `json:"d_v"`
		ClipFrac float64   `json:"clipfrac"`
	} `json:"value"`
	Entropy    []float32 `json:"entropy"`
	DEntropy   []float32 `json:"d_entropy"`
	AdaptiveKL struct {
		Init, Target, Horizon float64
		Steps                 []struct {
			Current float64
			N       int
			Coef    float64
		}
	} `json:"adaptive_kl"`
}

type goldenGRPO struct {
	G, T    int
	Mask    []bool    `json:"mask"`
	Rewards []float32 `json:"rewards"`
	Adv     []float32 `json:"adv"`
	Logp    []float32 `json:"logp"`
	OldLogp []float32 `json:"old_logp"`
	RefLogp []float32 `json:"ref_logp"`
	Cases   []struct {
		Beta     float32   `json:"beta"`
		Epsilon  float32   `json:"epsilon"`
		UseOld   bool      `json:"use_old"`
		Loss     float64   `json:"loss"`
		DLogp    []float32 `json:"d_logp"`
		KL       float64   `json:"kl"`
		ClipFrac float64   `json:"clipfrac"`
	} `json:"cases"`
}

func loadGolden(t *testing.T) *golden {
	t.Helper()
	raw, err := os.ReadFile("testdata/golden_rlhf.json")
	if err != nil {
		t.Fatalf("golden file (run make golden): %v", err)
	}
	var g golden
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatalf("testdata/golden_rlhf.json: %v", err)
	}
	return &g
}

func closeScalar(t *testing.T, what string, got, want float64) {
	t.Helper()
	if d := math.Abs(got-want) / math.Max(1, math.Abs(want)); d > goldenTol || math.IsNaN(got) {
		t.Errorf("%s = %.8g, want %.8g (diff %.2g)", what, got, want, d)
	}
}

func checkMetrics(t *testing.T, got Metrics, want goldenMetrics) {
	t.Helper()
	closeScalar(t, "rewards/chosen", got.RewardChosen, want.Chosen)
	closeScalar(t, "rewards/rejected", got.RewardRejected, want.Rejected)
	closeScalar(t, "rewards/margin", got.Margin, want.Margin)
	closeScalar(t, "rewards/accuracy", got.Accuracy, want.Accuracy)
}

func TestGoldenDPO(t *testing.T) {
	g := loadGolden(t)
	for _, c := range g.DPO {
		name := fmt.Sprintf("%s/beta=%g/eps=%g", c.LossType, c.Beta, c.LabelSmoothing)
		t.Run(name, func(t *testing.T) {
			loss, err := ParseDPOLoss(c.LossType)
			if err != nil {
				t.Fatal(err)
			}
			cfg := DPOConfig{Loss: loss, Beta: c.Beta, LabelSmoothing: c.LabelSmoothing}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			B := len(c.PolC)
			dC, dR := make([]float32, B), make([]float32, B)
			l, m := DPO(dC, dR, cfg, c.PolC, c.PolR, c.RefC, c.RefR)
			closeScalar(t, "loss", float64(l), c.Loss)
			tensortest.Close(t, "dloss/dpol_c", dC, c.DC, goldenTol)
			tensortest.Close(t, "dloss/dpol_r", dR, c.DR, goldenTol)
			checkMetrics(t, m, c.Metrics)
		})
	}
}

func TestGoldenSimPO(t *testing.T) {
	g := loadGolden(t)
	for _, c := range g.SimPO {
		t.Run(fmt.Sprintf("beta=%g/gamma=%g/eps=%g", c.Beta, c.Gamma, c.LabelSmoothing), func(t *testing.T) {
			B := len(c.AvgC)
			dC, dR := make([]float32, B), make([]float32, B)
			l, m := SimPO(dC, dR, SimPOConfig{Beta: c.Beta, Gamma: c.Gamma, LabelSmoothing: c.LabelSmoothing}, c.AvgC, c.AvgR)
			closeScalar(t, "loss", float64(l), c.Loss)
			tensortest.Close(t, "d/davg_c", dC, c.DC, goldenTol)
			tensortest.Close(t, "d/davg_r", dR, c.DR, goldenTol)
			checkMetrics(t, m, c.Metrics)
		})
	}
}

func TestGoldenORPO(t *testing.T) {
	g := loadGolden(t)
	for _, c := range g.ORPO {
		t.Run(fmt.Sprintf("lambda=%g/len=%v", c.Lambda, c.LenC != nil), func(t *testing.T) {
			B := len(c.AvgC)
			dC, dR := make([]float32, B), make([]float32, B)
			l, m := ORPO(dC, dR, c.Lambda, c.AvgC, c.AvgR, c.LenC)
			closeScalar(t, "loss", float64(l), c.Loss)
			tensortest.Close(t, "d/davg_c", dC, c.DC, goldenTol)
			tensortest.Close(t, "d/davg_r", dR, c.DR, goldenTol)
			checkMetrics(t, m.Metrics, c.Metrics)
			closeScalar(t, "nll", m.NLL, *c.Metrics.NLL)
			closeScalar(t, "log_odds_ratio", m.LogOddsRatio, *c.Metrics.LogOdds)
			closeScalar(t, "log_odds_chosen", m.LogOdds, *c.Metrics.LogOddsC)
		})
	}
}

func TestGoldenKTO(t *testing.T) {
	g := loadGolden(t)
	for _, c := range g.KTO {
		t.Run(fmt.Sprintf("beta=%g/wd=%g/wu=%g", c.Beta, c.DesirableWeight, c.UndesirableWeight), func(t *testing.T) {
			z := KTOReferencePoint(c.PolKL, c.RefKL)
			closeScalar(t, "z", float64(z), c.Z)
			d := make([]float32, len(c.Pol))
			cfg := KTOConfig{Beta: c.Beta, DesirableWeight: c.DesirableWeight, UndesirableWeight: c.UndesirableWeight}
			l, m := KTO(d, cfg, c.Pol, c.Ref, c.Desirable, z)
			closeScalar(t, "loss", float64(l), c.Loss)
			tensortest.Close(t, "d/dpol", d, c.DPol, goldenTol)
			checkMetrics(t, m.Metrics, c.Metrics)
			closeScalar(t, "kl", m.KL, *c.Metrics.KL)
		})
	}
}

func TestGoldenBradleyTerry(t *testing.T) {
	g := loadGolden(t)
	for _, c := range g.BT {
		t.Run(fmt.Sprintf("margin=%v", c.Margin != nil), func(t *testing.T) {
			B := len(c.RC)
			dC, dR := make([]float32, B), make([]float32, B)
			l, m := BradleyTerry(dC, dR, c.RC, c.RR, c.Margin)
			closeScalar(t, "loss", float64(l), c.Loss)
			tensortest.Close(t, "d/dr_c", dC, c.DC, goldenTol)
			tensortest.Close(t, "d/dr_r", dR, c.DR, goldenTol)
			checkMetrics(t, m, c.Metrics)
		})
	}
}

func TestGoldenKLEstimators(t *testing.T) {
	p := loadGolden(t).PPO
	for _, tc := range []struct {
		e        KLEstimator
		want, dk []float32
	}{{K1, p.KLk1, p.DKLk1}, {K2, p.KLk2, p.DKLk2}, {K3, p.KLk3, p.DKLk3}} {
		t.Run(tc.e.String(), func(t *testing.T) {
			got := make([]float32, len(p.Logp))
			KL(got, p.Logp, p.RefLogp, tc.e)
			tensortest.Close(t, "kl", got, tc.want, goldenTol)
			for i := range got {
				_, d := tc.e.kl(float64(p.Logp[i]), float64(p.RefLogp[i]))
				got[i] = float32(d)
			}
			tensortest.Close(t, "dkl/dlogp", got, tc.dk, goldenTol)
		})
	}
}

func TestGoldenShapeRewards(t *testing.T) {
	p := loadGolden(t).PPO
	for name, s := range p.Shaped {
		t.Run(name, func(t *testing.T) {
			e, err := ParseKLEstimator(name)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]float32, len(p.Logp))
			mean := ShapeRewards(got, p.Logp, p.RefLogp, p.Mask, p.Scores, p.T, s.Coef, e)
			tensortest.Close(t, "rewards", got, s.Rewards, goldenTol)
			closeScalar(t, "mean kl", mean, s.MeanKL)
		})
	}
}

func TestGoldenGAE(t *testing.T) {
	p := loadGolden(t).PPO
	n := len(p.Rewards)
	for _, c := range p.GAE {
		t.Run(fmt.Sprintf("gamma=%g/lambda=%g", c.Gamma, c.Lambda), func(t *testing.T) {
			adv, ret := make([]float32, n), make([]float32, n)
			GAE(adv, ret, p.Rewards, p.Values, p.Mask, p.T, c.Gamma, c.Lambda)
			tensortest.Close(t, "advantages", adv, c.Adv, goldenTol)
			tensortest.Close(t, "returns", ret, c.Returns, goldenTol)
			w := make([]float32, n)
			Whiten(w, adv, p.Mask, true)
			tensortest.Close(t, "whitened", w, c.Whiten, goldenTol)
			Whiten(w, adv, p.Mask, false)
			tensortest.Close(t, "whitened, mean kept", w, c.WhitenNoShift, goldenTol)
		})
	}
}

func TestGoldenPolicyLoss(t *testing.T) {
	p := loadGolden(t).PPO
	for _, c := range p.Policy {
		t.Run(fmt.Sprintf("clip=%g", c.Clip), func(t *testing.T) {
			d := make([]float32, len(p.Logp))
			l, m := PolicyLoss(d, p.Logp, p.OldLogp, p.AdvW, p.Mask, c.Clip)
			closeScalar(t, "loss", float64(l), c.Loss)
			tensortest.Close(t, "d/dlogp", d, c.DLogp, goldenTol)
			closeScalar(t, "clipfrac", m.ClipFrac, c.ClipFrac)
			closeScalar(t, "approx_kl", m.ApproxKL, c.ApproxKL)
			closeScalar(t, "ratio", m.Ratio, c.Ratio)
		})
	}
}

func TestGoldenValueLoss(t *testing.T) {
	p := loadGolden(t).PPO
	for _, c := range p.Value {
		t.Run(fmt.Sprintf("clip=%g", c.Clip), func(t *testing.T) {
			d := make([]float32, len(p.VNew))
			l, cf := ValueLoss(d, p.VNew, p.Values, p.ReturnsIn, p.Mask, c.Clip)
			closeScalar(t, "loss", float64(l), c.Loss)
			tensortest.Close(t, "d/dv", d, c.DV, goldenTol)
			closeScalar(t, "clipfrac", cf, c.ClipFrac)
		})
	}
}

func TestGoldenEntropy(t *testing.T) {
	p := loadGolden(t).PPO
	N := len(p.EntropyW)
	V := len(p.Logits) / N
	h := make([]float32, N)
	Entropy(h, p.Logits, V)
	tensortest.Close(t, "entropy", h, p.Entropy, goldenTol)
	d := make([]float32, len(p.Logits))
	EntropyBackward(d, p.EntropyW, p.Logits, V)
	tensortest.Close(t, "d(Σ w·H)/dlogits", d, p.DEntropy, goldenTol)
}

func TestGoldenAdaptiveKL(t *testing.T) {
	a := loadGolden(t).PPO.AdaptiveKL
	c := AdaptiveKL{Coef: a.Init, Target: a.Target, Horizon: a.Horizon}
	for i, s := range a.Steps {
		c.Update(s.Current, s.N)
		closeScalar(t, fmt.Sprintf("coef after step %d", i), c.Coef, s.Coef)
	}
}

func TestGoldenGRPO(t *testing.T) {
	g := loadGolden(t).GRPO
	adv := make([]float32, len(g.Rewards))
	GroupAdvantages(adv, g.Rewards, g.G)
	tensortest.Close(t, "group advantages", adv, g.Adv, goldenTol)
	for _, c := range g.Cases {
		t.Run(fmt.Sprintf("beta=%g/eps=%g/old=%v", c.Beta, c.Epsilon, c.UseOld), func(t *testing.T) {
			old := g.OldLogp
			if !c.UseOld {
				old = nil
			}
			d := make([]float32, len(g.Logp))
			l, m := GRPOLoss(d, GRPOConfig{Beta: c.Beta, Epsilon: c.Epsilon}, g.Logp, old, g.RefLogp, adv, g.Mask, g.T)
			closeScalar(t, "loss", float64(l), c.Loss)
			tensortest.Close(t, "d/dlogp", d, c.DLogp, goldenTol)
			if c.Beta != 0 {
				closeScalar(t, "kl", m.KL, c.KL)
			}
			closeScalar(t, "clipfrac", m.ClipFrac, c.ClipFrac)
		})
	}
}
