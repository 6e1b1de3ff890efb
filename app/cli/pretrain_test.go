package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"llmlab/core/model"
	"llmlab/core/tokenizer"
	"llmlab/core/train"
)

// TestPretrainCtrlC: an interrupt writes a checkpoint and exits 0; the
// run then resumes from that checkpoint.
func TestPretrainCtrlC(t *testing.T) {
	if testing.Short() {
		t.Skip("slow end-to-end test")
	}
	data := corpus(t)
	out := filepath.Join(t.TempDir(), "run")
	args := []string{"pretrain", "--init", "tiny", "--data", data, "--out", out, "--steps", "40",
		"--batch", "2", "--ctx", "32", "--json"}
	cmd := child(t, args...)
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	interrupted := false
	for sc.Scan() {
		if !interrupted && strings.Contains(sc.Text(), `"event":"step"`) {
			cmd.Process.Signal(os.Interrupt)
			interrupted = true
		}
	}
	err := cmd.Wait()
	if err != nil {
		t.Fatalf("after Ctrl-C: %v\n%s", err, stderr.String())
	}
	steps, _ := filepath.Glob(filepath.Join(out, "checkpoints", "step-*"))
	if len(steps) != 1 || strings.HasSuffix(steps[0], "step-40") {
		t.Fatalf("want one checkpoint before the end, got %v", steps)
	}
	if _, err := os.Stat(filepath.Join(out, "final")); err == nil {
		t.Fatal("an interrupted run wrote final/")
	}
	// Another thread count is the same run: it resumes.
	code, msg := run(t, append(args, "--resume", "--threads", "1")...)
	if code != 0 || !strings.Contains(msg, "resumed from "+steps[0]) {
		t.Fatalf("resume: exit %d\n%s", code, msg)
	}
	if _, err := os.Stat(filepath.Join(out, "final", "model.safetensors")); err != nil {
		t.Fatal(err)
	}
}

// TestPretrainFinalFolder: --model DIR trains and writes RUN/final as an
// HF folder with the source's tokenizer files copied verbatim; eval reads
// it; run.json and metrics.jsonl are there.
func TestPretrainFinalFolder(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "m")
	if code, msg := run(t, "init", "--preset", "tiny", "--out", src); code != 0 {
		t.Fatal(msg)
	}
	out := filepath.Join(dir, "run")
	if code, msg := run(t, "pretrain", "--model", src, "--data", corpus(t), "--out", out, "--steps", "3", "--batch", "2", "--ctx", "32", "--json"); code != 0 {
		t.Fatal(msg)
	}
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
		a, _ := os.ReadFile(filepath.Join(src, f))
		b, err := os.ReadFile(filepath.Join(out, "final", f))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("final/%s is not a copy of the source's (%v)", f, err)
		}
	}
	if _, err := model.Load(filepath.Join(out, "final"), model.LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	var rec runRecord
	b, _ := os.ReadFile(filepath.Join(out, "run.json"))
	if err := json.Unmarshal(b, &rec); err != nil || rec.Train.Steps != 3 || rec.Batch != 2 || rec.Ctx != 32 {
		t.Errorf("run.json: %v %+v", err, rec)
	}
	m, _ := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	kinds := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(m)), "\n") {
		var ev struct {
			Kind string `json:"event"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("metrics.jsonl line %q: %v", line, err)
		}
		kinds[ev.Kind]++
	}
	if kinds["step"] != 3 || kinds["eval"] != 1 || kinds["checkpoint"] != 1 || kinds["done"] != 1 {
		t.Errorf("metrics.jsonl events: %v", kinds)
	}
	code, msg := run(t, "eval", "--model", filepath.Join(out, "final"), "--data", corpus(t), "--json")
	if code != 0 || !strings.Contains(msg, `"ppl"`) {
		t.Fatalf("eval of final/: exit %d %s", code, msg)
	}
}

// TestPretrainBadInputLeavesNothing: bad input exits 2 with a clear
// message and leaves no files behind.
func TestPretrainBadInputLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short.txt")
	os.WriteFile(short, []byte("too short for a window"), 0o644)
	empty := filepath.Join(dir, "empty.txt")
	os.WriteFile(empty, nil, 0o644)
	noTok := filepath.Join(dir, "notok")
	if code, msg := run(t, "init", "--preset", "tiny", "--out", noTok); code != 0 {
		t.Fatal(msg)
	}
	os.Remove(filepath.Join(noTok, "tokenizer.json"))
	existing := filepath.Join(dir, "existing")
	os.Mkdir(existing, 0o755)
	for _, tc := range []struct {
		name string
		out  string
		args []string
		want string
	}{
		{"corpus shorter than a window", filepath.Join(dir, "r1"), []string{"--init", "tiny", "--data", short, "--ctx", "64"}, "fewer than one window"},
		{"short corpus, existing folder", existing, []string{"--init", "tiny", "--data", short, "--ctx", "64"}, "fewer than one window"},
		{"empty file", filepath.Join(dir, "r2"), []string{"--init", "tiny", "--data", empty, "--ctx", "64"}, "empty file"},
		{"data is a folder", filepath.Join(dir, "r3"), []string{"--init", "tiny", "--data", dir, "--ctx", "64"}, "folder"},
		{"more memory than the machine has", filepath.Join(dir, "r5"), []string{"--init", "tiny", "--data", corpus(t), "--ctx", "128", "--batch", "10000000"}, "activations"},
		{"model without tokenizer", filepath.Join(dir, "r4"), []string{"--model", noTok, "--data", corpus(t), "--ctx", "64"}, "tokenizer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, msg := run(t, append([]string{"pretrain", "--out", tc.out, "--steps", "1"}, tc.args...)...)
			if code != 2 || !strings.Contains(msg, tc.want) {
				t.Errorf("exit %d, output %q (want 2 and %q)", code, msg, tc.want)
			}
			if tc.out == existing {
				if ents, _ := os.ReadDir(existing); len(ents) != 0 {
					t.Errorf("files left in the existing folder: %v", ents)
				}
			} else if _, err := os.Stat(tc.out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s was left behind", tc.out)
			}
		})
	}
}

// TestEvalCountsTokens: JSONL lines are separate sequences (len-1
// predictions each), a text file one stream (all but the first token
// predicted once), a broken line names file:line.
func TestEvalCountsTokens(t *testing.T) {
	dir := t.TempDir()
	m := filepath.Join(dir, "m")
	if code, msg := run(t, "init", "--preset", "tiny", "--out", m); code != 0 {
		t.Fatal(msg)
	}
	tok, err := tokenizer.Load(m)
	if err != nil {
		t.Fatal(err)
	}
	lines := []string{"Once upon a time", "a fox", strings.Repeat("long line ", 40)}
	var jl strings.Builder
	want := 0
	for _, l := range lines {
		b, _ := json.Marshal(map[string]string{"text": l})
		jl.Write(append(b, '\n'))
		want += min(len(tok.Encode(l, true)), 128) - 1 // truncated to the context
	}
	jsonl := filepath.Join(dir, "d.jsonl")
	os.WriteFile(jsonl, []byte(jl.String()), 0o644)
	txt := filepath.Join(dir, "d.txt")
	text := strings.Repeat("The fox ran home. ", 30)
	os.WriteFile(txt, []byte(text), 0o644)
	for _, tc := range []struct {
		path string
		want int
	}{
		{jsonl, want},
		{txt, len(tok.Encode(text, true)) - 1},
	} {
		code, out := run(t, "eval", "--model", m, "--data", tc.path, "--json")
		var r struct {
			Loss, PPL float64
			Tokens    int
		}
		if code != 0 || json.Unmarshal([]byte(out), &r) != nil {
			t.Fatalf("%s: exit %d %s", tc.path, code, out)
		}
		if r.Tokens != tc.want || r.Loss <= 0 || r.PPL <= 1 {
			t.Errorf("%s: got %+v, want %d tokens", filepath.Base(tc.path), r, tc.want)
		}
	}
}

// TestProgressBar: on a terminal the bar shows the step count, loss,
// tokens/s and ETA; other output goes on lines of its own.
func TestProgressBar(t *testing.T) {
	var buf bytes.Buffer
	r := &reporter{out: &buf, tty: true}
	r.event(train.Event{Kind: "start", Steps: 3})
	for s := 1; s <= 3; s++ {
		r.event(train.Event{Kind: "step", Step: s, Steps: 3, Loss: 2.5, LR: 1e-3, TokensPerSec: 1234, ETA: float64(3 - s)})
	}
	r.event(train.Event{Kind: "eval", Step: 3, Steps: 3, EvalLoss: 2.25})
	out := buf.String()
	for _, want := range []string{"3/3", "loss 2.5000", "1234 tok/s", "ETA 0s", "\rstep 3  eval loss 2.2500\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in %q", want, out)
		}
	}
}
