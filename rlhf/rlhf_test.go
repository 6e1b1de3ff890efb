package rlhf

import (
	"context"
	"encoding/json"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"llmlab/core/autograd"
	"llmlab/core/data"
	"llmlab/core/model"
	"llmlab/core/tensor"
	"llmlab/core/tensor/tensortest"
)

// When the policy is the reference, every KL estimate is exactly 0, every
// ratio is exactly 1 and DPO's implicit rewards and margin are 0.
func TestPolicyEqualsReference(t *testing.T) {
	const B, T = 3, 4
	logp := tensortest.Rand(1, B*T, 3)
	for i := range logp {
		logp[i] -= 3.5
	}
	mask := []bool{true, true, true, true, true, true, false, false, true, false, false, false}
	for _, e := range []KLEstimator{K1, K2, K3} {
		kl := make([]float32, B*T)
		KL(kl, logp, logp, e)
		for i, k := range kl {
			if k != 0 {
				t.Errorf("%v: KL[%d] = %g with policy = reference", e, i, k)
			}
		}
		rewards := make([]float32, B*T)
		scores := []float32{1, -2, 0.5}
		if mean := ShapeRewards(rewards, logp, logp, mask, scores, T, 0.1, e); mean != 0 {
			t.Errorf("%v: mean KL %g", e, mean)
		}
		want := []float32{0, 0, 0, 1, 0, -2, 0, 0, 0.5, 0, 0, 0}
		if d := cmp.Diff(want, rewards); d != "" {
			t.Errorf("%v: shaped rewards (-want +got):\n%s", e, d)
		}
	}
	adv := tensortest.Rand(2, B*T, 1)
	_, pm := PolicyLoss(nil, logp, logp, adv, mask, 0.2)
	if pm.Ratio != 1 || pm.ApproxKL != 0 || pm.ClipFrac != 0 {
		t.Errorf("PPO with π = πold: %+v, want ratio 1, KL 0, no clipping", pm)
	}
	_, gm := GRPOLoss(nil, GRPOConfig{Beta: 0.04, Epsilon: 0.2}, logp, logp, logp, adv[:B], mask, T)
	if gm.KL != 0 || gm.ClipFrac != 0 {
		t.Errorf("GRPO with π = πref = πold: %+v", gm)
	}
	pc, pr := logp[:B], logp[B:2*B]
	for _, l := range []DPOLoss{Sigmoid, Robust, IPO, Hinge} {
		loss, m := DPO(nil, nil, DPOConfig{Loss: l, Beta: 0.1, LabelSmoothing: 0.1}, pc, pr, pc, pr)
		if m != (Metrics{}) {
			t.Errorf("%v with π = πref: metrics %+v, want all 0", l, m)
		}
		if l == Sigmoid && math.Abs(float64(loss)-math.Ln2) > 1e-6 {
			t.Errorf("sigmoid DPO at h = 0: loss %g, want log 2", loss)
		}
	}
}

func TestGAEWorkedExample(t *testing.T) {
	// γ = λ = 1 and V = 0: the advantage is the sum of the rewards to come.
	rewards := []float32{1, 2, 3, 9, 4, 5, 0, 0}
	mask := []bool{true, true, true, true, true, true, false, false}
	adv, ret := make([]float32, 8), make([]float32, 8)
	GAE(adv, ret, rewards, make([]float32, 8), mask, 4, 1, 1)
	want := []float32{15, 14, 12, 9, 9, 5, 0, 0}
	if d := cmp.Diff(want, adv); d != "" {
		t.Errorf("advantages (-want +got):\n%s", d)
	}
	if d := cmp.Diff(want, ret); d != "" {
		t.Errorf("returns (-want +got):\n%s", d)
	}
}

func TestEnums(t *testing.T) {
	for _, l := range []DPOLoss{Sigmoid, Robust, IPO, Hinge} {
		got, err := ParseDPOLoss(l.String())
		if err != nil || got != l {
			t.Errorf("ParseDPOLoss(%q) = %v, %v", l.String(), got, err)
		}
	}
	if _, err := ParseDPOLoss("kto"); err == nil {
		t.Error("ParseDPOLoss(kto): no error")
	}
	for _, e := range []KLEstimator{K1, K2, K3} {
		got, err := ParseKLEstimator(e.String())
		if err != nil || got != e {
			t.Errorf("ParseKLEstimator(%q) = %v, %v", e.String(), got, err)
		}
	}
	b, err := json.Marshal(DPOConfig{Loss: IPO, Beta: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	var c DPOConfig
	if err := json.Unmarshal(b, &c); err != nil || c.Loss != IPO {
		t.Errorf("DPOConfig round trip through %s: %+v, %v", b, c, err)
	}
	for _, tc := range []struct {
		c  DPOConfig
		ok bool
	}{
		{DPOConfig{Loss: Sigmoid, Beta: 0.1}, true},
		{DPOConfig{Loss: Sigmoid, Beta: 0.1, LabelSmoothing: 0.5}, true},
		{DPOConfig{Loss: Robust, Beta: 0.1, LabelSmoothing: 0.5}, false},
		{DPOConfig{Loss: Sigmoid, Beta: 0}, false},
		{DPOConfig{Loss: Hinge, Beta: 0.1, LabelSmoothing: -0.1}, false},
	} {
		if err := tc.c.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: Validate() = %v", tc.c, err)
		}
	}
}

func TestAdaptiveKLClips(t *testing.T) {
	a := AdaptiveKL{Coef: 0.1, Target: 6, Horizon: 100}
	a.Update(600, 10) // error clipped to +0.2
	if math.Abs(a.Coef-0.1*1.02) > 1e-12 {
		t.Errorf("coef %g, want %g", a.Coef, 0.1*1.02)
	}
	a.Update(6, 10)
	if math.Abs(a.Coef-0.1*1.02) > 1e-12 {
		t.Errorf("at target the coef moved to %g", a.Coef)
	}
}

func TestRewards(t *testing.T) {
	tests := []struct {
		spec, completion, answer string
		want                     float32
	}{
		{"exact", "  Paris\n", "Paris", 1},
		{"exact", "paris", "Paris", 0},
		{"exact-fold", "paris", "Paris", 1},
		{"number", "3 cats and 4 dogs make 7.", "7", 1},
		{"number", "The answer is 1,234", "1234", 1},
		{"number", "-2.50", "#### -2.5", 1},
		{"number", "7 or 8", "7", 0},
		{"number", "no idea", "7", 0},
		{"number:0.1", "3.14", "3.2", 1},
		{"format", "<think>hm</think> <answer>4</answer>", "", 1},
		{"format", "<answer>4</answer>", "", 0},
		{"regex:^The answer is", "The answer is 4", "", 1},
		{"2*regex:a*b", "aab", "", 2},
		{"length:5", "abcdefgh", "", -0.03},
		{"length:5:0.5", "abc", "", 0},
		{"0.5*exact", "x", "x", 0.5},
	}
	for _, tc := range tests {
		t.Run(tc.spec+"/"+tc.completion, func(t *testing.T) {
			r, err := ParseRewards(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Score(tc.completion, tc.answer); math.Abs(float64(got-tc.want)) > 1e-6 {
				t.Errorf("Score = %g, want %g", got, tc.want)
			}
			// String gives back a spec that parses to the same reward.
			again, err := ParseRewards(r.String())
			if err != nil || again.String() != r.String() {
				t.Errorf("String %q parses to %v, %v", r.String(), again, err)
			}
		})
	}
	sum, err := ParseRewards("number", "0.2*format", "length:100")
	if err != nil {
		t.Fatal(err)
	}
	if got := sum.Score("<think>x</think><answer>12</answer>", "12"); math.Abs(float64(got)-1.2) > 1e-6 {
		t.Errorf("combined score %g, want 1.2", got)
	}
	for _, bad := range []string{"", "exactly", "regex:(", "regex:", "length:x", "exact:1", "x*exact", "number:-1"} {
		if _, err := ParseRewards(bad); err == nil {
			t.Errorf("ParseRewards(%q): no error", bad)
		}
	}
	if _, err := ParseRewards(); err == nil {
		t.Error("ParseRewards(): no error")
	}
}

// logSoftmaxRef returns log p(label) of row r in float64.
func logSoftmaxRef(logits []float32, V, r int, label int32) float64 {
	row := logits[r*V : (r+1)*V]
	mx := math.Inf(-1)
	for _, z := range row {
		mx = math.Max(mx, float64(z))
	}
	var s float64
	for _, z := range row {
		s += math.Exp(float64(z) - mx)
	}
	return float64(row[label]) - mx - math.Log(s)
}

func TestSequenceLogProbs(t *testing.T) {
	const B, T, V = 2, 3, 5
	logits := tensortest.Rand(3, B*T*V, 2)
	labels := []int32{1, -100, 4, -100, -100, -100}
	tp := autograd.NewTape(tensor.NewCPU(1))
	x := tp.Const(tensor.FromF32(logits, B*T, V))
	sum := SequenceLogProbs(tp, x, labels, B, T).Value.F32
	mean := SequenceMeanLogProbs(tp, x, labels, B, T).Value.F32
	want := logSoftmaxRef(logits, V, 0, 1) + logSoftmaxRef(logits, V, 2, 4)
	tensortest.Close(t, "sum", sum, []float32{float32(want), 0}, 1e-6)
	tensortest.Close(t, "mean", mean, []float32{float32(want / 2), 0}, 1e-6)
	if d := cmp.Diff([]float32{2, 0}, TokenCounts(labels, B, T)); d != "" {
		t.Errorf("TokenCounts (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]int{2, -1}, LastTokenRows(labels, B, T)); d != "" {
		t.Errorf("LastTokenRows (-want +got):\n%s", d)
	}
}

// gradCase builds a scalar loss on a tape from a leaf holding x.
type gradCase struct {
	name  string
	shape []int
	scale float32
	build func(tp *autograd.Tape, x *autograd.Var) *autograd.Var
}

// checkTape compares the tape's gradient of build w.r.t. x with central
// differences of the same forward pass.
func checkTape(t *testing.T, be tensor.Backend, tc gradCase, seed uint64) {
	t.Helper()
	n := 1
	for _, d := range tc.shape {
		n *= d
	}
	x := tensortest.Rand(seed, n, tc.scale)
	tp := autograd.NewTape(be)
	leaf := tp.Leaf(tensor.FromF32(x, tc.shape...))
	loss := tc.build(tp, leaf)
	if err := tp.Backward(loss); err != nil {
		t.Fatal(err)
	}
	grad := append([]float32(nil), leaf.Grad.F32...)
	fwd := autograd.NewTape(be)
	f := func() float64 {
		fwd.Reset()
		return float64(tc.build(fwd, fwd.Leaf(tensor.FromF32(x, tc.shape...))).Value.F32[0])
	}
	tensortest.GradCheck(t, tc.name, x, grad, f, 1e-2, 2e-4, 2e-2, 0)
}

func TestCustomOpsGradCheck(t *testing.T) {
	be := tensor.NewCPU(1)
	const B, T, V = 3, 4, 6
	// Chosen rows first, then rejected: one logits leaf feeds both.
	labels := make([]int32, 2*B*T)
	for i := range labels {
		labels[i] = int32((i * 7) % V)
		if i%T == 0 || i%5 == 3 {
			labels[i] = data.IgnoreIndex // prompt and padding positions
		}
	}
	split := func(tp *autograd.Tape, x *autograd.Var, mean bool) (c, r *autograd.Var) {
		var s *autograd.Var
		if mean {
			s = SequenceMeanLogProbs(tp, x, labels, 2*B, T)
		} else {
			s = SequenceLogProbs(tp, x, labels, 2*B, T)
		}
		parts := tp.SplitCols(tp.View(s, 1, 2*B), B, B)
		return tp.View(parts[0], B), tp.View(parts[1], B)
	}
	refC, refR := tensortest.Rand(11, B, 1), tensortest.Rand(12, B, 1)
	for i := range refC {
		refC[i] -= 8
		refR[i] -= 8
	}
	shape := []int{2 * B * T, V}
	var cases []gradCase
	for _, c := range []DPOConfig{{Loss: Sigmoid, Beta: 0.5, LabelSmoothing: 0.1}, {Loss: Robust, Beta: 0.5, LabelSmoothing: 0.2}, {Loss: IPO, Beta: 0.3}, {Loss: Hinge, Beta: 0.05}} {
		cases = append(cases, gradCase{"dpo/" + c.Loss.String(), shape, 2, func(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
			pc, pr := split(tp, x, false)
			l, _ := DPOVar(tp, c, pc, pr, refC, refR)
			return l
		}})
	}
	mask := make([]bool, B*T)
	for i := range mask {
		mask[i] = labels[i] >= 0
	}
	old := tensortest.Rand(13, B*T, 0.3)
	adv := tensortest.Rand(14, B*T, 1)
	// fixedOld returns logp + old from the first (unperturbed) call and the
	// same numbers after: the rollout's log-probs do not move with x.
	var oldPol, oldGRPO []float32
	fixedOld := func(keep *[]float32, lp *autograd.Var) []float32 {
		if *keep == nil {
			*keep = make([]float32, B*T)
			for i, v := range lp.Value.F32 {
				(*keep)[i] = v + old[i]
			}
		}
		return *keep
	}
	cases = append(cases,
		gradCase{"simpo", shape, 2, func(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
			ac, ar := split(tp, x, true)
			l, _ := SimPOVar(tp, SimPOConfig{Beta: 2, Gamma: 0.5, LabelSmoothing: 0.05}, ac, ar)
			return l
		}},
		gradCase{"orpo", shape, 2, func(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
			ac, ar := split(tp, x, true)
			l, _ := ORPOVar(tp, 0.3, ac, ar, TokenCounts(labels, B, T))
			return l
		}},
		gradCase{"kto", []int{B * T, V}, 2, func(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
			p := SequenceLogProbs(tp, x, labels[:B*T], B, T)
			l, _ := KTOVar(tp, KTOConfig{Beta: 0.5, DesirableWeight: 1.2, UndesirableWeight: 0.8}, p, refC, []bool{true, false, true}, 0.3)
			return l
		}},
		gradCase{"policy", []int{B * T, V}, 1, func(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
			lp := TokenLogProbs(tp, x, labels[:B*T])
			// Offsets up to 0.3 make some ratios clip, away from the edges.
			l, _ := PolicyLossVar(tp, lp, fixedOld(&oldPol, lp), adv, mask, 0.2)
			return l
		}},
		gradCase{"grpo", []int{B * T, V}, 1, func(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
			lp := TokenLogProbs(tp, x, labels[:B*T])
			l, _ := GRPOLossVar(tp, GRPOConfig{Beta: 0.1, Epsilon: 0.2}, lp, fixedOld(&oldGRPO, lp), old, adv[:B], mask, T)
			return l
		}},
		gradCase{"entropy", []int{B * T, V}, 3, func(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
			return MaskedMean(tp, EntropyVar(tp, x), mask)
		}},
	)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { checkTape(t, be, tc, uint64(100+i)) })
	}
}

// The scalar heads: reward model (Bradley–Terry over last-token scores)
// and value loss, checked w.r.t. the hidden states and the head weights.
func TestScalarHeadGradCheck(t *testing.T) {
	be := tensor.NewCPU(1)
	const B, T, C = 2, 3, 4
	labels := []int32{-100, 1, 2, -100, 3, -100, 5, 6, 7, -100, 1, -100}
	last := LastTokenRows(labels, 2*B, T)
	head := NewScalarHead(RewardHeadName, C, true)
	copy(head.W.Value.F32, tensortest.Rand(21, C, 1))
	head.B.Value.F32[0] = 0.1
	margin := []float32{0.5, 0}
	bt := func(tp *autograd.Tape, h *autograd.Var) *autograd.Var {
		s := Gather(tp, head.Forward(tp, h), last) // (2B)
		parts := tp.SplitCols(tp.View(s, 1, 2*B), B, B)
		l, _ := BradleyTerryVar(tp, tp.View(parts[0], B), tp.View(parts[1], B), margin)
		return l
	}
	checkTape(t, be, gradCase{"bradley-terry/hidden", []int{2 * B * T, C}, 1, bt}, 31)

	mask := make([]bool, 2*B*T)
	for i := range mask {
		mask[i] = labels[i] >= 0
	}
	vOld, ret := tensortest.Rand(22, 2*B*T, 0.5), tensortest.Rand(23, 2*B*T, 2)
	vl := func(tp *autograd.Tape, h *autograd.Var) *autograd.Var {
		l, _ := ValueLossVar(tp, head.Forward(tp, h), vOld, ret, mask, 0.2)
		return l
	}
	checkTape(t, be, gradCase{"value/hidden", []int{2 * B * T, C}, 1, vl}, 32)

	// The head's weight gradient lands in its Param.
	h := tensortest.Rand(33, 2*B*T*C, 1)
	tp := autograd.NewTape(be)
	head.W.Grad = nil
	l := bt(tp, tp.Const(tensor.FromF32(h, 2*B*T, C)))
	if err := tp.Backward(l); err != nil {
		t.Fatal(err)
	}
	fwd := autograd.NewTape(be)
	tensortest.GradCheck(t, "bradley-terry/weight", head.W.Value.F32, head.W.Grad.F32, func() float64 {
		fwd.Reset()
		return float64(bt(fwd, fwd.Const(tensor.FromF32(h, 2*B*T, C))).Value.F32[0])
	}, 1e-2, 2e-4, 2e-2, 0)
}

func tinyModel(t *testing.T) *model.Transformer {
	t.Helper()
	c, err := model.Preset(model.Llama, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	c.VocabSize, c.Hidden, c.Layers, c.Heads, c.KVHeads, c.Intermediate, c.HeadDim = 32, 16, 1, 2, 2, 32, 8
	m, err := model.New(c, 7)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// countingRef counts the rows it is asked for.
type countingRef struct {
	inner Reference
	rows  int
}

func (c *countingRef) LogProbs(ctx context.Context, b data.Batch, dst []float32) error {
	c.rows += b.B
	return c.inner.LogProbs(ctx, b, dst)
}

func TestFrozenAndCachedReference(t *testing.T) {
	be := tensor.NewCPU(1)
	m := tinyModel(t)
	const B, T = 2, 5
	b := data.NewBatch(B, T)
	for i := range b.IDs {
		b.IDs[i] = int32((i*5 + 3) % 32)
		b.Labels[i] = int32((i*5 + 8) % 32)
		b.Pos[i] = int32(i % T)
	}
	b.Labels[0], b.Labels[T] = data.IgnoreIndex, data.IgnoreIndex

	// The policy's own log-probs on a recording tape...
	tp := autograd.NewTape(be)
	logits, err := m.Forward(tp, model.Inputs{B: B, T: T, IDs: b.IDs, Pos: b.Pos})
	if err != nil {
		t.Fatal(err)
	}
	pol := SequenceLogProbs(tp, logits, b.Labels, B, T)
	// ...equal the frozen reference's, so DPO starts at h = 0.
	inner := &countingRef{inner: NewFrozenModel(m, be)}
	ref := NewCachedReference(inner)
	got := make([]float32, B)
	for range 3 {
		if err := ref.LogProbs(context.Background(), b, got); err != nil {
			t.Fatal(err)
		}
	}
	tensortest.Close(t, "reference log-probs", got, pol.Value.F32, 1e-6)
	if inner.rows != B || ref.Hits != 2*B || ref.Misses != B || ref.Len() != B {
		t.Errorf("inner computed %d rows; hits %d, misses %d, cached %d; want %d, %d, %d, %d",
			inner.rows, ref.Hits, ref.Misses, ref.Len(), B, 2*B, B, B)
	}
	// A changed row is a miss.
	b.IDs[1]++
	if err := ref.LogProbs(context.Background(), b, got); err != nil {
		t.Fatal(err)
	}
	if inner.rows != 2*B {
		t.Errorf("after a change the inner reference computed %d rows, want %d", inner.rows, 2*B)
	}
	// Policy = reference: DPO has zero margin and loss log 2 on the model.
	c, r := tp.View(tp.SplitCols(tp.View(pol, 1, B), 1, 1)[0], 1), tp.View(tp.SplitCols(tp.View(pol, 1, B), 1, 1)[1], 1)
	loss, met := DPOVar(tp, DPOConfig{Loss: Sigmoid, Beta: 0.1}, c, r, pol.Value.F32[:1], pol.Value.F32[1:])
	if met.Margin != 0 || math.Abs(float64(loss.Value.F32[0])-math.Ln2) > 1e-6 {
		t.Errorf("DPO with π = πref: loss %g, metrics %+v", loss.Value.F32[0], met)
	}
	if err := tp.Backward(loss); err != nil {
		t.Fatal(err)
	}
	for _, p := range m.ParamList() {
		if p.Grad == nil {
			continue
		}
		for _, g := range p.Grad.F32 {
			if math.IsNaN(float64(g)) {
				t.Fatalf("%s: NaN gradient", p.Name)
			}
		}
	}
}
