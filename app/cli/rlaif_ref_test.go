package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"llmlab/core/chat"
	"llmlab/core/data"
	"llmlab/rlhf"
)

// rlaif --reference-field shows the judge each prompt's reference answer
// (and the policy never sees it); a record without one is an error that
// names the file and line.
func TestRLAIFReferenceField(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	if code, msg := run(t, "init", "--preset", "tiny", "--out", base); code != 0 {
		t.Fatal(msg)
	}
	var b strings.Builder
	refs := map[string]string{}
	for i := 0; i < 4; i++ {
		q := fmt.Sprintf("What is %d plus 1?", i)
		refs[q] = fmt.Sprint(i + 1)
		if i%2 == 0 {
			fmt.Fprintf(&b, "{\"prompt\":%q,\"answer\":%q}\n", q, refs[q])
		} else { // a number works as well as a string
			fmt.Fprintf(&b, "{\"prompt\":%q,\"answer\":%s}\n", q, refs[q])
		}
	}
	prompts := filepath.Join(dir, "prompts.jsonl")
	os.WriteFile(prompts, []byte(b.String()), 0o644)

	var mu sync.Mutex
	var questions []string
	// The judge prefers the shorter answer and records each question.
	srv := shorterJudge(t, nil, func(q string) {
		mu.Lock()
		questions = append(questions, q)
		mu.Unlock()
	})
	out := filepath.Join(dir, "prefs.jsonl")
	args := []string{"rlaif", "--model", base, "--template", "chatml", "--judge", srv.URL, "--prompts", prompts, "--out", out,
		"--samples", "2", "--max-new", "6", "--temperature", "1.5", "--threads", "1", "--reference-field", "answer", "--cache", "none", "--json"}
	if code, msg := run(t, args...); code != 0 {
		t.Fatal(msg)
	}
	if len(questions) == 0 {
		t.Fatal("the judge was asked nothing")
	}
	for _, q := range questions {
		_, rest, _ := strings.Cut(q, "[Question]\n")
		prompt, rest, _ := strings.Cut(rest, "\n\n")
		ref, ok := strings.CutPrefix(rest, "[Reference answer]\n")
		ref, _, _ = strings.Cut(ref, "\n\n")
		if !ok || ref != refs[prompt] {
			t.Errorf("question about %q: reference %q (section found: %v), want %q:\n%s", prompt, ref, ok, refs[prompt], q)
		}
	}

	// The pairs record the reference their judge saw.
	ds, err := data.LoadJSONL(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Records) == 0 {
		t.Fatal("no pairs written")
	}
	for _, r := range ds.Records {
		var ref string
		if err := json.Unmarshal(r.Extra["reference"], &ref); err != nil || ref != refs[r.Prompt[0].Content] {
			t.Errorf("line %d: reference %s, want %q", r.Line, r.Extra["reference"], refs[r.Prompt[0].Content])
		}
	}

	// A record without the field, and one with an empty value.
	for _, tc := range []struct{ line, want string }{
		{`{"prompt":"What is 9 plus 1?"}`, `prompts.jsonl:5: the record has no "answer" field`},
		{`{"prompt":"What is 9 plus 1?","answer":" "}`, `prompts.jsonl:5: --reference-field "answer" is empty`},
		{`{"prompt":"What is 9 plus 1?","answer":["10"]}`, `prompts.jsonl:5: --reference-field "answer" is ["10"]`},
	} {
		os.WriteFile(prompts, []byte(b.String()+tc.line+"\n"), 0o644)
		code, msg := run(t, args...)
		if code != 2 || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: exit %d, output %q; want 2 and %q", tc.line, code, msg, tc.want)
		}
	}
}

func TestJudgeExamplesReference(t *testing.T) {
	rec := func(line int, q, chosen, rejected, answer string) data.Record {
		r := data.Record{
			Line:       line,
			Prompt:     []chat.Message{{Role: chat.RoleUser, Content: q}},
			Completion: []chat.Message{{Role: chat.RoleAssistant, Content: chosen}},
			Rejected:   []chat.Message{{Role: chat.RoleAssistant, Content: rejected}},
			Extra:      map[string]json.RawMessage{"task": json.RawMessage(`"add"`)},
		}
		if answer != "" {
			r.Extra["answer"] = json.RawMessage(answer)
		}
		return r
	}
	recs := []data.Record{
		rec(1, "1+1?", "2", "3", `"2"`),
		rec(2, "2+2?", "4", "5", `4`),
	}
	exs, err := judgeExamples("R", recs, true, "answer", "prefs.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	type question struct{ Q, Letter string }
	var got []question
	for _, r := range exs {
		got = append(got, question{r.Messages[0].Content, r.Messages[1].Content})
	}
	both := func(q, ref, c, rej string) []question {
		return []question{{rlhf.JudgeQuestionRef("R", q, ref, c, rej), "A"}, {rlhf.JudgeQuestionRef("R", q, ref, rej, c), "B"}}
	}
	var want []question
	for _, p := range [][4]string{
		{"1+1?", "2", "2", "3"}, {"1+1?", "2", "2", "4"}, // the off-topic pair keeps its own question's reference
		{"2+2?", "4", "4", "5"}, {"2+2?", "4", "4", "2"},
	} {
		want = append(want, both(p[0], p[1], p[2], p[3])...)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("judge examples (-want +got):\n%s", d)
	}
	// Without the field, the questions are those without references.
	plain, err := judgeExamples("R", recs, false, "", "prefs.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if q := plain[0].Messages[0].Content; q != rlhf.JudgeQuestion("R", "1+1?", "2", "3") {
		t.Errorf("no --reference-field: question\n%s", q)
	}
	recs = append(recs, rec(3, "3+3?", "6", "7", ""))
	if _, err := judgeExamples("R", recs, false, "answer", "prefs.jsonl"); err == nil || !strings.Contains(err.Error(), `prefs.jsonl:3: the record has no "answer" field`) {
		t.Errorf("err = %v; want the file and line 3", err)
	}
}

// judge-eval --reference-field asks with the references; --by splits the
// figures by a field and the groups add up to the whole.
func TestJudgeEvalReferenceBy(t *testing.T) {
	dir := t.TempDir()
	prefs := filepath.Join(dir, "prefs.jsonl")
	os.WriteFile(prefs, []byte(`{"prompt":"What is 2 plus 2?","chosen":"4","rejected":"5","answer":"4","rejected_kind":"wrong"}
{"prompt":"Say hi.","chosen":"Hi.","rejected":"Go away.","answer":"Hi.","rejected_kind":"rude"}
{"prompt":"What is 3 plus 3?","chosen":"6","rejected":"Six, you fool.","answer":6,"rejected_kind":"rude"}
`), 0o644)
	cfg := filepath.Join(dir, "judge.json")
	os.WriteFile(cfg, []byte(`{"model_type":"llama","vocab_size":257,"hidden_size":32,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":2,"intermediate_size":48,"max_position_embeddings":512}`), 0o644)
	judge := filepath.Join(dir, "judge")
	if code, msg := run(t, "init", "--config", cfg, "--out", judge, "--seed", "3"); code != 0 {
		t.Fatal(msg)
	}
	evalArgs := func(extra ...string) []string {
		return append([]string{"rlaif", "judge-eval", "--judge", judge, "--judge-template", "chatml", "--rubric", filepath.Join(dir, "rubric.txt"),
			"--prefs", prefs, "--threads", "1", "--tie-margin", "0"}, extra...)
	}
	os.WriteFile(filepath.Join(dir, "rubric.txt"), []byte("Be fair.\n"), 0o644)
	eval := func(extra ...string) judgeEvalStats {
		t.Helper()
		code, msg := run(t, evalArgs(append(extra, "--json")...)...)
		if code != 0 {
			t.Fatal(msg)
		}
		var st judgeEvalStats
		if err := json.Unmarshal([]byte(msg), &st); err != nil {
			t.Fatalf("%v: %s", err, msg)
		}
		return st
	}
	plain := eval("--by", "rejected_kind")
	ref := eval("--by", "rejected_kind", "--reference-field", "answer")
	if plain.MeanPChosen == ref.MeanPChosen {
		t.Errorf("the reference changed nothing: mean P(chosen) %v both times", ref.MeanPChosen)
	}
	for _, st := range []judgeEvalStats{plain, ref} {
		if len(st.By) != 2 || st.By["wrong"] == nil || st.By["rude"] == nil || st.By["wrong"].Pairs != 1 || st.By["rude"].Pairs != 2 {
			t.Fatalf("groups %+v; want wrong: 1 pair, rude: 2", st.By)
		}
		sum := *st.By["wrong"]
		r := st.By["rude"]
		sum.Pairs += r.Pairs
		sum.Agree += r.Agree
		sum.Against += r.Against
		sum.Ties += r.Ties
		if sum.Pairs != st.Pairs || sum.Agree != st.Agree || sum.Against != st.Against || sum.Ties != st.Ties {
			t.Errorf("the groups %+v and %+v do not add up to %+v", *st.By["wrong"], *r, st)
		}
		if r.Accuracy != float64(r.Agree)/2 {
			t.Errorf("rude accuracy %v with %d of 2 agreeing", r.Accuracy, r.Agree)
		}
	}
	// The text report has a line per group.
	code, msg := run(t, evalArgs("--by", "rejected_kind")...)
	if code != 0 || !strings.Contains(msg, "  rejected_kind=rude: ") || !strings.Contains(msg, "  rejected_kind=wrong: ") {
		t.Errorf("exit %d, output:\n%s", code, msg)
	}
	// A pair without the reference field.
	os.WriteFile(prefs, []byte(`{"prompt":"Say hi.","chosen":"Hi.","rejected":"Go away."}`+"\n"), 0o644)
	code, msg = run(t, evalArgs("--reference-field", "answer")...)
	if code != 2 || !strings.Contains(msg, `prefs.jsonl:1: the record has no "answer" field`) {
		t.Errorf("exit %d, output %q", code, msg)
	}
}
