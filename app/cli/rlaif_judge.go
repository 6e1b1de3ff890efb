package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"llmlab/core/chat"
	"llmlab/core/data"
	"llmlab/rlhf"
)

// Training a local judge. A small model asked "which answer is better,
// A or B?" knows no better than to say whichever letter its weights lean
// to (the untuned demo model gives P(A) within 0.002 of 1/2 on every
// question). `rlaif judge-data` turns labelled preference pairs into SFT
// records whose user turn is exactly the question LocalJudge renders
// (rlhf.JudgeQuestion with the same rubric and judgeText) and whose
// assistant turn is the letter of the chosen answer; every pair is written
// in both orders, once with the chosen answer as A and once as B, so the
// letter's position carries no information and a judge tuned on it cannot
// learn a position bias. `rlaif judge-eval` then asks a judge about
// held-out labelled pairs, in both orders as rlaif does, and reports how
// often its verdict is the labelled one.

// judgeRecord is one line of judge-data output: a chat record that
// `llmlab sft` reads, trained on the verdict letter.
type judgeRecord struct {
	Messages []chat.Message `json:"messages"`
}

// answerText is a completion as the judge reads it: the messages'
// contents, one per line.
func answerText(msgs []chat.Message) string {
	parts := make([]string, len(msgs))
	for i, m := range msgs {
		parts[i] = m.Content
	}
	return strings.Join(parts, "\n")
}

// judgeExamples renders each preference record as the two judge questions
// (chosen first, then rejected first) with the letter of the chosen
// answer as the reply.
//
// Example: prompt "What is 2 plus 2?", chosen "4", rejected "5" gives
// JudgeQuestion(rubric, "What is 2 plus 2?", "4", "5") -> "A" and
// JudgeQuestion(rubric, "What is 2 plus 2?", "5", "4") -> "B".
//
// With refField, every question carries the record's reference answer
// from that field (rlhf.JudgeQuestionRef, as rlaif --reference-field
// asks it); the off-topic pairs carry their own record's reference, the
// answer to the question asked.
//
// With offTopic, each record also gives a pair whose rejected answer is
// the chosen answer of the next record of the same "task" (the file's
// order, wrapping around; records without a task are one group), when
// that answer differs: a well-formed answer to another question. Labelled
// pairs often differ only in tone or length, and a judge trained on them
// alone learns nothing about whether an answer answers the question,
// which is how a weak policy's samples mostly differ.
func judgeExamples(rubric string, recs []data.Record, offTopic bool, refField, name string) ([]judgeRecord, error) {
	var next []int // next[i]: the next record of i's task, or -1
	if offTopic {
		next = make([]int, len(recs))
		last := map[string]int{} // task -> the latest record seen
		first := map[string]int{}
		for i := range recs {
			next[i] = -1
			task := string(recs[i].Extra["task"])
			if j, ok := last[task]; ok {
				next[j] = i
			} else {
				first[task] = i
			}
			last[task] = i
		}
		for task, j := range last {
			if f := first[task]; f != j {
				next[j] = f
			}
		}
	}
	out := make([]judgeRecord, 0, 4*len(recs))
	add := func(q, ref, chosen, rejected string) {
		for _, o := range []struct{ first, second, letter string }{{chosen, rejected, "A"}, {rejected, chosen, "B"}} {
			out = append(out, judgeRecord{Messages: []chat.Message{
				{Role: chat.RoleUser, Content: rlhf.JudgeQuestionRef(rubric, q, ref, o.first, o.second)},
				{Role: chat.RoleAssistant, Content: o.letter},
			}})
		}
	}
	for i, r := range recs {
		q, c := judgeText(r.Prompt), answerText(r.Completion)
		ref := ""
		if refField != "" {
			var err error
			if ref, err = recordReference(r, refField, name); err != nil {
				return nil, err
			}
		}
		add(q, ref, c, answerText(r.Rejected))
		if offTopic && next[i] >= 0 {
			if other := answerText(recs[next[i]].Completion); strings.TrimSpace(other) != strings.TrimSpace(c) {
				add(q, ref, c, other)
			}
		}
	}
	return out, nil
}

// readPrefs reads a preference file for judge-data and judge-eval, the
// first limit records (0: all).
func readPrefs(path string, limit int) ([]data.Record, error) {
	ds, err := data.LoadJSONL(path)
	if err != nil {
		return nil, BadInput(err)
	}
	if !ds.Shape.Pairwise() {
		return nil, BadInput(fmt.Errorf("%s holds %s records; want preference pairs {\"prompt\",\"chosen\",\"rejected\"}", path, ds.Shape))
	}
	recs := ds.Records
	if limit > 0 && limit < len(recs) {
		recs = recs[:limit]
	}
	return recs, nil
}

// runJudgeData is `llmlab rlaif judge-data`.
func runJudgeData(e *Env) error {
	fs := newFlags(e, "rlaif judge-data")
	prefs := fs.String("prefs", "", "labelled preference pairs, JSONL {\"prompt\",\"chosen\",\"rejected\"} (required; keep the pairs you evaluate on out)")
	out := fs.String("out", "", "SFT chat records to write, two per pair (required)")
	rubricPath := fs.String("rubric", "", "file with the rubric the judge will be asked with (the same as rlaif's --rubric); default: the built-in one")
	limit := fs.Int("limit", 0, "use the first N pairs only (0: all)")
	offTopic := fs.Bool("off-topic", false, "also teach that an answer to another question loses: per pair, the chosen answer against the next same-\"task\" pair's chosen answer")
	refField := fs.String("reference-field", "", "put each pair's reference answer, from this field of the record (e.g. answer), in the question, as rlaif --reference-field asks it; a record without it is an error")
	if err := parse(fs, e.Args); err != nil {
		return err
	}
	if *prefs == "" || *out == "" {
		return Usagef("usage: llmlab rlaif judge-data --prefs FILE --out FILE [--rubric FILE] [--limit N] [--off-topic] [--reference-field FIELD]")
	}
	if *limit < 0 {
		return Usagef("--limit must be at least 0, got %d", *limit)
	}
	rubric, err := readRubric(*rubricPath)
	if err != nil {
		return err
	}
	recs, err := readPrefs(*prefs, *limit)
	if err != nil {
		return err
	}
	exs, err := judgeExamples(rubric, recs, *offTopic, *refField, *prefs)
	if err != nil {
		return err
	}
	if dir := filepath.Dir(*out); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return BadInput(fmt.Errorf("--out: %w", err))
		}
	}
	f, err := os.Create(*out)
	if err != nil {
		return BadInput(fmt.Errorf("--out: %w", err))
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, r := range exs {
		if err := enc.Encode(r); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	what := "labelled pairs"
	if *offTopic {
		what += " and their off-topic pairs"
	}
	if *refField != "" {
		what += fmt.Sprintf(", with the reference answers in %q", *refField)
	}
	fmt.Fprintf(e.Stdout, "wrote %d judge examples (%d %s, both orders) to %s\n", len(exs), len(recs), what, *out)
	return nil
}

// judgeEvalStats is judge-eval's summary.
type judgeEvalStats struct {
	Pairs   int `json:"pairs"`
	Agree   int `json:"agree"`   // verdict for the chosen answer
	Against int `json:"against"` // verdict for the rejected answer
	Ties    int `json:"ties"`
	TooLong int `json:"too_long"`
	// Accuracy is Agree over the pairs judged (ties count as misses);
	// OrderAccuracy is the share of single orders (two per pair) whose
	// letter probabilities point at the chosen answer.
	Accuracy      float64 `json:"accuracy"`
	OrderAccuracy float64 `json:"order_accuracy"`
	MeanPChosen   float64 `json:"mean_p_chosen"`
	ElapsedS      float64 `json:"elapsed_s,omitempty"`
	// By holds the same figures for each value of the --by field (a
	// record without the field counts under "").
	By map[string]*judgeEvalStats `json:"by,omitempty"`

	orderHits int
}

// finish turns the sums into the shares.
func (s *judgeEvalStats) finish() {
	if s.Pairs > 0 {
		s.Accuracy = float64(s.Agree) / float64(s.Pairs)
		s.OrderAccuracy = float64(s.orderHits) / float64(2*s.Pairs)
		s.MeanPChosen /= float64(s.Pairs)
	}
	for _, g := range s.By {
		g.finish()
	}
}

// line is the figures in words.
func (s *judgeEvalStats) line() string {
	return fmt.Sprintf("%d/%d = %.1f%% (%d against, %d ties, %d too long); single orders %.1f%%; mean P(chosen) %.3f",
		s.Agree, s.Pairs, 100*s.Accuracy, s.Against, s.Ties, s.TooLong, 100*s.OrderAccuracy, s.MeanPChosen)
}

// groupOf is a record's value of field as a group name: a string's text,
// anything else as written, "" when the record has no such field.
func groupOf(r data.Record, field string) string {
	raw, ok := r.Extra[field]
	if !ok {
		return ""
	}
	var str string
	if json.Unmarshal(raw, &str) == nil {
		return str
	}
	return string(raw)
}

// tally adds one verdict on Compare(prompt, chosen, rejected).
func (s *judgeEvalStats) tally(v rlhf.Verdict) {
	s.Pairs++
	switch v.Winner {
	case rlhf.ChoiceA:
		s.Agree++
	case rlhf.ChoiceB:
		s.Against++
	default:
		s.Ties++
	}
	s.MeanPChosen += v.PA
	if v.PFirst[0] > 0.5 { // chosen shown first, judged better
		s.orderHits++
	}
	if v.PFirst[1] < 0.5 { // rejected shown first, judged worse
		s.orderHits++
	}
}

// runJudgeEval is `llmlab rlaif judge-eval`.
func runJudgeEval(e *Env) error {
	fs := newFlags(e, "rlaif judge-eval")
	var jf modelFlags
	fs.StringVar(&jf.model, "judge", "", "the judge: a model folder, or demo (required)")
	fs.StringVar(&jf.adapter, "judge-adapter", "", "PEFT adapter to apply to the judge (a judge tuned on rlaif judge-data)")
	fs.StringVar(&jf.device, "device", "auto", "compute device: auto, cpu, or blas")
	fs.IntVar(&jf.threads, "threads", 0, "CPU threads (0: all cores)")
	judgeTmpl := fs.String("judge-template", "", "chat template of the judge (default: its own): "+chat.Names())
	prefs := fs.String("prefs", "", "held-out labelled preference pairs, JSONL {\"prompt\",\"chosen\",\"rejected\"} (required)")
	rubricPath := fs.String("rubric", "", "file with the judge's rubric (as for rlaif); default: the built-in one")
	limit := fs.Int("limit", 0, "use the first N pairs only (0: all)")
	margin := fs.Float64("tie-margin", 0.05, "a verdict whose P(a) is within this of 0.5 is a tie (as for rlaif)")
	judgeMean := fs.Bool("judge-mean", false, "decide on the mean of both orders without requiring them to agree (as for rlaif)")
	refField := fs.String("reference-field", "", "show the judge each pair's reference answer, from this field of the record (e.g. answer), as rlaif --reference-field does; a record without it is an error")
	by := fs.String("by", "", "also report the agreement for each value of this field of the records (e.g. rejected_kind); JSON: \"by\"")
	jsonOut := fs.Bool("json", false, "print the summary as one JSON object")
	if err := parse(fs, e.Args); err != nil {
		return err
	}
	switch {
	case jf.model == "" || *prefs == "":
		return Usagef("usage: llmlab rlaif judge-eval --judge MODEL [--judge-adapter DIR] --prefs FILE [--rubric FILE] [--reference-field FIELD] [--by FIELD]")
	case *limit < 0:
		return Usagef("--limit must be at least 0, got %d", *limit)
	case *margin < 0 || *margin >= 0.5:
		return Usagef("--tie-margin must be in [0, 0.5), got %v", *margin)
	}
	rubric, err := readRubric(*rubricPath)
	if err != nil {
		return err
	}
	recs, err := readPrefs(*prefs, *limit)
	if err != nil {
		return err
	}
	refs := make([]string, len(recs))
	if *refField != "" {
		for i, r := range recs {
			if refs[i], err = recordReference(r, *refField, *prefs); err != nil {
				return err
			}
		}
	}
	b, err := jf.backend(e)
	if err != nil {
		return err
	}
	lj, err := loadLocalJudge(&jf, b, *judgeTmpl, rubric)
	if err != nil {
		return err
	}
	lj.Margin, lj.MeanOnly = *margin, *judgeMean
	start := time.Now()
	var st judgeEvalStats
	if *by != "" {
		st.By = map[string]*judgeEvalStats{}
	}
	for i, r := range recs {
		var g *judgeEvalStats
		if st.By != nil {
			k := groupOf(r, *by)
			if g = st.By[k]; g == nil {
				g = &judgeEvalStats{}
				st.By[k] = g
			}
		}
		v, err := lj.CompareRef(e.Ctx, judgeText(r.Prompt), refs[i], answerText(r.Completion), answerText(r.Rejected))
		if errors.Is(err, rlhf.ErrTooLong) {
			st.TooLong++
			if g != nil {
				g.TooLong++
			}
			continue
		}
		if err != nil {
			return err
		}
		st.tally(v)
		if g != nil {
			g.tally(v)
		}
	}
	if st.Pairs == 0 {
		return BadInput(fmt.Errorf("%s: no pair fits the judge's context (%d too long)", *prefs, st.TooLong))
	}
	st.finish()
	st.ElapsedS = time.Since(start).Seconds()
	if *jsonOut {
		return json.NewEncoder(e.Stdout).Encode(st)
	}
	fmt.Fprintf(e.Stdout, "judge agreement with %s: %s (%.1fs)\n", *prefs, st.line(), st.ElapsedS)
	keys := make([]string, 0, len(st.By))
	for k := range st.By {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(e.Stdout, "  %s=%s: %s\n", *by, k, st.By[k].line())
	}
	return nil
}
