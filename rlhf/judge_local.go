package rlhf

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"llmlab/core/autograd"
	"llmlab/core/chat"
	"llmlab/core/data"
	"llmlab/core/model"
	"llmlab/core/tensor"
)

// LocalJudge is a model in this process used as a judge: it renders the
// question through the chat template with the generation prompt, runs
// one forward pass over both orders at once, and reads the next-token
// logits of the letters. P(first is better) is the softmax over the two
// letters only, so the rest of the vocabulary does not matter; Raw reports
// how much of the whole distribution the letters hold, which tells whether
// the model understood the question at all.
//
// A model with a LoRA adapter judges with it applied (lora.Load wraps the
// model's projections in place). Compare is safe for concurrent use; the
// calls take turns on the one tape.
type LocalJudge struct {
	M        *model.Transformer
	B        tensor.Backend
	Tok      data.Encoder
	Template chat.Format // how questions are rendered: the judge model's own template or a built-in one
	Rubric   string
	// Margin is the tie band: a mean P(a) within Margin of 1/2 is a tie.
	Margin float64
	// MeanOnly decides on the mean of the two orders alone, without
	// requiring them to agree: a position bias cancels in the mean, and a
	// weak judge whose preference is smaller than its bias still gives
	// verdicts (CombineMean).
	MeanOnly bool

	mu    sync.Mutex
	tape  *autograd.Tape
	ids   [2][]int32 // token ids that spell A and B (e.g. "A" and " A")
	calls int64
}

// ErrTooLong is returned (wrapped) by LocalJudge.Compare when the question
// does not fit the judge's context.
var ErrTooLong = errors.New("too long for the judge's context")

// NewLocalJudge returns a judge running m. It finds the tokens that spell
// the answers, "A" or " A" (and "B" or " B"); it fails when neither
// spelling of a letter is a single token, since one forward pass can then
// not score it.
func NewLocalJudge(m *model.Transformer, b tensor.Backend, tok data.Encoder, tmpl chat.Format, rubric string) (*LocalJudge, error) {
	j := &LocalJudge{M: m, B: b, Tok: tok, Template: tmpl, Rubric: rubric, Margin: 0.05}
	for k, letter := range [2]string{"A", "B"} {
		seen := map[int32]bool{}
		var tried []string
		for _, v := range []string{letter, " " + letter} {
			ids := tok.Encode(v, false)
			tried = append(tried, fmt.Sprintf("%q -> %d tokens", v, len(ids)))
			if len(ids) == 1 && !seen[ids[0]] && int(ids[0]) < m.Cfg.VocabSize {
				seen[ids[0]] = true
				j.ids[k] = append(j.ids[k], ids[0])
			}
		}
		if len(j.ids[k]) == 0 {
			return nil, fmt.Errorf("judge: the tokenizer has no single token for the answer %s (%v)", letter, tried)
		}
	}
	for _, a := range j.ids[0] {
		for _, bb := range j.ids[1] {
			if a == bb {
				return nil, fmt.Errorf("judge: A and B encode to the same token %d", a)
			}
		}
	}
	j.tape = autograd.NewTape(b)
	j.tape.NoGrad = true
	return j, nil
}

// Overhead is the number of tokens the question takes before any prompt
// or answer is put in: the rubric, the labels and the chat template.
func (j *LocalJudge) Overhead() (int, error) {
	ids, err := data.EncodeChatPrompt(j.Tok, j.Template, []chat.Message{{Role: chat.RoleUser, Content: JudgeQuestion(j.Rubric, "", "", "")}})
	return len(ids), err
}

// ChoiceTokens returns the token ids that spell A and B.
func (j *LocalJudge) ChoiceTokens() (a, b []int32) { return j.ids[0], j.ids[1] }

// Stats reports the forward passes run (one per Compare).
func (j *LocalJudge) Stats() JudgeStats {
	j.mu.Lock()
	defer j.mu.Unlock()
	return JudgeStats{Calls: j.calls}
}

// Compare asks in both orders in one batch of two rows.
func (j *LocalJudge) Compare(ctx context.Context, prompt, a, b string) (Verdict, error) {
	return j.CompareRef(ctx, prompt, "", a, b)
}

// CompareRef is Compare with a reference answer in the question
// (JudgeQuestionRef).
func (j *LocalJudge) CompareRef(ctx context.Context, prompt, reference, a, b string) (Verdict, error) {
	if err := ctx.Err(); err != nil {
		return Verdict{}, err
	}
	var rows [2][]int32
	for k, pair := range [2][2]string{{a, b}, {b, a}} {
		q := JudgeQuestionRef(j.Rubric, prompt, reference, pair[0], pair[1])
		ids, err := data.EncodeChatPrompt(j.Tok, j.Template, []chat.Message{{Role: chat.RoleUser, Content: q}})
		if err != nil {
			return Verdict{}, fmt.Errorf("judge: %w", err)
		}
		if len(ids) > j.M.Cfg.MaxPos {
			return Verdict{}, fmt.Errorf("judge: the question is %d tokens; the judge's context is %d: %w", len(ids), j.M.Cfg.MaxPos, ErrTooLong)
		}
		rows[k] = ids
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.calls++
	logits, err := j.lastLogits(rows[:])
	if err != nil {
		return Verdict{}, err
	}
	V := j.M.Cfg.VocabSize
	var pFirst [2]float64
	var raw [2]string
	for k := range rows {
		row := logits[k*V : (k+1)*V]
		la, lb := logSumExpAt(row, j.ids[0]), logSumExpAt(row, j.ids[1])
		pFirst[k] = 1 / (1 + math.Exp(lb-la)) // softmax over {A, B}
		all := logSumExpAt(row, nil)
		raw[k] = fmt.Sprintf("P(A)=%.4f P(B)=%.4f (of the whole vocabulary: A %.4f, B %.4f)",
			pFirst[k], 1-pFirst[k], math.Exp(la-all), math.Exp(lb-all))
	}
	v := CombineOrders(pFirst[0], pFirst[1], j.Margin)
	if j.MeanOnly {
		v = CombineMean(pFirst[0], pFirst[1], j.Margin)
	}
	v.Raw = raw
	return v, nil
}

// lastLogits runs the rows (left-padded into one batch) and returns the
// logits at each row's last position: (len(rows), V), a copy.
func (j *LocalJudge) lastLogits(rows [][]int32) ([]float32, error) {
	nb, T := len(rows), 0
	for _, r := range rows {
		T = max(T, len(r))
	}
	ids := make([]int32, nb*T)
	pos := make([]int32, nb*T)
	seg := make([]int32, nb*T)
	for b, r := range rows {
		pad := T - len(r)
		for i, id := range r {
			ids[b*T+pad+i], pos[b*T+pad+i], seg[b*T+pad+i] = id, int32(i), 1
		}
	}
	t := j.tape
	t.Reset()
	defer t.Reset()
	h, err := j.M.Hidden(t, model.Inputs{B: nb, T: T, IDs: ids, Pos: pos, Seg: seg}) // (nb*T, C)
	if err != nil {
		return nil, fmt.Errorf("judge: %w", err)
	}
	C := h.Value.Cols()
	last := t.Alloc(nb, C) // (nb, C)
	tensor.OnHost(func() {
		for b := 0; b < nb; b++ {
			copy(last.F32[b*C:(b+1)*C], h.Value.F32[(b*T+T-1)*C:(b*T+T)*C])
		}
	}, last, h.Value)
	logits := j.M.Logits(t, t.Const(last)).Value // (nb, V)
	return append([]float32(nil), logits.Float32s()...), nil
}

// logSumExpAt is log Σ exp(row[i]) over ids (all of row when ids is nil),
// in float64.
func logSumExpAt(row []float32, ids []int32) float64 {
	m := math.Inf(-1)
	each := func(f func(x float64)) {
		if ids == nil {
			for _, x := range row {
				f(float64(x))
			}
			return
		}
		for _, id := range ids {
			f(float64(row[id]))
		}
	}
	each(func(x float64) { m = math.Max(m, x) })
	var s float64
	each(func(x float64) { s += math.Exp(x - m) })
	return m + math.Log(s)
}
