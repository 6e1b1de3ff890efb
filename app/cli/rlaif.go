package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"llmlab/assets"
	"llmlab/core/atomicfile"
	"llmlab/core/chat"
	"llmlab/core/data"
	"llmlab/core/generate"
	"llmlab/core/model"
	"llmlab/core/tensor"
	"llmlab/rlhf"
)

// rlaifPrompt is one prompt to sample answers for.
type rlaifPrompt struct {
	Msgs []chat.Message
	Line int
	// Reference is the reference answer shown to the judge (never to the
	// policy), from the record's --reference-field; "" when none.
	Reference string
}

// recordReference returns a record's reference answer, the value of its
// field: a JSON string as it is, a number or boolean as written (so
// {"answer": 42} works). A record without the field, or with an empty or
// other value, is an error naming the file and line: a judge asked some
// questions with a reference and some without is not judging alike.
func recordReference(r data.Record, field, name string) (string, error) {
	raw, ok := r.Extra[field]
	if !ok {
		return "", BadInput(fmt.Errorf("%s:%d: the record has no %q field for --reference-field (fields a record's shape uses, such as \"prompt\" or \"chosen\", cannot be the reference)", name, r.Line, field))
	}
	var ref string
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", BadInput(fmt.Errorf("%s:%d: --reference-field %q: %w", name, r.Line, field, err))
	}
	switch x := v.(type) {
	case string:
		ref = x
	case float64, bool:
		ref = string(bytes.TrimSpace(raw))
	default:
		return "", BadInput(fmt.Errorf("%s:%d: --reference-field %q is %s; want a string or a number", name, r.Line, field, bytes.TrimSpace(raw)))
	}
	if strings.TrimSpace(ref) == "" {
		return "", BadInput(fmt.Errorf("%s:%d: --reference-field %q is empty", name, r.Line, field))
	}
	return ref, nil
}

// readRLAIFPrompts reads prompts: "demo" is the embedded instruction set;
// a file is JSONL of any shape core/data reads but text (the prompt is
// the record's prompt, or a chat record's turns before its last assistant
// turn), and also {"prompt": ...} alone, which is read as a
// prompt-completion record with an empty completion. With refField, each
// record's reference answer is read from that field (recordReference).
func readRLAIFPrompts(path, refField string) ([]rlaifPrompt, error) {
	var raw []byte
	name := path
	if path == "demo" {
		raw, name = assets.InstructTrain(), "instruct_train.jsonl"
	} else {
		var err error
		if raw, err = os.ReadFile(path); err != nil {
			return nil, BadInput(fmt.Errorf("--prompts: %w", err))
		}
	}
	ds, err := data.ReadJSONL(bytes.NewReader(promptOnlyLines(raw)), name)
	if err != nil {
		return nil, BadInput(err)
	}
	if ds.Shape == data.ShapeText {
		return nil, BadInput(fmt.Errorf("%s: a text dataset has no prompts; want {\"prompt\"} or {\"messages\"} records", name))
	}
	var out []rlaifPrompt
	for _, r := range ds.Records {
		msgs := r.Prompt
		if ds.Shape == data.ShapeChat {
			k := len(msgs)
			for k > 0 && msgs[k-1].Role == chat.RoleAssistant {
				k--
			}
			msgs = msgs[:k]
		}
		if len(msgs) == 0 {
			return nil, BadInput(fmt.Errorf("%s:%d: no prompt (the record has no turn before its answer)", name, r.Line))
		}
		p := rlaifPrompt{Msgs: msgs, Line: r.Line}
		if refField != "" {
			if p.Reference, err = recordReference(r, refField, name); err != nil {
				return nil, err
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// promptOnlyLines gives each {"prompt": ...} line without a completion an
// empty "completion", so core/data reads it; other lines pass unchanged,
// and line numbers stay the same.
func promptOnlyLines(raw []byte) []byte {
	lines := bytes.Split(raw, []byte("\n"))
	for i, l := range lines {
		var m map[string]json.RawMessage
		if json.Unmarshal(l, &m) != nil {
			continue
		}
		if _, ok := m["prompt"]; !ok {
			continue
		}
		other := false
		for _, k := range []string{"completion", "chosen", "rejected", "label", "messages", "instruction", "text"} {
			if _, ok := m[k]; ok {
				other = true
			}
		}
		if !other {
			m["completion"] = json.RawMessage(`""`)
			lines[i], _ = json.Marshal(m)
		}
	}
	return bytes.Join(lines, []byte("\n"))
}

// judgeText is a conversation as the judge reads it: a single user turn
// as it is, anything longer with the speakers named.
func judgeText(msgs []chat.Message) string {
	if len(msgs) == 1 && msgs[0].Role == chat.RoleUser {
		return msgs[0].Content
	}
	var b strings.Builder
	for i, m := range msgs {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "%s%s: %s", strings.ToUpper(m.Role[:1]), m.Role[1:], m.Content)
	}
	return b.String()
}

// readRubric returns the judge's rubric: the file's text, or
// rlhf.DefaultRubric when path is empty.
func readRubric(path string) (string, error) {
	if path == "" {
		return rlhf.DefaultRubric, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", BadInput(fmt.Errorf("--rubric: %w", err))
	}
	rubric := strings.TrimSpace(string(b))
	if rubric == "" {
		return "", BadInput(fmt.Errorf("--rubric %s is empty", path))
	}
	return rubric, nil
}

// loadLocalJudge loads the model (and adapter) jf names as a judge with
// the rubric, and checks that the rubric leaves room in its context.
func loadLocalJudge(jf *modelFlags, b tensor.Backend, tmplName, rubric string) (*rlhf.LocalJudge, error) {
	jl, err := jf.load(model.LoadOptions{KeepStored: true})
	if err != nil {
		return nil, err
	}
	jt, err := chooseFormat(jl, tmplName)
	if err != nil {
		return nil, err
	}
	lj, err := rlhf.NewLocalJudge(jl.M, b, jl.Tok, jt, rubric)
	if err != nil {
		return nil, BadInput(fmt.Errorf("--judge %s: %w", jf.model, err))
	}
	if over, err := lj.Overhead(); err != nil {
		return nil, BadInput(fmt.Errorf("--judge %s: %w", jf.model, err))
	} else if over+16 > jl.M.Cfg.MaxPos {
		return nil, BadInput(fmt.Errorf("--judge %s: the rubric and the question's frame take %d tokens of the judge's %d-token context, leaving no room for the prompt and answers; give a shorter --rubric", jf.model, over, jl.M.Cfg.MaxPos))
	}
	return lj, nil
}

// prefLine is one line of the output, in the preference shape.
type prefLine struct {
	Prompt     any     `json:"prompt"` // a string, or a list of messages
	Chosen     string  `json:"chosen"`
	Rejected   string  `json:"rejected"`
	Confidence float64 `json:"judge_confidence"`
	// Reference is the reference answer the judge was shown (rlaif
	// --reference-field), kept for inspection; trainers ignore it.
	Reference string `json:"reference,omitempty"`
}

// rlaifStats is the progress and the summary.
type rlaifStats struct {
	Prompts     int `json:"prompts"`
	Done        int `json:"prompts_done"`
	TooLong     int `json:"prompts_too_long"`
	Comparisons int `json:"comparisons"`
	Pairs       int `json:"pairs"`
	Ties        int `json:"ties"`
	Identical   int `json:"identical"`
	Unjudged    int `json:"too_long_to_judge"`
	Malformed   int `json:"malformed"`
	rlhf.JudgeStats
	Out      string  `json:"out,omitempty"`
	ElapsedS float64 `json:"elapsed_s"`
}

// runRLAIF samples answer pairs from a policy, has a judge (a local model
// or an OpenAI-compatible endpoint) pick the better of each, and writes
// the verdicts as preference pairs for rm, dpo and kto.
//
// Two helpers share the command: `rlaif judge-data` writes SFT data that
// teaches a local judge its verdicts, and `rlaif judge-eval` measures a
// judge's agreement with labelled pairs (rlaif_judge.go).
func runRLAIF(e *Env) error {
	if len(e.Args) > 0 {
		sub := e.shift()
		switch e.Args[0] {
		case "judge-data":
			return runJudgeData(sub)
		case "judge-eval":
			return runJudgeEval(sub)
		}
	}
	fs := newFlags(e, "rlaif")
	var mf modelFlags
	mf.register(fs, true)
	judgeArg := fs.String("judge", "", "the judge: a model folder (or demo), or the URL of an OpenAI-compatible server such as http://127.0.0.1:8080 (required)")
	judgeAdapter := fs.String("judge-adapter", "", "PEFT adapter to apply to a local judge model")
	judgeModel := fs.String("judge-model", "", "the \"model\" to ask an HTTP judge for")
	judgeTmpl := fs.String("judge-template", "", "chat template of a local judge (default: its own): "+chat.Names())
	apiKeyEnv := fs.String("api-key-env", "", "name of an environment variable holding the HTTP judge's API key (sent as a Bearer token)")
	promptsPath := fs.String("prompts", "", "JSONL of prompts ({\"prompt\"}, {\"messages\"}, or any shape with a prompt), or demo for the embedded instruction set (required)")
	out := fs.String("out", "", "preference pairs to write, JSONL {\"prompt\",\"chosen\",\"rejected\"} (required)")
	tmplName := fs.String("template", "", "chat template of the policy (default: its own): "+chat.Names())
	samples := fs.Int("samples", 2, "answers sampled per prompt; every two of them are compared")
	temp := fs.Float64("temperature", 0.9, "sampling temperature of the policy")
	topP := fs.Float64("top-p", 1, "nucleus sampling mass (1: off)")
	maxNew := fs.Int("max-new", 64, "new tokens per answer at most")
	batch := fs.Int("batch", 8, "prompts per generation batch")
	limit := fs.Int("limit", 0, "use the first N prompts only (0: all)")
	rubricPath := fs.String("rubric", "", "file with the judge's rubric (constitution); default: a built-in one")
	refField := fs.String("reference-field", "", "show the judge (never the policy) a reference answer: the named field of each prompt record, e.g. answer; a record without it is an error")
	conc := fs.Int("concurrency", 4, "comparisons (and HTTP requests) in flight at once")
	cachePath := fs.String("cache", "", "HTTP judge verdict cache, appended as answers arrive (default OUT.judge-cache.jsonl; none: off)")
	timeout := fs.Duration("timeout", 2*time.Minute, "HTTP judge: time limit per request")
	retries := fs.Int("retries", 5, "HTTP judge: resends after connection errors, 429 and 5xx")
	judgeMax := fs.Int("judge-max-tokens", 8, "HTTP judge: max_tokens of each reply")
	maxBad := fs.Int("max-malformed", 20, "HTTP judge: replies naming neither A nor B (after re-asks) that are skipped before the run fails")
	margin := fs.Float64("tie-margin", 0.05, "a verdict whose P(a) is within this of 0.5 is a tie")
	judgeMean := fs.Bool("judge-mean", false, "local judge: decide on the mean of both orders without requiring them to agree (a position bias cancels in the mean; for weak judges)")
	seed := fs.Uint64("seed", 1, "sampling seed")
	jsonOut := fs.Bool("json", false, "one JSON object per batch, then the summary")
	if err := parse(fs, e.Args); err != nil {
		return err
	}
	switch {
	case *judgeArg == "" || *promptsPath == "" || *out == "":
		return Usagef("--judge, --prompts and --out are required")
	case *samples < 2 || *samples > 16:
		return Usagef("--samples must be between 2 and 16, got %d", *samples)
	case *temp <= 0:
		return Usagef("--temperature must be > 0 (at 0 every sample is the same answer), got %v", *temp)
	case *maxNew < 1 || *batch < 1 || *conc < 1 || *limit < 0:
		return Usagef("--max-new, --batch and --concurrency must be at least 1, --limit at least 0")
	case *margin < 0 || *margin >= 0.5:
		return Usagef("--tie-margin must be in [0, 0.5), got %v", *margin)
	}
	sampling := generate.Sampling{Temperature: *temp, TopP: *topP}
	if err := sampling.Validate(); err != nil {
		return BadInput(err)
	}
	rubric, err := readRubric(*rubricPath)
	if err != nil {
		return err
	}
	prompts, err := readRLAIFPrompts(*promptsPath, *refField)
	if err != nil {
		return err
	}
	if *limit > 0 && *limit < len(prompts) {
		prompts = prompts[:*limit]
	}
	b, err := mf.backend(e)
	if err != nil {
		return err
	}
	l, err := mf.load(model.LoadOptions{KeepStored: true})
	if err != nil {
		return err
	}
	tmpl, err := chooseFormat(l, *tmplName)
	if err != nil {
		return err
	}

	// The judge.
	var judge rlhf.Judge
	var stats func() rlhf.JudgeStats
	if strings.HasPrefix(*judgeArg, "http://") || strings.HasPrefix(*judgeArg, "https://") {
		hj := &rlhf.HTTPJudge{URL: *judgeArg, Model: *judgeModel, Rubric: rubric, Margin: *margin, MaxTokens: *judgeMax,
			Timeout: *timeout, Retries: *retries, Concurrency: *conc}
		if *retries == 0 {
			hj.Retries = -1
		}
		if *apiKeyEnv != "" {
			if hj.APIKey = os.Getenv(*apiKeyEnv); hj.APIKey == "" {
				return BadInput(fmt.Errorf("--api-key-env %s: the variable is not set", *apiKeyEnv))
			}
		}
		cp := *cachePath
		if cp == "" {
			cp = *out + ".judge-cache.jsonl"
		}
		if cp != "none" {
			c, err := rlhf.OpenVerdictCache(cp)
			if err != nil {
				return BadInput(err)
			}
			defer c.Close()
			hj.Cache = c
			if c.Len() > 0 || c.Dropped > 0 {
				fmt.Fprintf(e.Stderr, "judge cache %s: %d answers loaded (%d torn lines dropped)\n", cp, c.Len(), c.Dropped)
			}
		}
		judge, stats = hj, hj.Stats
	} else {
		jf := modelFlags{model: *judgeArg, adapter: *judgeAdapter, device: mf.device, threads: mf.threads}
		lj, err := loadLocalJudge(&jf, b, *judgeTmpl, rubric)
		if err != nil {
			return err
		}
		lj.Margin, lj.MeanOnly = *margin, *judgeMean
		judge, stats = lj, lj.Stats
	}

	// The output: complete lines into a temporary file beside OUT, renamed
	// into place at the end (also after Ctrl-C, with what was finished).
	if dir := filepath.Dir(*out); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return BadInput(fmt.Errorf("--out: %w", err))
		}
	}
	tmp, err := atomicfile.Create(*out, atomicfile.Mode)
	if err != nil {
		return BadInput(fmt.Errorf("--out: %w", err))
	}
	committed := false
	defer func() {
		if !committed {
			tmp.Abort()
		}
	}()
	w := bufio.NewWriter(tmp)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)

	log := e.Stdout
	if *jsonOut {
		log = e.Stderr
	}
	jenc := json.NewEncoder(e.Stdout)
	start := time.Now()
	st := rlaifStats{Prompts: len(prompts)}
	withRef := ""
	if *refField != "" {
		withRef = fmt.Sprintf(", with the reference answers in %q", *refField)
	}
	fmt.Fprintf(log, "RLAIF: %d prompts, %d answers each, judge %s%s\n", len(prompts), *samples, *judgeArg, withRef)

	gen := generate.New(l.M, b, l.Tok)
	stopIDs, stops := tmpl.Stops(l.Tok)
	n := *samples
	stopped := false
	for bi := 0; bi*(*batch) < len(prompts) && !stopped; bi++ {
		part := prompts[bi*(*batch) : min((bi+1)*(*batch), len(prompts))]
		// Sample n answers per prompt in one batched generation.
		var rows [][]int32
		var kept []rlaifPrompt
		for _, p := range part {
			ids, err := data.EncodeChatPrompt(l.Tok, tmpl, p.Msgs)
			if err != nil {
				return BadInput(fmt.Errorf("%s:%d: %w", *promptsPath, p.Line, err))
			}
			if len(ids)+1 >= l.M.Cfg.MaxPos {
				st.TooLong++
				continue
			}
			kept = append(kept, p)
			for range n {
				rows = append(rows, ids)
			}
		}
		var texts []string
		if len(rows) > 0 {
			res, err := gen.Generate(e.Ctx, generate.Request{Prompts: rows, MaxTokens: *maxNew, Sampling: sampling,
				Seed: *seed + uint64(bi)*7919, StopIDs: stopIDs, StopStrings: stops})
			if err != nil {
				if e.Ctx.Err() != nil {
					stopped = true
					break
				}
				return err
			}
			texts = res.Text
		}
		// Compare every two answers of each prompt.
		type job struct {
			p    int // index into kept
			a, b string
			v    rlhf.Verdict
			err  error
		}
		var jobs []*job
		for p := range kept {
			ans := texts[p*n : (p+1)*n]
			for x := 0; x < n; x++ {
				for y := x + 1; y < n; y++ {
					if strings.TrimSpace(ans[x]) == strings.TrimSpace(ans[y]) {
						st.Identical++
						continue
					}
					jobs = append(jobs, &job{p: p, a: ans[x], b: ans[y]})
				}
			}
		}
		work := make(chan *job)
		var wg sync.WaitGroup
		for range min(*conc, len(jobs)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for jb := range work {
					jb.v, jb.err = judge.CompareRef(e.Ctx, judgeText(kept[jb.p].Msgs), kept[jb.p].Reference, jb.a, jb.b)
				}
			}()
		}
		for _, jb := range jobs {
			work <- jb
		}
		close(work)
		wg.Wait()
		for _, jb := range jobs {
			if errors.Is(jb.err, rlhf.ErrTooLong) {
				st.Unjudged++
				continue
			}
			var me *rlhf.MalformedReplyError
			if errors.As(jb.err, &me) && st.Malformed < *maxBad {
				st.Malformed++
				fmt.Fprintf(e.Stderr, "skipped: %v\n", jb.err)
				continue
			}
			if jb.err != nil {
				if e.Ctx.Err() != nil {
					stopped = true
					continue
				}
				return jb.err
			}
			st.Comparisons++
			if jb.v.Winner == rlhf.Tie {
				st.Ties++
				continue
			}
			chosen, rejected := jb.a, jb.b
			if jb.v.Winner == rlhf.ChoiceB {
				chosen, rejected = jb.b, jb.a
			}
			var prompt any = kept[jb.p].Msgs
			if m := kept[jb.p].Msgs; len(m) == 1 && m[0].Role == chat.RoleUser {
				prompt = m[0].Content
			}
			if err := enc.Encode(prefLine{Prompt: prompt, Chosen: chosen, Rejected: rejected, Confidence: jb.v.Confidence(), Reference: kept[jb.p].Reference}); err != nil {
				return err
			}
			st.Pairs++
		}
		if !stopped {
			st.Done += len(part)
		}
		st.JudgeStats = stats()
		st.ElapsedS = time.Since(start).Seconds()
		if *jsonOut {
			jenc.Encode(st)
		} else {
			fmt.Fprintf(log, "prompts %d/%d  pairs %d  ties %d  identical %d  judge calls %d  cache hits %d  (%.1fs)\n",
				st.Done, st.Prompts, st.Pairs, st.Ties, st.Identical, st.Calls, st.CacheHits, st.ElapsedS)
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	committed = true
	if err := tmp.Commit(); err != nil {
		return err
	}
	st.Out = *out
	st.JudgeStats = stats()
	st.ElapsedS = time.Since(start).Seconds()
	if stopped {
		fmt.Fprintf(log, "stopped after %d of %d prompts; the finished pairs are in %s (a rerun with the same flags reuses the judge's cached answers)\n", st.Done, st.Prompts, *out)
	}
	fmt.Fprintf(log, "wrote %d preference pairs to %s: %d comparisons, %d ties and %d identical answers skipped, %d prompts too long for the policy, %d pairs too long for the judge, %d malformed verdicts; %d judge calls, %d cache hits, %d retries\n",
		st.Pairs, *out, st.Comparisons, st.Ties, st.Identical, st.TooLong, st.Unjudged, st.Malformed, st.Calls, st.CacheHits, st.Retries)
	if *jsonOut {
		return jenc.Encode(st) // the summary: the one object with "out"
	}
	return nil
}
