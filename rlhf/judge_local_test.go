package rlhf

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"llmlab/core/chat"
	"llmlab/core/data"
	"llmlab/core/model"
	"llmlab/core/tensor"
)

// byteEnc encodes text as its bytes; 256 is EOS.
type byteEnc struct{}

func (byteEnc) Encode(s string, _ bool) []int32 {
	out := make([]int32, len(s))
	for i := range len(s) {
		out[i] = int32(s[i])
	}
	return out
}
func (byteEnc) BOS() int32 { return -1 }
func (byteEnc) EOS() int32 { return 256 }

// pairEnc spells every letter with two tokens.
type pairEnc struct{ byteEnc }

func (pairEnc) Encode(s string, _ bool) []int32 {
	var out []int32
	for i := range len(s) {
		out = append(out, int32(s[i]), 0)
	}
	return out
}

func tinyJudge(t *testing.T) *LocalJudge {
	t.Helper()
	cfg, err := model.ParseConfig([]byte(`{"model_type":"llama","vocab_size":257,"hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":48,"max_position_embeddings":1024}`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.New(cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	// Larger weights than the initialisation's, so that the two orders'
	// probabilities differ by much more than rounding.
	for p := range m.Params() {
		for i := range p.Value.F32 {
			p.Value.F32[i] *= 3
		}
	}
	j, err := NewLocalJudge(m, tensor.NewCPU(1), byteEnc{}, chat.Format{Builtin: chat.ChatML}, "Prefer the correct answer.")
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestLocalJudge(t *testing.T) {
	j := tinyJudge(t)
	a, b := j.ChoiceTokens()
	if len(a) != 1 || a[0] != 'A' || len(b) != 1 || b[0] != 'B' {
		t.Fatalf("choice tokens %v %v; want [65] [66] (\" A\" is two bytes)", a, b)
	}
	ctx := context.Background()
	prompt, x, y := "What is 2+2?", "4", "It is five, I think."
	v, err := j.Compare(ctx, prompt, x, y)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("PFirst %v PA %.4f winner %v raw %q", v.PFirst, v.PA, v.Winner, v.Raw)

	// Both orders were asked: each order's probability equals a forward
	// pass over that order alone (no padding), and P(A)+P(B) = 1 there.
	for k, pair := range [2][2]string{{x, y}, {y, x}} {
		ids, err := data.EncodePrompt(byteEnc{}, chat.ChatML, []chat.Message{{Role: chat.RoleUser, Content: JudgeQuestion(j.Rubric, prompt, pair[0], pair[1])}})
		if err != nil {
			t.Fatal(err)
		}
		logits, err := j.lastLogits([][]int32{ids})
		if err != nil {
			t.Fatal(err)
		}
		// Naive softmax over the whole vocabulary, then renormalised.
		var tot float64
		for _, l := range logits {
			tot += math.Exp(float64(l))
		}
		pA, pB := math.Exp(float64(logits['A']))/tot, math.Exp(float64(logits['B']))/tot
		want := pA / (pA + pB)
		if math.Abs(v.PFirst[k]-want) > 1e-5 {
			t.Errorf("order %d: P(first) %.6f in the batch, %.6f alone", k, v.PFirst[k], want)
		}
		if s := v.PFirst[k] + (1 - v.PFirst[k]); math.Abs(s-1) > 1e-12 || v.PFirst[k] <= 0 || v.PFirst[k] >= 1 {
			t.Errorf("order %d: P(A) %v is not a probability", k, v.PFirst[k])
		}
	}
	if math.Abs(v.PFirst[0]-v.PFirst[1]) < 1e-4 {
		t.Errorf("the orders' P(first) %v are too close for this test to tell them apart", v.PFirst)
	}
	if math.Abs(v.PA-(v.PFirst[0]+1-v.PFirst[1])/2) > 1e-12 {
		t.Errorf("PA %v is not the mean of the orders %v", v.PA, v.PFirst)
	}

	// Symmetry: Compare(b, a) mirrors Compare(a, b).
	w, err := j.Compare(ctx, prompt, y, x)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(w.PA-(1-v.PA)) > 1e-9 || math.Abs(w.PFirst[0]-v.PFirst[1]) > 1e-9 || math.Abs(w.PFirst[1]-v.PFirst[0]) > 1e-9 {
		t.Errorf("Compare(b,a) = PA %v PFirst %v; Compare(a,b) = PA %v PFirst %v: not mirrored", w.PA, w.PFirst, v.PA, v.PFirst)
	}
	mirror := map[Choice]Choice{Tie: Tie, ChoiceA: ChoiceB, ChoiceB: ChoiceA}
	if w.Winner != mirror[v.Winner] {
		t.Errorf("winners %v and %v are not mirrored", v.Winner, w.Winner)
	}
	if s := j.Stats(); s.Calls != 2 {
		t.Errorf("%d forward passes, want 2 (one per Compare, both orders batched)", s.Calls)
	}
}

func TestLocalJudgeErrors(t *testing.T) {
	j := tinyJudge(t)
	if _, err := NewLocalJudge(j.M, j.B, pairEnc{}, chat.Format{Builtin: chat.ChatML}, ""); err == nil || !strings.Contains(err.Error(), "no single token for the answer A") {
		t.Errorf("err = %v", err)
	}
	long := strings.Repeat("x", 2000)
	if _, err := j.Compare(context.Background(), "p", long, "y"); !errors.Is(err, ErrTooLong) || !strings.Contains(err.Error(), "context is 1024") {
		t.Errorf("err = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := j.Compare(ctx, "p", "a", "b"); err == nil {
		t.Error("a cancelled context was not reported")
	}
}

func TestLogSumExpAt(t *testing.T) {
	row := []float32{1, -2, 3.5, 0}
	var naive float64
	for _, x := range row {
		naive += math.Exp(float64(x))
	}
	if got := logSumExpAt(row, nil); math.Abs(got-math.Log(naive)) > 1e-12 {
		t.Errorf("all: %v, naive %v", got, math.Log(naive))
	}
	if got, want := logSumExpAt(row, []int32{0, 2}), math.Log(math.Exp(1)+math.Exp(3.5)); math.Abs(got-want) > 1e-12 {
		t.Errorf("subset: %v, naive %v", got, want)
	}
}

// TestCombineMean: the mean of both orders decides; a pure position bias
// stays a tie; a preference smaller than the bias, which CombineOrders
// calls a tie, gives a verdict.
func TestCombineMean(t *testing.T) {
	for _, tc := range []struct {
		ab, ba, margin float64
		want           Choice
	}{
		{1, 1, 0, Tie},
		{0.9, 0.9, 0.01, Tie},
		{0.9, 0.8, 0.01, ChoiceA},
		{0.8, 0.9, 0.01, ChoiceB},
		{0.9, 0.8, 0.1, Tie},
	} {
		if got := CombineMean(tc.ab, tc.ba, tc.margin).Winner; got != tc.want {
			t.Errorf("CombineMean(%v, %v, %v) = %v, want %v", tc.ab, tc.ba, tc.margin, got, tc.want)
		}
	}
	if CombineOrders(0.9, 0.8, 0.01).Winner != Tie {
		t.Error("CombineOrders should call disagreeing orders a tie")
	}
}
