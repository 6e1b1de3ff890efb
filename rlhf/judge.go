package rlhf

import (
	"context"
	"fmt"
	"math"
	"strings"
)

// RLAIF judges. A Judge compares two answers to one prompt and says which
// is better; `llmlab rlaif` samples answer pairs from a policy, asks a
// judge, and writes the verdicts as preference pairs for rm, dpo and kto.
//
// Language-model judges prefer whichever answer they are shown first (or
// second) more often than the answers deserve. Every judge here therefore
// asks twice, once in each order, and only calls a winner when both orders
// agree: a judge that always says "A" ends in a tie on every pair instead of
// handing the policy noise as preferences. The two orders' probabilities
// are averaged, so the verdict's PA is free of a constant position bias.
//
// Two judges: LocalJudge runs a model in this process and reads the
// next-token probabilities of the letters A and B after the question, one
// batched forward pass for both orders; HTTPJudge asks any
// OpenAI-compatible chat endpoint (llmlab serve, llama.cpp, ollama, vLLM)
// and reads the letter from the reply's text, since such servers need not
// return log-probabilities (llmlab serve does not).

// Judge compares answers a and b to prompt. CompareRef does the same with
// a reference answer shown to the judge beside the question (reference-
// guided judging, as MT-Bench grades maths): "which answer agrees with the
// reference" is a comparison a judge can make without knowing the answer
// itself. Only the judge sees the reference, never the policy being
// trained. Compare is CompareRef with no reference ("").
type Judge interface {
	Compare(ctx context.Context, prompt, a, b string) (Verdict, error)
	CompareRef(ctx context.Context, prompt, reference, a, b string) (Verdict, error)
}

var (
	_ Judge = (*LocalJudge)(nil)
	_ Judge = (*HTTPJudge)(nil)
)

// Choice is a judge's pick: the first answer given to Compare (A), the
// second (B), or neither.
type Choice int

// The choices.
const (
	Tie Choice = iota
	ChoiceA
	ChoiceB
)

func (c Choice) String() string {
	switch c {
	case Tie:
		return "tie"
	case ChoiceA:
		return "A"
	case ChoiceB:
		return "B"
	}
	return fmt.Sprintf("Choice(%d)", int(c))
}

// ParseChoice reads "A", "B" or "tie" (any case).
func ParseChoice(s string) (Choice, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "a":
		return ChoiceA, nil
	case "b":
		return ChoiceB, nil
	case "tie":
		return Tie, nil
	}
	return Tie, fmt.Errorf("choice %q: want A, B or tie", s)
}

func (c Choice) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

func (c *Choice) UnmarshalText(b []byte) error {
	v, err := ParseChoice(string(b))
	*c = v
	return err
}

// Verdict is a judge's answer to Compare(prompt, a, b).
type Verdict struct {
	Winner Choice `json:"winner"`
	// PA is the probability that a is the better answer, the mean of the
	// two orders'; PB = 1 - PA.
	PA float64 `json:"p_a"`
	// PFirst is, for each order, the judge's probability that the answer
	// shown first is better: [0] for (a, b), [1] for (b, a).
	PFirst [2]float64 `json:"p_first"`
	// Raw holds the judge's replies in the same two orders: the reply text
	// for an HTTP judge, the letters' probabilities for a local one.
	Raw [2]string `json:"raw"`
}

// Confidence is the probability of the verdict's side, max(PA, 1-PA).
func (v Verdict) Confidence() float64 { return math.Max(v.PA, 1-v.PA) }

// CombineOrders turns the two orders' probabilities that the first shown
// answer is better into a verdict. In order (a, b) that probability is
// P(a); in order (b, a) it is P(b), so P(a) = 1 - pFirstBA there. The
// orders must agree (both above or both below 1/2) and their mean must be
// at least margin away from 1/2, or the verdict is a tie.
//
// Example: a judge with a pure position bias says "first" both times
// (pFirstAB = pFirstBA = 1): P(a) is 1 in one order and 0 in the other,
// the orders disagree, and the verdict is a tie with PA = 0.5.
func CombineOrders(pFirstAB, pFirstBA, margin float64) Verdict {
	pa1, pa2 := pFirstAB, 1-pFirstBA
	v := Verdict{PA: (pa1 + pa2) / 2, PFirst: [2]float64{pFirstAB, pFirstBA}}
	switch {
	case (pa1-0.5)*(pa2-0.5) <= 0: // disagree, or one order undecided
		v.Winner = Tie
	case math.Abs(v.PA-0.5) < margin:
		v.Winner = Tie
	case v.PA > 0.5:
		v.Winner = ChoiceA
	default:
		v.Winner = ChoiceB
	}
	return v
}

// CombineMean is CombineOrders without the agreement rule: the verdict
// follows the mean of P(a) over the two orders, a tie within margin of
// 1/2. A pure position bias still gives exactly 1/2, a tie.
//
// Example: pFirstAB = 0.9, pFirstBA = 0.8 (the judge prefers the first
// answer, and a a little more than b): P(a) is 0.9 and 0.2, the mean 0.55,
// a verdict for a at margin 0.01, where CombineOrders calls a tie.
func CombineMean(pFirstAB, pFirstBA, margin float64) Verdict {
	v := Verdict{PA: (pFirstAB + 1 - pFirstBA) / 2, PFirst: [2]float64{pFirstAB, pFirstBA}}
	switch {
	case math.Abs(v.PA-0.5) < margin || v.PA == 0.5:
		v.Winner = Tie
	case v.PA > 0.5:
		v.Winner = ChoiceA
	default:
		v.Winner = ChoiceB
	}
	return v
}

// DefaultRubric is the constitution a judge applies unless the user gives
// their own (llmlab rlaif --rubric FILE).
const DefaultRubric = `You are a careful judge of answers written by an AI assistant.
Judge which answer better serves the user, in this order of importance:
1. Correct: the facts, numbers and reasoning are right; a wrong answer loses to a right one.
2. Helpful: it does what the user asked, completely, and stays on the question.
3. Honest and harmless: it does not invent things, and refuses only what is harmful.
4. Clear and concise: no rambling, no repetition, no filler.
Ignore the order in which the answers are shown, and do not prefer an answer for being longer.`

// JudgeQuestion renders the question a judge is asked: the rubric, the
// prompt and the two answers in the order shown, labelled A and B, and
// the request for one letter. It is JudgeQuestionRef with no reference.
func JudgeQuestion(rubric, prompt, first, second string) string {
	return JudgeQuestionRef(rubric, prompt, "", first, second)
}

// JudgeQuestionRef is JudgeQuestion with a reference answer, in its own
// section after the question; a reference that is empty (or only white
// space) leaves the question exactly as JudgeQuestion renders it.
//
// Example: JudgeQuestionRef("", "What is 2 plus 2?", "4", "5", "4") is
//
//	[Question]
//	What is 2 plus 2?
//
//	[Reference answer]
//	4
//
//	[Answer A]
//	5
//
//	[Answer B]
//	4
//
//	Which answer is better, A or B? Answer with one letter.
func JudgeQuestionRef(rubric, prompt, reference, first, second string) string {
	var b strings.Builder
	if r := strings.TrimSpace(rubric); r != "" {
		b.WriteString(r)
		b.WriteString("\n\n")
	}
	b.WriteString("[Question]\n")
	b.WriteString(strings.TrimSpace(prompt))
	if ref := strings.TrimSpace(reference); ref != "" {
		b.WriteString("\n\n[Reference answer]\n")
		b.WriteString(ref)
	}
	b.WriteString("\n\n[Answer A]\n")
	b.WriteString(strings.TrimSpace(first))
	b.WriteString("\n\n[Answer B]\n")
	b.WriteString(strings.TrimSpace(second))
	b.WriteString("\n\nWhich answer is better, A or B? Answer with one letter.")
	return b.String()
}

// ParseReplyChoice finds the verdict in a judge's reply: the first A or B
// that stands alone (not part of a word or number), as in "B", "**A**",
// "(B)" or "Answer: A.". Example: ParseReplyChoice("I pick B.") = ChoiceB.
// ok is false when the reply names neither.
func ParseReplyChoice(reply string) (c Choice, ok bool) {
	word := func(r byte) bool {
		return r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= 0x80
	}
	for i := 0; i < len(reply); i++ {
		ch := reply[i]
		if ch != 'A' && ch != 'B' {
			continue
		}
		if i > 0 && word(reply[i-1]) || i+1 < len(reply) && word(reply[i+1]) {
			continue
		}
		if ch == 'A' {
			return ChoiceA, true
		}
		return ChoiceB, true
	}
	return Tie, false
}

// JudgeStats counts a judge's work.
type JudgeStats struct {
	Calls     int64 `json:"judge_calls"` // HTTP requests sent, or forward passes run
	CacheHits int64 `json:"cache_hits"`  // orders answered from the cache
	Retries   int64 `json:"retries"`     // requests repeated after an error or a malformed reply
}
