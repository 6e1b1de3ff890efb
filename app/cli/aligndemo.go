package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"llmlab/assets"
	"llmlab/core/data/demo"
	"llmlab/rlhf"
)

// alignDemo is `llmlab demo --align` (and `make align-demo`): the
// alignment methods side by side on the embedded demo model and data.
//
// First the SFT policy: a LoRA tuned as `llmlab demo` tunes one, but on
// demonstrations of which Sloppy percent are rude or rambling (the answer
// right in every one), as human demonstrations carry habits nobody wants.
// Then a reward model on the preference pairs, and DPO, PPO (against the
// reward model), GRPO (against an arithmetic checker) and RLAIF -> DPO
// (pairs of the SFT policy's samples judged by a judge LoRA tuned on the
// preference pairs), each continued from the SFT adapter with it as the
// reference. Every policy is then compared with the SFT policy by
// align-eval on the held-out tasks. Each step is an llmlab command run
// in-process, its output in OUT/logs/STEP.log; the table goes to
// OUT/summary.md.
type alignDemo struct {
	e       *Env
	out     string
	device  string
	threads int
	n       int  // held-out tasks for align-eval (0: all)
	sloppy  int  // percent of the SFT replies made rude or rambling
	quick   bool // a few steps of each, for tests: checks the plumbing, not the outcome
	json    bool // a JSON event per stage on Stdout (the desktop app's progress), the rest on Stderr
	timings []string
	done    int       // stages finished
	spent   float64   // their typical seconds (alignStages)
	start   time.Time // of the run
}

// alignStages are the demo's stages with their typical seconds on 2
// cores: the weights of its progress and ETA, since the stages differ in
// length a hundredfold.
var alignStages = map[string]float64{
	"sft": 200, "rm": 35, "rm-score": 4, "dpo": 40, "ppo": 22, "grpo": 45, "judge-data": 1, "judge": 80, "judge-eval": 7,
	"rlaif": 35, "rlaif-rm": 4, "rlaif-dpo": 11, "eval-sft": 5, "eval-dpo": 5, "eval-ppo": 5, "eval-grpo": 5, "eval-rlaif-dpo": 6,
	"eval-sft-arith": 2, "eval-grpo-arith": 1,
}

// stageEvent is the JSON line of a finished stage (--json).
type stageEvent struct {
	Kind    string  `json:"event"` // "stage", then "done"
	Step    int     `json:"step"`
	Steps   int     `json:"steps"`
	Message string  `json:"message"`
	Elapsed float64 `json:"elapsed_s"`
	ETA     float64 `json:"eta_s"`
	Path    string  `json:"path,omitempty"`
}

// human is where the readable lines go.
func (d *alignDemo) human() io.Writer {
	if d.json {
		return d.e.Stderr
	}
	return d.e.Stdout
}

// finished records a stage's end: its line, and with --json its event.
func (d *alignDemo) finished(name string, took time.Duration) {
	d.timings = append(d.timings, fmt.Sprintf("%s %ds", name, int(took.Seconds())))
	d.done++
	d.spent += alignStages[name]
	total := 0.0
	for _, w := range alignStages {
		total += w
	}
	elapsed := time.Since(d.start).Seconds()
	eta := 0.0
	if d.spent > 0 {
		eta = max(0, elapsed*(total-d.spent)/d.spent)
	}
	fmt.Fprintf(d.human(), "%ds  (ETA %s)\n", int(took.Seconds()), (time.Duration(eta) * time.Second).String())
	if d.json {
		json.NewEncoder(d.e.Stdout).Encode(stageEvent{Kind: "stage", Step: d.done, Steps: len(alignStages), Message: fmt.Sprintf("%s %ds", name, int(took.Seconds())), Elapsed: elapsed, ETA: eta})
	}
}

// scale returns steps, or a handful in a quick run.
func (d *alignDemo) scale(steps int) string {
	if d.quick {
		return strconv.Itoa(min(steps, 2))
	}
	return strconv.Itoa(steps)
}

func (d *alignDemo) path(parts ...string) string {
	return filepath.Join(append([]string{d.out}, parts...)...)
}

// dev is the device and thread flags every model-running step gets.
func (d *alignDemo) dev() []string {
	return []string{"--device", d.device, "--threads", strconv.Itoa(d.threads)}
}

// step runs one llmlab command line with its output in logs/NAME.log,
// prints how long it took, and returns the last JSON line it printed (the
// summary of a command run with --json).
func (d *alignDemo) step(name string, args ...string) (string, error) {
	logPath := d.path("logs", name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fmt.Fprintf(d.human(), "%-15s ", name)
	var out bytes.Buffer
	t0 := time.Now()
	code := RunIO(d.e.Ctx, args, nil, io.MultiWriter(f, &out), f)
	if err := d.e.Ctx.Err(); err != nil {
		fmt.Fprintln(d.human(), "stopped")
		return "", fmt.Errorf("align demo stopped during %s: %w", name, err)
	}
	if code != 0 {
		fmt.Fprintln(d.human(), "FAILED")
		f.Sync()
		return "", fmt.Errorf("align demo: %s failed (exit %d); the end of %s:\n%s", name, code, logPath, lastLines(logPath, 20))
	}
	d.finished(name, time.Since(t0).Round(time.Second))
	last := ""
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "{") {
			last = l
		}
	}
	return last, nil
}

// stepJSON is step, decoding its summary line into v.
func (d *alignDemo) stepJSON(v any, name string, args ...string) error {
	line, err := d.step(name, args...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(line), v); err != nil {
		return fmt.Errorf("align demo: %s: no summary in its output (%v); see %s", name, err, d.path("logs", name+".log"))
	}
	return nil
}

// lastLines returns the last n lines of a file.
func lastLines(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// writeData writes the files the steps read into OUT/data: the embedded
// sets, the sloppy SFT set, the arithmetic tasks and the judge's rubric.
func (d *alignDemo) writeData() error {
	train, err := demo.ReadInstruct(assets.InstructTrain())
	if err != nil {
		return err
	}
	eval, err := demo.ReadInstruct(assets.InstructEval())
	if err != nil {
		return err
	}
	arith := func(items []demo.Item) []demo.Item {
		var out []demo.Item
		for _, it := range items {
			if it.Task == "add" || it.Task == "subtract" {
				out = append(out, it)
			}
		}
		return out
	}
	// Writing to memory cannot fail.
	jsonl := func(items []demo.Item) []byte {
		var b bytes.Buffer
		demo.WriteInstruct(&b, items)
		return b.Bytes()
	}
	files := map[string][]byte{
		"instruct_train.jsonl": assets.InstructTrain(),
		"instruct_eval.jsonl":  assets.InstructEval(),
		"prefs_train.jsonl":    assets.PrefsTrain(),
		"prefs_eval.jsonl":     assets.PrefsEval(),
		"sft_train.jsonl":      jsonl(demo.Sloppy(demo.DefaultSeed, train, d.sloppy)),
		"arith_train.jsonl":    jsonl(arith(train)),
		"arith_eval.jsonl":     jsonl(arith(eval)),
		// The demo model's context is 256 tokens: the judge gets a short rubric.
		"rubric.txt": []byte("Prefer the correct, short, polite answer.\n"),
	}
	for name, b := range files {
		if err := os.WriteFile(d.path("data", name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// alignDemoResult is what the summary reports beside the table.
type alignDemoResult struct {
	sftAcc, rmAcc, rmJudge          float64
	grpo                            struct{ before, after float64 }
	grpoTerms                       string
	judge                           judgeEvalStats
	rlaif                           rlaifStats
	rows                            []alignReport
	arithN, rlaifLimit, rlaifSample int
}

// clean empties OUT for a fresh run. A folder an earlier align demo wrote
// (it has logs/sft.log) is removed; any other non-empty folder is refused,
// so that a mistyped --out never deletes someone's work.
func (d *alignDemo) clean() error {
	ents, err := os.ReadDir(d.out)
	if os.IsNotExist(err) || (err == nil && len(ents) == 0) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := os.Stat(d.path("logs", "sft.log")); err != nil {
		return BadInput(fmt.Errorf("--out %s is not empty and is not an earlier align demo's folder; give a new or empty folder", d.out))
	}
	return os.RemoveAll(d.out)
}

func (d *alignDemo) run() error {
	if err := d.clean(); err != nil {
		return err
	}
	for _, dir := range []string{"logs", "data"} {
		if err := os.MkdirAll(d.path(dir), 0o755); err != nil {
			return err
		}
	}
	if err := d.writeData(); err != nil {
		return err
	}
	d.start, d.timings, d.done, d.spent = time.Now(), nil, 0, 0
	var r alignDemoResult
	data := func(name string) string { return d.path("data", name) }
	sft := d.path("sft", "adapter")
	rm := d.path("rm", "final")
	fmt.Fprintf(d.human(), "== training (logs in %s)\n", d.path("logs"))

	var sftSum struct {
		After float64 `json:"accuracy_after"`
	}
	if err := d.stepJSON(&sftSum, "sft", append([]string{"demo", "--train", data("sft_train.jsonl"), "--out", d.path("sft"),
		"--steps", d.scale(400), "--eval", strconv.Itoa(d.evalN(200)), "--json"}, d.dev()...)...); err != nil {
		return err
	}
	r.sftAcc = sftSum.After

	if _, err := d.step("rm", append([]string{"rm", "--model", "demo", "--data", data("prefs_train.jsonl"), "--out", d.path("rm"),
		"--steps", d.scale(60), "--batch", "8", "--lr", "1e-3", "--eval-frac", "0"}, d.dev()...)...); err != nil {
		return err
	}
	var score struct {
		Accuracy float64 `json:"accuracy"`
	}
	if err := d.stepJSON(&score, "rm-score", append([]string{"score", "--model", rm, "--data", data("prefs_eval.jsonl"), "--json"}, d.dev()...)...); err != nil {
		return err
	}
	r.rmAcc = score.Accuracy

	// DPO with β 0.5: at 0.1 the policies ran far from the SFT policy (KL
	// 1.8 and 2.6 per token), and on the judge's pairs of the policy's own
	// samples the greedy answers even got chattier (both answers'
	// likelihoods fall and the mass goes elsewhere); at 0.5 both DPO runs
	// stay near and do their job.
	dpo := func(name, pairs, evalFrac string) error {
		_, err := d.step(name, append([]string{"dpo", "--model", "demo", "--adapter", sft, "--data", pairs, "--out", d.path(name),
			"--steps", d.scale(40), "--batch", "8", "--lr", "5e-4", "--beta", "0.5", "--eval-frac", evalFrac}, d.dev()...)...)
		return err
	}
	if err := dpo("dpo", data("prefs_train.jsonl"), "0.05"); err != nil {
		return err
	}
	if _, err := d.step("ppo", append([]string{"ppo", "--model", "demo", "--adapter", sft, "--reward-model", rm, "--data", data("instruct_train.jsonl"),
		"--out", d.path("ppo"), "--iterations", d.scale(40), "--prompts", "8", "--lr", "1e-4", "--kl-coef", "0.2"}, d.dev()...)...); err != nil {
		return err
	}
	// The checker: 1 for the right number, 0.3 more within 3 of it, and 0.5
	// for answering with the number alone (a format reward, as R1-style
	// GRPO pairs with its accuracy reward).
	var grpo struct {
		Before      float64   `json:"reward_before"`
		After       float64   `json:"reward_after"`
		TermsBefore []float64 `json:"terms_before"`
		TermsAfter  []float64 `json:"terms_after"`
	}
	checker := []string{"number", "0.3*number:3", `0.5*regex:^\s*-?[0-9]+\s*$`}
	args := []string{"grpo", "--model", "demo", "--adapter", sft, "--data", data("arith_train.jsonl"), "--eval", data("arith_eval.jsonl"),
		"--out", d.path("grpo"), "--steps", d.scale(120), "--prompts", "4", "--group", "8", "--lr", "2e-4", "--json"}
	for _, c := range checker {
		args = append(args, "--reward", c)
	}
	if err := d.stepJSON(&grpo, "grpo", append(args, d.dev()...)...); err != nil {
		return err
	}
	r.grpo.before, r.grpo.after = grpo.Before, grpo.After
	if sum, err := rlhf.ParseRewards(checker...); err == nil {
		r.grpoTerms = termMeans(sum, grpo.TermsBefore, grpo.TermsAfter)
	}

	// RLAIF with reference-guided judging. The untuned demo model is no
	// judge (P(A) stays within 0.002 of 1/2: pure position bias), so a
	// judge is tuned first: a LoRA on the base (with the embeddings, which
	// hold the chat markers) trained by sft on `rlaif judge-data`, the
	// prefs_train pairs (and, with --off-topic, each chosen answer against
	// another question's) rendered as exactly the question the local judge
	// is asked, in both orders, answered with the chosen answer's letter.
	// The question carries the record's reference answer, as MT-Bench
	// grades maths; the policy never sees it. The judge's agreement with
	// the held-out labels is measured by rejected_kind; then the SFT policy
	// answers training prompts 4 times and the judge picks the better of
	// every two (both orders must agree). The reward model scores the same
	// pairs: how often it agrees with the judge.
	rubric := data("rubric.txt")
	judge := d.path("judge", "final")
	if _, err := d.step("judge-data", "rlaif", "judge-data", "--prefs", data("prefs_train.jsonl"), "--rubric", rubric, "--off-topic",
		"--reference-field", "answer", "--out", data("judge_train.jsonl")); err != nil {
		return err
	}
	if _, err := d.step("judge", append([]string{"sft", "--model", "demo", "--data", data("judge_train.jsonl"), "--out", d.path("judge"),
		"--steps", d.scale(80), "--batch", "16", "--lr", "3e-3", "--modules-to-save", "embed_tokens", "--eval-frac", "0"}, d.dev()...)...); err != nil {
		return err
	}
	if err := d.stepJSON(&r.judge, "judge-eval", append([]string{"rlaif", "judge-eval", "--judge", "demo", "--judge-adapter", judge, "--rubric", rubric,
		"--prefs", data("prefs_eval.jsonl"), "--reference-field", "answer", "--by", "rejected_kind", "--tie-margin", "0", "--json"}, d.dev()...)...); err != nil {
		return err
	}
	r.rlaifLimit, r.rlaifSample = 200, 4
	if d.quick {
		r.rlaifLimit = 8
	}
	pairs := data("rlaif_pairs.jsonl")
	if err := d.stepJSON(&r.rlaif, "rlaif", append([]string{"rlaif", "--model", "demo", "--adapter", sft, "--judge", "demo", "--judge-adapter", judge,
		"--rubric", rubric, "--prompts", data("instruct_train.jsonl"), "--reference-field", "answer", "--out", pairs,
		"--limit", strconv.Itoa(r.rlaifLimit), "--samples", strconv.Itoa(r.rlaifSample), "--temperature", "1.0", "--max-new", "24", "--tie-margin", "0", "--json"}, d.dev()...)...); err != nil {
		return err
	}
	r.rmJudge = -1
	if r.rlaif.Pairs > 0 {
		if err := d.stepJSON(&score, "rlaif-rm", append([]string{"score", "--model", rm, "--data", pairs, "--json"}, d.dev()...)...); err != nil {
			return err
		}
		r.rmJudge = score.Accuracy
	} else {
		d.finished("rlaif-rm", 0)
	}
	// DPO on a handful of pairs would measure noise, not the judge.
	rlaifDPO := r.rlaif.Pairs >= 16 || (d.quick && r.rlaif.Pairs > 0)
	if rlaifDPO {
		if err := dpo("rlaif-dpo", pairs, "0"); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(d.human(), "%-15s skipped: the judge gave %d verdicts (16 needed)\n", "rlaif-dpo", r.rlaif.Pairs)
		d.finished("rlaif-dpo", 0)
		d.finished("eval-rlaif-dpo", 0)
	}

	fmt.Fprintf(d.human(), "== evaluation against the SFT policy (%d held-out tasks)\n", d.evalN(200))
	evaluate := func(label, adapter, tasks string) error {
		args := []string{"align-eval", "--model", "demo", "--adapter", adapter, "--ref-adapter", sft, "--reward-model", rm,
			"--n", strconv.Itoa(d.evalN(0)), "--label", label, "--json"}
		if tasks != "" {
			args = append(args, "--data", tasks)
		}
		var rep alignReport
		if err := d.stepJSON(&rep, "eval-"+label, append(args, d.dev()...)...); err != nil {
			return err
		}
		r.rows = append(r.rows, rep)
		return nil
	}
	policies := [][3]string{{"sft", sft, ""}, {"dpo", d.path("dpo", "final"), ""}, {"ppo", d.path("ppo", "final"), ""}, {"grpo", d.path("grpo", "final"), ""}}
	if rlaifDPO {
		policies = append(policies, [3]string{"rlaif-dpo", d.path("rlaif-dpo", "final"), ""})
	}
	// GRPO's own target: the arithmetic tasks alone.
	policies = append(policies, [3]string{"sft-arith", sft, data("arith_eval.jsonl")}, [3]string{"grpo-arith", d.path("grpo", "final"), data("arith_eval.jsonl")})
	for _, p := range policies {
		if err := evaluate(p[0], p[1], p[2]); err != nil {
			return err
		}
	}
	if items, err := readInstructFile(data("arith_eval.jsonl")); err == nil {
		r.arithN = len(items)
	}
	sum := d.summary(&r, time.Since(d.start))
	if err := os.WriteFile(d.path("summary.md"), []byte(sum), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(d.human(), "\n%s", sum)
	if d.json {
		return json.NewEncoder(d.e.Stdout).Encode(stageEvent{Kind: "done", Step: d.done, Steps: len(alignStages),
			Message: "the summary is in " + d.path("summary.md"), Elapsed: time.Since(d.start).Seconds(), Path: d.path("summary.md")})
	}
	return nil
}

// evalN is the number of held-out tasks align-eval scores (--eval; 0:
// all), or def where the caller has its own default; a quick run uses 8.
func (d *alignDemo) evalN(def int) int {
	switch {
	case d.quick:
		return 8
	case d.n > 0:
		return d.n
	case def > 0:
		return def
	}
	return 0
}

func readInstructFile(path string) ([]demo.Item, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return demo.ReadInstruct(b)
}

func pct(x float64) string { return fmt.Sprintf("%.1f%%", 100*x) }

// summary renders OUT/summary.md.
func (d *alignDemo) summary(r *alignDemoResult, took time.Duration) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("# align-demo")
	w("")
	w("The SFT policy is a LoRA on the demo model tuned as `llmlab demo` tunes one, on the embedded")
	w("training prompts with %d%% of the replies rude or rambling (the answer inside; data gen --sloppy).", d.sloppy)
	w("Every other policy continues that adapter, which is also the reference of its KL;")
	w("align-eval compares its greedy answers with the SFT policy's on held-out tasks")
	w("(the *-arith rows: the %d add/subtract tasks only).", r.arithN)
	w("win-rate: RM score above the SFT answer's (ties, mostly identical answers, count half);")
	w("accuracy: exact match (ref-acc: the SFT policy's); chatty: answers with 3 or more words")
	w("beyond the reference answer's, i.e. rude or rambling (ref-chat: the SFT policy's);")
	w("kl/tok: mean log p_policy - log p_SFT over the policy's answer tokens; length: answer tokens.")
	w("Targets: DPO, PPO and RLAIF-DPO aim at the reward model's preferences (win-rate), GRPO at")
	w("the arithmetic checker (its held-out reward below; grpo-arith accuracy), each with a KL")
	w("leash to the SFT policy.")
	if d.quick {
		w("")
		w("(A quick run: a few steps of each method. It checks the plumbing; its figures mean nothing.)")
	}
	w("")
	w("```")
	w("%s", alignHeader())
	for _, row := range r.rows {
		w("%s", row.line())
	}
	w("```")
	w("")
	w("- SFT policy: exact match %s on the %d held-out tasks", pct(r.sftAcc), d.evalN(200))
	w("- GRPO's checker on the %d held-out add/subtract tasks, greedy: %.3f (before %.3f); by term: %s", r.arithN, r.grpo.after, r.grpo.before, r.grpoTerms)
	w("- reward model: pairwise accuracy %s on prefs_eval.jsonl (LoRA on the base)", pct(r.rmAcc))
	w("- RLAIF judge (the demo base with a LoRA tuned on rlaif judge-data --off-topic --reference-field answer")
	w("  from prefs_train.jsonl, shown each question's reference answer, asked in both orders; a verdict needs")
	w("  both to agree): agreement with prefs_eval.jsonl %s; by rejected_kind:", r.judge.line())
	kinds := make([]string, 0, len(r.judge.By))
	for k := range r.judge.By {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		w("  - %s: %s", k, r.judge.By[k].line())
	}
	s := r.rlaif
	w("- RLAIF pairs (%d samples of the SFT policy at temperature 1.0 on %d instruct_train.jsonl prompts, every two", r.rlaifSample, r.rlaifLimit)
	w("  compared by the judge with the prompt's reference): %d pairs from %d comparisons; %d ties and %d identical answers skipped, %d judge calls",
		s.Pairs, s.Comparisons, s.Ties, s.Identical, s.Calls)
	if r.rmJudge >= 0 {
		w("- reward model vs judge on those pairs: the reward model scores the judge's chosen answer higher on %s of the %d pairs", pct(r.rmJudge), s.Pairs)
	} else {
		w("- reward model vs judge: no pairs to score")
	}
	w("- time: %ds in all; %s", int(took.Seconds()), strings.Join(d.timings, ", "))
	return b.String()
}
