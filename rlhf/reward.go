package rlhf

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Reward scores a completion against the expected answer with a rule, for
// GRPO on verifiable tasks. String returns the spec ParseReward accepts.
type Reward interface {
	Score(completion, answer string) float32
	String() string
}

var (
	_ Reward = ExactMatch{}
	_ Reward = NumberMatch{}
	_ Reward = (*Regex)(nil)
	_ Reward = LengthPenalty{}
	_ Reward = Sum(nil)
)

// ExactMatch scores 1 when the completion equals the answer after trimming
// surrounding white space (and, with FoldCase, ignoring case), else 0.
type ExactMatch struct{ FoldCase bool }

func (e ExactMatch) Score(completion, answer string) float32 {
	c, a := strings.TrimSpace(completion), strings.TrimSpace(answer)
	if c == a || (e.FoldCase && strings.EqualFold(c, a)) {
		return 1
	}
	return 0
}

func (e ExactMatch) String() string {
	if e.FoldCase {
		return "exact-fold"
	}
	return "exact"
}

var numberRE = regexp.MustCompile(`-?\d[\d,]*(?:\.\d+)?|-?\.\d+`)

// LastNumber returns the last number written in s ("12", "-3.5",
// "1,234"), with thousands separators dropped, and whether there was one.
// Example: LastNumber("3 cats and 4 dogs make 7.") = 7, true.
func LastNumber(s string) (float64, bool) {
	all := numberRE.FindAllString(s, -1)
	for i := len(all) - 1; i >= 0; i-- {
		v, err := strconv.ParseFloat(strings.ReplaceAll(all[i], ",", ""), 64)
		if err == nil {
			return v, true
		}
	}
	return 0, false
}

// NumberMatch scores 1 when the last number in the completion equals the
// last number in the answer (within Tol, absolute), else 0; a completion
// without a number scores 0.
type NumberMatch struct{ Tol float64 }

func (n NumberMatch) Score(completion, answer string) float32 {
	want, ok := LastNumber(answer)
	if !ok {
		return 0
	}
	got, ok := LastNumber(completion)
	if ok && math.Abs(got-want) <= n.Tol {
		return 1
	}
	return 0
}

func (n NumberMatch) String() string {
	if n.Tol != 0 {
		return "number:" + strconv.FormatFloat(n.Tol, 'g', -1, 64)
	}
	return "number"
}

// Regex scores 1 when the completion matches the pattern (a format check,
// e.g. `^<think>[\s\S]*</think>\s*<answer>[\s\S]*</answer>$`), else 0.
type Regex struct{ Re *regexp.Regexp }

func (r *Regex) Score(completion, _ string) float32 {
	if r.Re.MatchString(completion) {
		return 1
	}
	return 0
}

func (r *Regex) String() string { return "regex:" + r.Re.String() }

// ThinkAnswerFormat is the reasoning format the spec "format" checks: a
// <think> block, then an <answer> block, nothing else.
const ThinkAnswerFormat = `^\s*<think>[\s\S]*?</think>\s*<answer>[\s\S]*?</answer>\s*$`

// LengthPenalty scores −Coef for every character (rune) the completion has
// beyond Max, and 0 up to Max.
type LengthPenalty struct {
	Max  int
	Coef float32
}

func (l LengthPenalty) Score(completion, _ string) float32 {
	over := utf8.RuneCountInString(completion) - l.Max
	if over <= 0 {
		return 0
	}
	return -l.Coef * float32(over)
}

func (l LengthPenalty) String() string {
	return fmt.Sprintf("length:%d:%s", l.Max, strconv.FormatFloat(float64(l.Coef), 'g', -1, 32))
}

// Term is one weighted reward of a Sum.
type Term struct {
	Weight float32
	Reward Reward
}

// Sum scores the weighted sum of its terms.
type Sum []Term

func (s Sum) Score(completion, answer string) float32 {
	var tot float32
	for _, t := range s {
		tot += t.Weight * t.Reward.Score(completion, answer)
	}
	return tot
}

func (s Sum) String() string {
	parts := make([]string, len(s))
	for i, t := range s {
		parts[i] = t.Reward.String()
		if t.Weight != 1 {
			parts[i] = strconv.FormatFloat(float64(t.Weight), 'g', -1, 32) + "*" + parts[i]
		}
	}
	return strings.Join(parts, " + ")
}

// ParseReward reads one reward spec, as given on the command line (one
// --reward flag each):
//
//	exact | exact-fold        ExactMatch
//	number[:TOL]              NumberMatch
//	regex:PATTERN             Regex (the rest of the spec is the pattern)
//	format                    Regex with ThinkAnswerFormat
//	length:MAX[:COEF]         LengthPenalty (COEF defaults to 0.01)
//
// A weight may prefix any of them: "0.5*format".
func ParseReward(spec string) (Term, error) {
	w := float32(1)
	body := strings.TrimSpace(spec)
	if i := strings.IndexByte(body, '*'); i > 0 && !strings.HasPrefix(body, "regex:") {
		f, err := strconv.ParseFloat(strings.TrimSpace(body[:i]), 32)
		if err != nil {
			return Term{}, fmt.Errorf("reward %q: bad weight %q", spec, body[:i])
		}
		w, body = float32(f), strings.TrimSpace(body[i+1:])
	}
	name, arg, hasArg := strings.Cut(body, ":")
	var r Reward
	switch name {
	case "exact", "exact-fold":
		if hasArg {
			return Term{}, fmt.Errorf("reward %q: %s takes no argument", spec, name)
		}
		r = ExactMatch{FoldCase: name == "exact-fold"}
	case "number":
		n := NumberMatch{}
		if hasArg {
			tol, err := strconv.ParseFloat(arg, 64)
			if err != nil || tol < 0 {
				return Term{}, fmt.Errorf("reward %q: bad tolerance %q", spec, arg)
			}
			n.Tol = tol
		}
		r = n
	case "regex", "format":
		pat := arg
		if name == "format" {
			if hasArg {
				return Term{}, fmt.Errorf("reward %q: format takes no argument (use regex:PATTERN)", spec)
			}
			pat = ThinkAnswerFormat
		} else if !hasArg || arg == "" {
			return Term{}, fmt.Errorf("reward %q: regex needs a pattern, regex:PATTERN", spec)
		}
		re, err := regexp.Compile(pat)
		if err != nil {
			return Term{}, fmt.Errorf("reward %q: %w", spec, err)
		}
		r = &Regex{Re: re}
	case "length":
		maxS, coefS, hasCoef := strings.Cut(arg, ":")
		mx, err := strconv.Atoi(maxS)
		if !hasArg || err != nil || mx < 0 {
			return Term{}, fmt.Errorf("reward %q: want length:MAX[:COEF] with MAX >= 0", spec)
		}
		l := LengthPenalty{Max: mx, Coef: 0.01}
		if hasCoef {
			c, err := strconv.ParseFloat(coefS, 32)
			if err != nil {
				return Term{}, fmt.Errorf("reward %q: bad coefficient %q", spec, coefS)
			}
			l.Coef = float32(c)
		}
		r = l
	default:
		return Term{}, fmt.Errorf("reward %q: unknown reward %q (want exact, exact-fold, number, regex, format or length)", spec, name)
	}
	return Term{Weight: w, Reward: r}, nil
}

// ParseRewards parses each spec with ParseReward and returns their Sum.
func ParseRewards(specs ...string) (Sum, error) {
	if len(specs) == 0 {
		return nil, fmt.Errorf("no reward given (e.g. --reward exact)")
	}
	s := make(Sum, 0, len(specs))
	for _, sp := range specs {
		t, err := ParseReward(sp)
		if err != nil {
			return nil, err
		}
		s = append(s, t)
	}
	return s, nil
}
