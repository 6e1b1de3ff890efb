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

	"llmlab/core/model"
	"llmlab/rlhf"
)

func ppoPrompts(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story about %d.\"}]}\n", i)
	}
	path := filepath.Join(t.TempDir(), "prompts.jsonl")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// ppoIterations parses the per-iteration JSON lines of a --json run.
func ppoIterations(t *testing.T, out string) []rlhf.PPOIteration {
	t.Helper()
	var its []rlhf.PPOIteration
	for _, line := range strings.Split(out, "\n") {
		var it rlhf.PPOIteration
		if json.Unmarshal([]byte(line), &it) == nil && it.Iteration > 0 {
			its = append(its, it)
		}
	}
	return its
}

// `llmlab ppo` on the demo model against an HTTP reward endpoint: it runs,
// saves the adapter and the value head, and resumes to more iterations.
func TestPPOCommandDemo(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var in struct{ Prompt, Response string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || !strings.Contains(in.Prompt, "Tell me a story") {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, `{"reward": %d}`, strings.Count(in.Response, "!"))
	}))
	defer srv.Close()
	data := ppoPrompts(t, 6)
	out := filepath.Join(t.TempDir(), "run")
	args := []string{"ppo", "--model", "demo", "--data", data, "--reward-url", srv.URL, "--out", out,
		"--prompts", "4", "--minibatch", "2", "--epochs", "1", "--max-tokens", "6", "--rank", "4", "--json"}
	code, msg := run(t, append(args, "--iterations", "1")...)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, msg)
	}
	if its := ppoIterations(t, msg); len(its) != 1 || its[0].KL != 0 || its[0].ClipFrac != 0 {
		t.Fatalf("first iteration: %+v\n%s", its, msg)
	}
	if calls.Load() != 4 {
		t.Errorf("the endpoint was asked %d times, want 4", calls.Load())
	}
	for _, f := range []string{"adapter_model.safetensors", "adapter_config.json", rlhf.ValueHeadFile} {
		if _, err := os.Stat(filepath.Join(out, "final", f)); err != nil {
			t.Errorf("final: %v", err)
		}
	}
	// Without --resume the folder is refused; with it the run goes on.
	if code, msg := run(t, append(args, "--iterations", "2")...); code != 2 || !strings.Contains(msg, "--resume") {
		t.Fatalf("second run without --resume: exit %d:\n%s", code, msg)
	}
	code, msg = run(t, append(args, "--iterations", "2", "--resume")...)
	if code != 0 {
		t.Fatalf("resume: exit %d:\n%s", code, msg)
	}
	if its := ppoIterations(t, msg); len(its) != 1 || its[0].Iteration != 2 {
		t.Fatalf("resumed run reported %+v", its)
	}
	// Another clip range is another run.
	if code, msg := run(t, append(args, "--iterations", "3", "--resume", "--clip", "0.3")...); code != 2 || !strings.Contains(msg, "clip") {
		t.Fatalf("resume with another --clip: exit %d:\n%s", code, msg)
	}
}

func TestPPOCommandBadInput(t *testing.T) {
	data := ppoPrompts(t, 2)
	out := filepath.Join(t.TempDir(), "run")
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "I am not JSON")
	}))
	defer garbage.Close()
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no reward", []string{}, 2, "exactly one reward source"},
		{"two rewards", []string{"--reward", "exact", "--reward-url", "http://127.0.0.1:1"}, 2, "exactly one reward source"},
		{"answer missing", []string{"--reward", "exact"}, 2, "no answer"},
		{"minibatch", []string{"--reward", "length:5", "--minibatch", "9"}, 2, "minibatch"},
		{"garbage endpoint", []string{"--reward-url", garbage.URL, "--out", out + "-g"}, 1, `not JSON {"reward": number}: "I am not JSON"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"ppo", "--model", "demo", "--data", data, "--out", out, "--prompts", "2", "--minibatch", "2",
				"--max-tokens", "3", "--iterations", "1", "--rank", "2"}, tc.args...)
			code, msg := run(t, args...)
			if code != tc.code || !strings.Contains(msg, tc.want) {
				t.Fatalf("exit %d, want %d with %q:\n%s", code, tc.code, tc.want, msg)
			}
		})
	}
}

// --reward-model reads a reward model folder (here a random tiny model
// with a score head) through its own template; --peft none trains all
// weights against a frozen copy.
func TestPPOCommandRewardModelFull(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	if code, msg := run(t, "init", "--preset", "tiny", "--out", base); code != 0 {
		t.Fatal(msg)
	}
	m, err := model.Load(base, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rm := rlhf.NewRewardModel(m)
	for i := range rm.Head.W.Value.F32 {
		rm.Head.W.Value.F32[i] = float32(i%5) - 2
	}
	if err := rm.SaveHead(base); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "run")
	code, msg := run(t, "ppo", "--model", base, "--template", "chatml", "--data", ppoPrompts(t, 3), "--reward-model", base,
		"--peft", "none", "--out", out, "--iterations", "2", "--prompts", "3", "--minibatch", "3", "--max-tokens", "4",
		"--target-kl", "1", "--kl", "k3", "--json")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, msg)
	}
	its := ppoIterations(t, msg)
	if len(its) != 2 || its[0].RewardStd == 0 || its[1].KLCoef == its[0].KLCoef {
		t.Fatalf("iterations %+v: want scores that differ and a moving β", its)
	}
	for _, f := range []string{"model.safetensors", "config.json", rlhf.ValueHeadFile} {
		if _, err := os.Stat(filepath.Join(out, "final", f)); err != nil {
			t.Errorf("final: %v", err)
		}
	}
}
