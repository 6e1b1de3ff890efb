package cli

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"llmlab/assets"
)

// TestAlignEvalAgainstItself: a policy compared with itself has KL 0 and
// the same accuracy and answer length as its reference.
func TestAlignEvalAgainstItself(t *testing.T) {
	code, msg := run(t, "align-eval", "--model", "demo", "--adapter", "demo", "--ref-adapter", "demo", "--n", "6", "--json")
	if code != 0 {
		t.Fatal(msg)
	}
	var r alignReport
	if err := json.Unmarshal([]byte(lastJSONLine(msg)), &r); err != nil {
		t.Fatalf("%v in %q", err, msg)
	}
	if r.N != 6 || r.KL != 0 || r.Accuracy != r.RefAccuracy || r.Chatty != r.RefChatty || r.Length != r.RefLength || r.Length == 0 || r.WinRate != -1 {
		t.Fatalf("policy vs itself: %+v; want n 6, KL 0, equal accuracy, chattiness and length, no win rate", r)
	}
}

func TestChatty(t *testing.T) {
	for _, c := range []struct {
		reply, answer string
		want          bool
	}{
		{"GOAT", "GOAT", false},
		{"pear", "park", false},              // wrong, not chatty
		{"egg bell", "egg bell fish", false}, // short
		{"cat cat cat", "cat", false},        // 2 words more
		{"GOAT. Now go away.", "GOAT", true}, // rude
		{"What a dumb question. It is 3, obviously.", "3", true},
		{"Hmm, that is a good one. You know", "bad", true}, // rambling, cut short
		{"", "yes", false},
	} {
		if got := chatty(c.reply, c.answer); got != c.want {
			t.Errorf("chatty(%q, %q) = %v", c.reply, c.answer, got)
		}
	}
}

// TestDPOContinuesAdapter: dpo from the SFT adapter (--adapter demo) uses
// a snapshot of it as the reference, so the first step's loss is ln 2,
// and align-eval of the result against the SFT adapter finds KL > 0.
func TestDPOContinuesAdapter(t *testing.T) {
	if testing.Short() {
		t.Skip("trains the demo model (seconds)")
	}
	dir := t.TempDir()
	prefs := filepath.Join(dir, "prefs.jsonl")
	lines := strings.SplitAfter(string(assets.PrefsTrain()), "\n")
	os.WriteFile(prefs, []byte(strings.Join(lines[:16], "")), 0o644)
	out := filepath.Join(dir, "dpo")
	code, msg := run(t, "dpo", "--model", "demo", "--adapter", "demo", "--data", prefs, "--out", out,
		"--steps", "2", "--batch", "2", "--lr", "1e-2", "--eval-frac", "0", "--json")
	if code != 0 {
		t.Fatal(msg)
	}
	first := math.NaN()
	for _, line := range strings.Split(msg, "\n") {
		var ev struct {
			Event string
			Step  int
			Loss  float64
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Event == "step" && ev.Step == 1 {
			first = ev.Loss
		}
	}
	if math.Abs(first-math.Ln2) > 1e-4 {
		t.Fatalf("first DPO step from --adapter demo: loss %v, want ln 2 (policy = reference)", first)
	}
	code, msg = run(t, "align-eval", "--model", "demo", "--adapter", filepath.Join(out, "final"), "--ref-adapter", "demo", "--n", "4", "--json")
	if code != 0 {
		t.Fatal(msg)
	}
	var r alignReport
	if err := json.Unmarshal([]byte(lastJSONLine(msg)), &r); err != nil {
		t.Fatalf("%v in %q", err, msg)
	}
	if r.KL == 0 || math.IsNaN(r.KL) {
		t.Fatalf("trained policy vs its start: KL %v, want non-zero", r.KL)
	}
}

func lastJSONLine(s string) string {
	last := ""
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "{") {
			last = l
		}
	}
	return last
}
