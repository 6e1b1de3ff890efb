package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"llmlab/core/chat"
	"llmlab/core/data"
	"llmlab/core/model"
	"llmlab/core/tensor"
	"llmlab/rlhf"
)

const judgePrefs = `{"prompt":[{"role":"user","content":"What is 2 plus 2?"}],"chosen":[{"role":"assistant","content":"4"}],"rejected":[{"role":"assistant","content":"5"}]}
{"prompt":[{"role":"system","content":"Be brief."},{"role":"user","content":"Say hi."}],"chosen":[{"role":"assistant","content":"Hi."}],"rejected":[{"role":"assistant","content":"Go away."}]}
`

// judge-data writes each pair in both orders, as exactly the question the
// local judge asks, and the tokens SFT trains on after that question are
// the letter the judge reads.
func TestRLAIFJudgeData(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	if code, msg := run(t, "init", "--preset", "tiny", "--out", base); code != 0 {
		t.Fatal(msg)
	}
	prefs := filepath.Join(dir, "prefs.jsonl")
	os.WriteFile(prefs, []byte(judgePrefs), 0o644)
	rubric := "Prefer the correct, polite answer."
	rubricPath := filepath.Join(dir, "rubric.txt")
	os.WriteFile(rubricPath, []byte(rubric+"\n"), 0o644)
	out := filepath.Join(dir, "judge.jsonl")
	if code, msg := run(t, "rlaif", "judge-data", "--prefs", prefs, "--rubric", rubricPath, "--out", out); code != 0 {
		t.Fatal(msg)
	}

	q2 := "System: Be brief.\nUser: Say hi." // judgeText of a conversation
	turns := func(q, first, second, letter string) []chat.Message {
		return []chat.Message{
			{Role: chat.RoleUser, Content: rlhf.JudgeQuestion(rubric, q, first, second)},
			{Role: chat.RoleAssistant, Content: letter},
		}
	}
	want := [][]chat.Message{
		turns("What is 2 plus 2?", "4", "5", "A"),
		turns("What is 2 plus 2?", "5", "4", "B"),
		turns(q2, "Hi.", "Go away.", "A"),
		turns(q2, "Go away.", "Hi.", "B"),
	}
	ds, err := data.LoadJSONL(out)
	if err != nil {
		t.Fatal(err)
	}
	if ds.Shape != data.ShapeChat {
		t.Fatalf("%s: shape %v, want chat", out, ds.Shape)
	}
	var got [][]chat.Message
	for _, r := range ds.Records {
		got = append(got, r.Prompt)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("judge data (-want +got):\n%s", d)
	}

	// Train-time tokens = judge-time tokens, then the verdict letter.
	mf := modelFlags{model: base}
	l, err := mf.load(model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lj, err := rlhf.NewLocalJudge(l.M, tensor.NewCPU(1), l.Tok, chat.Format{Builtin: chat.ChatML}, rubric)
	if err != nil {
		t.Fatal(err)
	}
	exs, _, err := data.BuildSFT(l.Tok, ds, data.BuildOpts{Template: chat.ChatML})
	if err != nil || len(exs) != 4 {
		t.Fatalf("BuildSFT: %d examples, %v", len(exs), err)
	}
	aIDs, bIDs := lj.ChoiceTokens()
	for i, e := range exs {
		k := slices.IndexFunc(e.Labels, func(l int32) bool { return l != data.IgnoreIndex })
		ask, err := data.EncodePrompt(l.Tok, chat.ChatML, want[i][:1])
		if err != nil {
			t.Fatal(err)
		}
		if k < 0 || !slices.Equal(e.IDs[:k], ask) {
			t.Errorf("example %d: the trained prompt (%d tokens) is not the judge's question (%d tokens)", i, k, len(ask))
			continue
		}
		letter := aIDs
		if i%2 == 1 {
			letter = bIDs
		}
		if !slices.Contains(letter, e.IDs[k]) {
			t.Errorf("example %d: first trained token %d, want one of %v", i, e.IDs[k], letter)
		}
	}

	// judge-eval asks an untuned model about the labelled pairs (one with
	// room in its context for the question: tiny's is 128 tokens).
	cfg := filepath.Join(dir, "judge.json")
	os.WriteFile(cfg, []byte(`{"model_type":"llama","vocab_size":257,"hidden_size":32,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":2,"intermediate_size":48,"max_position_embeddings":512}`), 0o644)
	judge := filepath.Join(dir, "judge")
	if code, msg := run(t, "init", "--config", cfg, "--out", judge, "--seed", "3"); code != 0 {
		t.Fatal(msg)
	}
	code, msg := run(t, "rlaif", "judge-eval", "--judge", judge, "--judge-template", "chatml", "--rubric", rubricPath,
		"--prefs", prefs, "--threads", "1", "--json")
	if code != 0 {
		t.Fatal(msg)
	}
	var st judgeEvalStats
	if err := json.Unmarshal([]byte(msg), &st); err != nil {
		t.Fatalf("%v: %s", err, msg)
	}
	if st.Pairs != 2 || st.Agree+st.Against+st.Ties != 2 || st.Accuracy != float64(st.Agree)/2 {
		t.Errorf("judge-eval summary %+v; want 2 pairs that add up", st)
	}
}

func TestRLAIFJudgeBadInput(t *testing.T) {
	dir := t.TempDir()
	chatFile := filepath.Join(dir, "chat.jsonl")
	os.WriteFile(chatFile, []byte("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":\"Hello\"}]}\n"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"data: no out", []string{"judge-data", "--prefs", chatFile}, "usage: llmlab rlaif judge-data"},
		{"data: not prefs", []string{"judge-data", "--prefs", chatFile, "--out", filepath.Join(dir, "o.jsonl")}, "want preference pairs"},
		{"data: missing rubric", []string{"judge-data", "--prefs", chatFile, "--out", "x", "--rubric", filepath.Join(dir, "nope")}, "--rubric"},
		{"eval: no judge", []string{"judge-eval", "--prefs", chatFile}, "usage: llmlab rlaif judge-eval"},
		{"eval: not prefs", []string{"judge-eval", "--judge", "demo", "--prefs", chatFile}, "want preference pairs"},
		{"eval: margin", []string{"judge-eval", "--judge", "demo", "--prefs", chatFile, "--tie-margin", "0.5"}, "--tie-margin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, msg := run(t, append([]string{"rlaif"}, tc.args...)...)
			if code != 2 || !strings.Contains(msg, tc.want) {
				t.Errorf("exit %d, output %q; want 2 and %q", code, msg, tc.want)
			}
		})
	}
}

func TestJudgeExamplesOffTopic(t *testing.T) {
	rec := func(task, q, chosen, rejected string) data.Record {
		r := data.Record{
			Prompt:     []chat.Message{{Role: chat.RoleUser, Content: q}},
			Completion: []chat.Message{{Role: chat.RoleAssistant, Content: chosen}},
			Rejected:   []chat.Message{{Role: chat.RoleAssistant, Content: rejected}},
		}
		if task != "" {
			r.Extra = map[string]json.RawMessage{"task": json.RawMessage(`"` + task + `"`)}
		}
		return r
	}
	recs := []data.Record{
		rec("add", "1+1?", "2", "3"),
		rec("upper", "cat?", "CAT", "cat"),
		rec("add", "2+2?", "4", "5"),
		rec("add", "3+1?", "4", "6"), // the next add's answer is the same: no off-topic pair
	}
	type question struct{ Q, Letter string }
	var got []question
	exs, err := judgeExamples("R", recs, true, "", "prefs.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range exs {
		got = append(got, question{r.Messages[0].Content, r.Messages[1].Content})
	}
	both := func(q, c, rej string) []question {
		return []question{{rlhf.JudgeQuestion("R", q, c, rej), "A"}, {rlhf.JudgeQuestion("R", q, rej, c), "B"}}
	}
	var want []question
	for _, p := range [][3]string{
		{"1+1?", "2", "3"}, {"1+1?", "2", "4"}, // next add: 2+2
		{"cat?", "CAT", "cat"},                 // the only upper: no off-topic pair
		{"2+2?", "4", "5"},                     // next add (3+1) answers 4 too
		{"3+1?", "4", "6"}, {"3+1?", "4", "2"}, // wraps around to 1+1
	} {
		want = append(want, both(p[0], p[1], p[2])...)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("judge examples (-want +got):\n%s", d)
	}
	if exs, _ := judgeExamples("R", recs, false, "", "prefs.jsonl"); len(exs) != 2*len(recs) {
		t.Errorf("without off-topic pairs: %d examples, want %d", len(exs), 2*len(recs))
	}
}
