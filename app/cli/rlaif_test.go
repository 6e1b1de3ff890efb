package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"llmlab/core/data"
)

// shorterJudge is an OpenAI-compatible judge that prefers the shorter
// answer and, on equal lengths, says "A" (a position bias: a tie).
// seen (nil: none) gets every question asked.
func shorterJudge(t *testing.T, calls *atomic.Int64, seen func(question string)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls != nil {
			calls.Add(1)
		}
		var req struct {
			Messages []struct{ Content string } `json:"messages"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Messages) == 0 {
			http.Error(w, "bad body", 400)
			return
		}
		q := req.Messages[0].Content
		if seen != nil {
			seen(q)
		}
		_, rest, _ := strings.Cut(q, "[Answer A]\n")
		first, rest, _ := strings.Cut(rest, "\n\n[Answer B]\n")
		second, _, _ := strings.Cut(rest, "\n\nWhich answer")
		reply := "A"
		if len(second) < len(first) {
			reply = "B"
		}
		fmt.Fprintf(w, `{"choices":[{"index":0,"message":{"role":"assistant","content":%q}}]}`, reply)
	}))
	t.Cleanup(srv.Close)
	return srv
}

type rlaifSummary struct {
	Out         string `json:"out"`
	Pairs       int    `json:"pairs"`
	Ties        int    `json:"ties"`
	Identical   int    `json:"identical"`
	Comparisons int    `json:"comparisons"`
	Calls       int64  `json:"judge_calls"`
	Hits        int64  `json:"cache_hits"`
}

func lastSummary(t *testing.T, out string) rlaifSummary {
	t.Helper()
	var s rlaifSummary
	for _, line := range strings.Split(out, "\n") {
		var x rlaifSummary
		if json.Unmarshal([]byte(line), &x) == nil && x.Out != "" {
			s = x
		}
	}
	if s.Out == "" {
		t.Fatalf("no summary in:\n%s", out)
	}
	return s
}

func TestRLAIFWithHTTPJudge(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	if code, msg := run(t, "init", "--preset", "tiny", "--out", base); code != 0 {
		t.Fatal(msg)
	}
	var b strings.Builder
	for i := 0; i < 6; i++ {
		fmt.Fprintf(&b, "{\"prompt\":\"Say something about %d.\"}\n", i)
	}
	prompts := filepath.Join(dir, "prompts.jsonl")
	os.WriteFile(prompts, []byte(b.String()), 0o644)
	var calls atomic.Int64
	srv := shorterJudge(t, &calls, nil)
	out := filepath.Join(dir, "prefs.jsonl")
	args := []string{"rlaif", "--model", base, "--template", "chatml", "--judge", srv.URL, "--prompts", prompts, "--out", out,
		"--samples", "3", "--max-new", "6", "--batch", "4", "--temperature", "1.2", "--threads", "1", "--json"}
	code, msg := run(t, args...)
	if code != 0 {
		t.Fatal(msg)
	}
	s := lastSummary(t, msg)
	t.Logf("summary %+v", s)
	if s.Comparisons+s.Identical != 6*3 || s.Pairs+s.Ties != s.Comparisons || s.Pairs == 0 {
		t.Errorf("counts do not add up: %+v (6 prompts x 3 pairs each)", s)
	}
	if s.Calls != int64(2*s.Comparisons) || calls.Load() != s.Calls {
		t.Errorf("%d judge calls reported, %d received; want 2 per comparison (%d)", s.Calls, calls.Load(), s.Comparisons)
	}

	// core/data reads the file as preference pairs, the judge's choice
	// (the shorter answer) is the chosen one, and no temp file is left.
	ds, err := data.LoadJSONL(out)
	if err != nil {
		t.Fatal(err)
	}
	if ds.Shape != data.ShapePreference || len(ds.Records) != s.Pairs {
		t.Fatalf("%s: shape %v with %d records; want preference with %d", out, ds.Shape, len(ds.Records), s.Pairs)
	}
	for _, r := range ds.Records {
		c, rj := strings.TrimSpace(r.Completion[0].Content), strings.TrimSpace(r.Rejected[0].Content)
		if len(c) >= len(rj) || len(r.Prompt) != 1 || !strings.HasPrefix(r.Prompt[0].Content, "Say something") {
			t.Errorf("line %d: prompt %q chosen %q rejected %q", r.Line, r.Prompt, c, rj)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "prefs.jsonl.tmp-*")); len(left) != 0 {
		t.Errorf("temp files left behind: %v", left)
	}
	first, _ := os.ReadFile(out)

	// A rerun with the same flags samples the same answers and asks the
	// judge nothing: every answer comes from the cache beside --out.
	code, msg = run(t, args...)
	if code != 0 {
		t.Fatal(msg)
	}
	s2 := lastSummary(t, msg)
	if s2.Calls != 0 || s2.Hits != int64(2*s.Comparisons) {
		t.Errorf("rerun: %d calls and %d cache hits; want 0 and %d", s2.Calls, s2.Hits, 2*s.Comparisons)
	}
	if again, _ := os.ReadFile(out); string(again) != string(first) {
		t.Error("the rerun wrote different pairs")
	}
}

func TestRLAIFWithLocalJudge(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	if code, msg := run(t, "init", "--preset", "tiny", "--out", base); code != 0 {
		t.Fatal(msg)
	}
	cfg := filepath.Join(dir, "judge.json")
	os.WriteFile(cfg, []byte(`{"model_type":"llama","vocab_size":257,"hidden_size":32,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":2,"intermediate_size":48,"max_position_embeddings":512}`), 0o644)
	judge := filepath.Join(dir, "judge")
	if code, msg := run(t, "init", "--config", cfg, "--out", judge, "--seed", "3"); code != 0 {
		t.Fatal(msg)
	}
	rubric := filepath.Join(dir, "rubric.txt")
	os.WriteFile(rubric, []byte("Prefer the shorter answer."), 0o644)
	prompts := filepath.Join(dir, "prompts.jsonl")
	os.WriteFile(prompts, []byte("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":\"Hello\"}]}\n{\"messages\":[{\"role\":\"user\",\"content\":\"Bye\"}]}\n"), 0o644)
	out := filepath.Join(dir, "sub", "prefs.jsonl")
	code, msg := run(t, "rlaif", "--model", base, "--template", "chatml", "--judge", judge, "--judge-template", "chatml", "--rubric", rubric,
		"--prompts", prompts, "--out", out, "--max-new", "4", "--tie-margin", "0", "--threads", "1", "--json")
	if code != 0 {
		t.Fatal(msg)
	}
	s := lastSummary(t, msg)
	if s.Comparisons+s.Identical != 2 || s.Calls != int64(s.Comparisons) {
		t.Errorf("summary %+v; want 2 prompts' pairs and one forward pass per comparison", s)
	}
	// A rubric that leaves no room in the judge's context is bad input.
	os.WriteFile(rubric, []byte(strings.Repeat("Be fair. ", 60)), 0o644)
	code, msg = run(t, "rlaif", "--model", base, "--template", "chatml", "--judge", judge, "--judge-template", "chatml", "--rubric", rubric,
		"--prompts", prompts, "--out", out)
	if code != 2 || !strings.Contains(msg, "shorter --rubric") {
		t.Errorf("exit %d: %s", code, msg)
	}
	if s.Pairs > 0 {
		if ds, err := data.LoadJSONL(out); err != nil || ds.Shape != data.ShapePreference {
			t.Errorf("output not preference JSONL: %v", err)
		}
	} else if b, err := os.ReadFile(out); err != nil || len(b) != 0 {
		t.Errorf("no pairs, but the output is %q (%v)", b, err)
	}
}

func TestRLAIFBadInput(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "text.jsonl")
	os.WriteFile(text, []byte("{\"text\":\"hello\"}\n"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no judge", []string{"--model", "demo", "--prompts", text, "--out", "x"}, "--judge, --prompts and --out are required"},
		{"one sample", []string{"--model", "demo", "--judge", "http://127.0.0.1:1", "--prompts", text, "--out", "x", "--samples", "1"}, "--samples"},
		{"greedy", []string{"--model", "demo", "--judge", "http://127.0.0.1:1", "--prompts", text, "--out", "x", "--temperature", "0"}, "--temperature"},
		{"text prompts", []string{"--model", "demo", "--judge", "http://127.0.0.1:1", "--prompts", text, "--out", filepath.Join(dir, "o")}, "no prompts"},
		{"missing rubric", []string{"--model", "demo", "--judge", "http://127.0.0.1:1", "--prompts", text, "--out", "x", "--rubric", filepath.Join(dir, "nope")}, "--rubric"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, msg := run(t, append([]string{"rlaif"}, tc.args...)...)
			if code != 2 || !strings.Contains(msg, tc.want) {
				t.Errorf("exit %d, output %q; want 2 and %q", code, msg, tc.want)
			}
		})
	}
}

func TestRLAIFMalformedJudge(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	if code, msg := run(t, "init", "--preset", "tiny", "--out", base); code != 0 {
		t.Fatal(msg)
	}
	prompts := filepath.Join(dir, "prompts.jsonl")
	os.WriteFile(prompts, []byte("{\"prompt\":\"one\"}\n{\"prompt\":\"two\"}\n{\"prompt\":\"three\"}\n"), 0o644)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"choices":[{"index":0,"message":{"role":"assistant","content":"Maybe the first one?"}}]}`)
	}))
	t.Cleanup(srv.Close)
	args := []string{"rlaif", "--model", base, "--template", "chatml", "--judge", srv.URL, "--prompts", prompts,
		"--max-new", "6", "--temperature", "1.5", "--threads", "1", "--cache", "none"}
	// Skipped and counted while few...
	code, msg := run(t, append(args, "--out", filepath.Join(dir, "a.jsonl"), "--json")...)
	if code != 0 {
		t.Fatal(msg)
	}
	if s := lastSummary(t, msg); s.Pairs != 0 || !strings.Contains(msg, `"malformed":3`) || !strings.Contains(msg, `"Maybe the first one?"`) {
		t.Errorf("summary %+v in\n%s", s, msg)
	}
	// ...and fatal beyond --max-malformed, leaving no output file.
	out := filepath.Join(dir, "b.jsonl")
	code, msg = run(t, append(args, "--out", out, "--max-malformed", "1")...)
	if code != 1 || !strings.Contains(msg, "names neither A nor B") {
		t.Errorf("exit %d: %s", code, msg)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed run left its output")
	}
}
