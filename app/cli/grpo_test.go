package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"llmlab/rlhf"
)

// grpoSteps parses the per-step JSON lines of a --json run, timings zeroed.
func grpoSteps(out string) []rlhf.GRPOStep {
	var ss []rlhf.GRPOStep
	for _, line := range strings.Split(out, "\n") {
		var s rlhf.GRPOStep
		if json.Unmarshal([]byte(line), &s) == nil && s.Step > 0 {
			s.RolloutS, s.UpdateS = 0, 0
			ss = append(ss, s)
		}
	}
	return ss
}

// `llmlab grpo --resume`: 2 steps then 2 more equal 4 in one go (the
// reports of steps 3 and 4 and the adapter, byte for byte, at 1 thread);
// an existing run needs --resume, and other settings are refused.
func TestGRPOCommandResume(t *testing.T) {
	dir := t.TempDir()
	data := sayTasks(t, dir, 5)
	args := func(out string, steps int, more ...string) []string {
		return append([]string{"grpo", "--model", "demo", "--data", data, "--out", out, "--reward", "regex:[0-9]", "--reward", "0.5*length:3",
			"--prompts", "2", "--group", "3", "--max-tokens", "4", "--rank", "2", "--lr", "1e-2", "--threads", "1", "--json",
			"--steps", fmt.Sprint(steps)}, more...)
	}
	whole := filepath.Join(dir, "whole")
	code, msg := run(t, args(whole, 4)...)
	if code != 0 {
		t.Fatalf("4 steps: exit %d:\n%s", code, msg)
	}
	all := grpoSteps(msg)
	if len(all) != 4 {
		t.Fatalf("4 steps reported %+v:\n%s", all, msg)
	}

	part := filepath.Join(dir, "part")
	if code, msg := run(t, args(part, 2)...); code != 0 {
		t.Fatalf("2 steps: exit %d:\n%s", code, msg)
	}
	if code, msg := run(t, args(part, 4)...); code != 2 || !strings.Contains(msg, "--resume") {
		t.Fatalf("again without --resume: exit %d:\n%s", code, msg)
	}
	if code, msg := run(t, args(part, 4, "--resume", "--clip", "0.3")...); code != 2 || !strings.Contains(msg, "clip") {
		t.Fatalf("resume with another --clip: exit %d:\n%s", code, msg)
	}
	code, msg = run(t, args(part, 4, "--resume")...)
	if code != 0 {
		t.Fatalf("resume: exit %d:\n%s", code, msg)
	}
	if d := cmp.Diff(all[2:], grpoSteps(msg)); d != "" {
		t.Errorf("steps 3 and 4 (-whole +resumed):\n%s", d)
	}
	for _, f := range []string{"adapter_model.safetensors", "adapter_config.json"} {
		x, err1 := os.ReadFile(filepath.Join(whole, "final", f))
		y, err2 := os.ReadFile(filepath.Join(part, "final", f))
		if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
			t.Errorf("final/%s differs between 4 steps and 2 + 2 (%v, %v)", f, err1, err2)
		}
	}
	for _, out := range []string{whole, part} {
		if _, err := os.Stat(filepath.Join(out, "checkpoints", "step-4", "state.json")); err != nil {
			t.Error(err)
		}
	}
}

// With --eval and several reward terms, grpo reports each term's held-out
// mean; the weighted means add up to the total.
func TestGRPOHeldOutTerms(t *testing.T) {
	dir := t.TempDir()
	data := sayTasks(t, dir, 4)
	code, msg := run(t, "grpo", "--model", "demo", "--data", data, "--eval", data, "--out", filepath.Join(dir, "out"),
		"--reward", "regex:[0-9]", "--reward", "0.5*length:3", "--prompts", "2", "--group", "2", "--max-tokens", "4",
		"--rank", "2", "--threads", "1", "--steps", "1", "--json")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, msg)
	}
	var res struct {
		Before      float64   `json:"reward_before"`
		After       float64   `json:"reward_after"`
		TermsBefore []float64 `json:"terms_before"`
		TermsAfter  []float64 `json:"terms_after"`
	}
	if err := json.Unmarshal([]byte(lastJSONLine(msg)), &res); err != nil {
		t.Fatalf("%v in %q", err, msg)
	}
	if len(res.TermsBefore) != 2 || len(res.TermsAfter) != 2 {
		t.Fatalf("terms %v and %v, want 2 each", res.TermsBefore, res.TermsAfter)
	}
	for _, c := range []struct {
		total float64
		terms []float64
	}{{res.Before, res.TermsBefore}, {res.After, res.TermsAfter}} {
		if got := c.terms[0] + 0.5*c.terms[1]; math.Abs(got-c.total) > 1e-6 {
			t.Errorf("terms %v weigh up to %v, total %v", c.terms, got, c.total)
		}
	}
}

// sayTasks writes n tasks "Say i." with answer i to dir/tasks.jsonl.
func sayTasks(t *testing.T, dir string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "{\"messages\":[{\"role\":\"user\",\"content\":\"Say %d.\"}],\"answer\":\"%d\"}\n", i, i)
	}
	data := filepath.Join(dir, "tasks.jsonl")
	if err := os.WriteFile(data, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}
