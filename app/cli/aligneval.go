package cli

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"

	"llmlab/assets"
	"llmlab/core/chat"
	"llmlab/core/data"
	"llmlab/core/data/demo"
	"llmlab/core/generate"
	"llmlab/core/model"
	"llmlab/core/tensor"
	"llmlab/rlhf"
)

// alignReport is what align-eval measures of one policy against its
// reference (usually the SFT policy it started from).
type alignReport struct {
	Label       string  `json:"label,omitempty"`
	N           int     `json:"n"`
	WinRate     float64 `json:"win_rate"`     // RM(policy) > RM(ref), ties half; -1 without --reward-model
	Ties        float64 `json:"ties"`         // fraction of equal RM scores (mostly identical answers)
	RewardMean  float64 `json:"reward"`       // mean RM score of the policy's answers
	RefReward   float64 `json:"ref_reward"`   // and of the reference's
	Accuracy    float64 `json:"accuracy"`     // exact match of the policy's answers
	RefAccuracy float64 `json:"ref_accuracy"` // and of the reference's
	Chatty      float64 `json:"chatty"`       // answers with 3 or more words beyond the reference answer's (rude or rambling)
	RefChatty   float64 `json:"ref_chatty"`   // and the reference's
	KL          float64 `json:"kl"`           // per answer token: mean log p_policy − log p_ref over the policy's answers
	KLSeq       float64 `json:"kl_seq"`       // per answer: the same summed over its tokens
	Length      float64 `json:"length"`       // mean answer tokens of the policy
	RefLength   float64 `json:"ref_length"`   // and of the reference
}

// answers are greedy replies to a list of prompts.
type answers struct {
	text []string  // trimmed, cut at a stop string
	ids  [][]int32 // the tokens the model produced, with EOS when it stopped on EOS
}

// greedyAnswers answers each prompt greedily, in chunks.
func greedyAnswers(e *Env, l *loaded, b tensor.Backend, tmpl chat.Format, prompts [][]int32, maxTok int) (answers, error) {
	g := generate.New(l.M, b, l.Tok)
	stopIDs, stops := tmpl.Stops(l.Tok)
	var a answers
	const chunk = 50
	for i := 0; i < len(prompts); i += chunk {
		req := generate.Request{Prompts: prompts[i:min(i+chunk, len(prompts))], MaxTokens: maxTok, StopIDs: stopIDs, StopStrings: stops}
		// The token training ends an answer with: the format's first stop id.
		eos := int32(-1)
		if len(stopIDs) > 0 {
			eos = stopIDs[0]
		}
		res, err := g.Generate(e.Ctx, req)
		if err != nil {
			return a, err
		}
		for k, ids := range res.IDs {
			ids = append([]int32(nil), ids...)
			// The generator drops the stop token that ended a sequence; a stop
			// string's tokens stay in IDs (and leave the text cut short).
			if res.Finish[k] == "stop" && eos >= 0 && l.Tok.Decode(ids) == res.Text[k] {
				ids = append(ids, eos)
			}
			a.text = append(a.text, strings.TrimSpace(res.Text[k]))
			a.ids = append(a.ids, ids)
		}
	}
	return a, nil
}

// answerLogProbs returns (len(prompts)) the summed log-probability under m
// of each answer given its prompt, and the answer's token count.
func answerLogProbs(e *Env, m *model.Transformer, b tensor.Backend, prompts, ans [][]int32, pad int32) (lp, n []float64, err error) {
	frozen := rlhf.NewFrozenModel(m, b)
	const rows = 16
	for lo := 0; lo < len(prompts); lo += rows {
		hi := min(lo+rows, len(prompts))
		var exs []data.Example
		longest := 0
		for i := lo; i < hi; i++ {
			ids := append(append([]int32(nil), prompts[i]...), ans[i]...)
			labels := make([]int32, len(ids))
			for k := range prompts[i] {
				labels[k] = data.IgnoreIndex
			}
			copy(labels[len(prompts[i]):], ans[i])
			if len(ids) > m.Cfg.MaxPos {
				return nil, nil, fmt.Errorf("answer %d: prompt and answer take %d tokens, more than the model's %d", i, len(ids), m.Cfg.MaxPos)
			}
			exs = append(exs, data.Example{IDs: ids, Labels: labels})
			longest = max(longest, len(ids))
			n = append(n, float64(len(ans[i])))
		}
		bt, err := data.Collate(exs, longest, pad)
		if err != nil {
			return nil, nil, err
		}
		dst := make([]float32, bt.B)
		if err := frozen.LogProbs(e.Ctx, bt, dst); err != nil {
			return nil, nil, err
		}
		for _, v := range dst {
			lp = append(lp, float64(v))
		}
	}
	return lp, n, nil
}

// runAlignEval compares a policy with a reference policy on held-out
// instruction tasks: win rate under a reward model, exact-match accuracy,
// and the KL of the policy to the reference on the policy's own answers.
func runAlignEval(e *Env) error {
	fs := newFlags(e, "align-eval")
	var mf modelFlags
	mf.register(fs, true)
	refAdapter := fs.String("ref-adapter", "", "the reference policy's adapter on the same base (e.g. demo, the SFT adapter); empty: the base")
	rmDir := fs.String("reward-model", "", "reward model folder made by llmlab rm (for the win rate)")
	dataPath := fs.String("data", "", "held-out instruction tasks, JSONL chat records with \"task\" and \"answer\" (default: the embedded instruct_eval.jsonl)")
	tmplName := fs.String("template", "", "chat template (default: the model's own)")
	n := fs.Int("n", 100, "tasks to use, the first N (0: all)")
	maxTok := fs.Int("max-tokens", 24, "answer tokens at most")
	label := fs.String("label", "", "name of the policy in the report (default: --adapter)")
	jsonOut := fs.Bool("json", false, "print one JSON object")
	if err := parse(fs, e.Args); err != nil {
		return err
	}
	if *maxTok <= 0 {
		return Usagef("--max-tokens must be positive")
	}
	raw, name := assets.InstructEval(), "instruct_eval.jsonl (embedded)"
	if *dataPath != "" {
		name = *dataPath
		var err error
		if raw, err = os.ReadFile(*dataPath); err != nil {
			return BadInput(err)
		}
	}
	items, err := demo.ReadInstruct(raw)
	if err != nil {
		return BadInput(fmt.Errorf("%s: %w", name, err))
	}
	if *n > 0 && *n < len(items) {
		items = items[:*n]
	}
	if len(items) == 0 {
		return BadInput(fmt.Errorf("%s: no tasks", name))
	}
	b, err := mf.backend(e)
	if err != nil {
		return err
	}
	// Two copies of the base: one with the policy, one with the reference.
	pol, err := mf.load(model.LoadOptions{})
	if err != nil {
		return err
	}
	rf := modelFlags{model: mf.model, adapter: *refAdapter, device: mf.device, threads: mf.threads}
	ref, err := rf.load(model.LoadOptions{})
	if err != nil {
		return err
	}
	if pol.Tok.VocabSize() != ref.Tok.VocabSize() {
		return BadInput(fmt.Errorf("policy and reference tokenizers differ (%d and %d tokens)", pol.Tok.VocabSize(), ref.Tok.VocabSize()))
	}
	tmpl, err := chooseFormat(pol, *tmplName)
	if err != nil {
		return err
	}
	tasks := make([]ppoTask, len(items))
	prompts := make([][]int32, len(items))
	for i, it := range items {
		msgs := []chat.Message{{Role: chat.RoleUser, Content: it.Prompt}}
		if prompts[i], err = data.EncodeChatPrompt(pol.Tok, tmpl, msgs); err != nil {
			return BadInput(fmt.Errorf("task %d: %w", i+1, err))
		}
		tasks[i] = ppoTask{rlhf.Task{Prompt: prompts[i], Answer: it.Answer}, msgs}
	}
	pa, err := greedyAnswers(e, pol, b, tmpl, prompts, *maxTok)
	if err != nil {
		return err
	}
	ra, err := greedyAnswers(e, ref, b, tmpl, prompts, *maxTok)
	if err != nil {
		return err
	}
	r := alignReport{Label: *label, N: len(items), WinRate: -1, RewardMean: math.NaN(), RefReward: math.NaN()}
	if r.Label == "" {
		r.Label = mf.adapter
	}
	for i, it := range items {
		if demo.Match(it.Task, pa.text[i], it.Answer) {
			r.Accuracy++
		}
		if demo.Match(it.Task, ra.text[i], it.Answer) {
			r.RefAccuracy++
		}
		if chatty(pa.text[i], it.Answer) {
			r.Chatty++
		}
		if chatty(ra.text[i], it.Answer) {
			r.RefChatty++
		}
		r.Length += float64(len(pa.ids[i]))
		r.RefLength += float64(len(ra.ids[i]))
	}
	nf := float64(len(items))
	r.Accuracy, r.RefAccuracy, r.Length, r.RefLength = r.Accuracy/nf, r.RefAccuracy/nf, r.Length/nf, r.RefLength/nf
	r.Chatty, r.RefChatty = r.Chatty/nf, r.RefChatty/nf

	// KL(policy‖ref) on the policy's answers: one forward of each model.
	pad := max(pol.Tok.PAD(), max(pol.Tok.EOS(), 0))
	lpPol, counts, err := answerLogProbs(e, pol.M, b, prompts, pa.ids, pad)
	if err != nil {
		return err
	}
	lpRef, _, err := answerLogProbs(e, ref.M, b, prompts, pa.ids, pad)
	if err != nil {
		return err
	}
	var diff, toks float64
	for i := range lpPol {
		diff += lpPol[i] - lpRef[i]
		toks += counts[i]
	}
	r.KL, r.KLSeq = diff/max(toks, 1), diff/nf

	if *rmDir != "" {
		scorer, err := rmScorer(*rmDir, "", tmpl, tasks, &mf, b)
		if err != nil {
			return err
		}
		rolls := func(a answers) []rlhf.Rollout {
			rs := make([]rlhf.Rollout, len(items))
			for i := range rs {
				// An empty answer still gives the reward model a turn to read.
				rs[i] = rlhf.Rollout{Task: i, Text: a.text[i]}
			}
			return rs
		}
		ps, rs := make([]float32, len(items)), make([]float32, len(items))
		if err := scorer.Scores(e.Ctx, rolls(pa), ps); err != nil {
			return err
		}
		if err := scorer.Scores(e.Ctx, rolls(ra), rs); err != nil {
			return err
		}
		var wins, sp, sr float64
		for i := range ps {
			switch {
			case ps[i] > rs[i]:
				wins++
			case ps[i] == rs[i]:
				wins += 0.5
				r.Ties++
			}
			sp += float64(ps[i])
			sr += float64(rs[i])
		}
		r.WinRate, r.Ties, r.RewardMean, r.RefReward = wins/nf, r.Ties/nf, sp/nf, sr/nf
	}
	if *jsonOut {
		out := r
		if math.IsNaN(out.RewardMean) {
			out.RewardMean, out.RefReward = 0, 0
		}
		return json.NewEncoder(e.Stdout).Encode(out)
	}
	fmt.Fprintln(e.Stdout, alignHeader())
	fmt.Fprintln(e.Stdout, r.line())
	return nil
}

// chatty reports whether a reply says at least 3 words more than the
// answer wants: the extra words of a rude or rambling reply ("GOAT. Now go
// away."), which exact match alone cannot tell from a wrong answer.
func chatty(reply, answer string) bool {
	return len(strings.Fields(reply)) >= len(strings.Fields(answer))+3
}

func alignHeader() string {
	return fmt.Sprintf("%-14s %5s %9s %6s %8s %8s %9s %8s %7s %8s %8s %7s", "policy", "n", "win-rate", "ties", "reward", "ref-rew", "accuracy", "ref-acc", "chatty", "ref-chat", "kl/tok", "length")
}

func (r alignReport) line() string {
	win, ties := "-", "-"
	if r.WinRate >= 0 {
		win, ties = fmt.Sprintf("%.1f%%", 100*r.WinRate), fmt.Sprintf("%.0f%%", 100*r.Ties)
	}
	return fmt.Sprintf("%-14s %5d %9s %6s %8.3f %8.3f %8.1f%% %7.1f%% %6.1f%% %7.1f%% %8.4f %7.1f", clip(r.Label, 14), r.N, win, ties, r.RewardMean, r.RefReward,
		100*r.Accuracy, 100*r.RefAccuracy, 100*r.Chatty, 100*r.RefChatty, r.KL, r.Length)
}
