package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"llmlab/core/data/demo"
)

// TestAlignDemoQuick runs the whole align demo with two steps of each
// method: every step's command line is accepted, its summary read, and
// the summary written with a row per policy. (The outcome itself takes
// minutes: `make align-demo`.)
func TestAlignDemoQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every alignment method on the demo model (about a minute)")
	}
	var events, out bytes.Buffer
	d := &alignDemo{e: &Env{Ctx: context.Background(), Stdout: &events, Stderr: &out}, out: t.TempDir(), device: "cpu", threads: 2, sloppy: 30, quick: true, json: true}
	if err := d.run(); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	// --json: one event per stage, numbered, then "done".
	var evs []stageEvent
	for _, line := range strings.Split(strings.TrimSpace(events.String()), "\n") {
		var ev stageEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("%v in %q", err, line)
		}
		evs = append(evs, ev)
	}
	if len(evs) != len(alignStages)+1 || evs[len(evs)-1].Kind != "done" {
		t.Fatalf("%d events, want %d stages and done: %+v", len(evs), len(alignStages), evs)
	}
	for i, ev := range evs[:len(alignStages)] {
		if ev.Kind != "stage" || ev.Step != i+1 || ev.Steps != len(alignStages) || ev.ETA < 0 {
			t.Errorf("event %d: %+v", i, ev)
		}
	}
	if evs[len(alignStages)-1].ETA != 0 {
		t.Errorf("the last stage leaves an ETA of %v", evs[len(alignStages)-1].ETA)
	}
	sum, err := os.ReadFile(d.path("summary.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nsft ", "\ndpo ", "\nppo ", "\ngrpo ", "\nsft-arith ", "\ngrpo-arith ", "reward model: pairwise accuracy", "by rejected_kind:", "  - rude: "} {
		if !strings.Contains(string(sum), want) {
			t.Errorf("summary lacks %q:\n%s", want, sum)
		}
	}
	// The SFT set: the embedded prompts, about 30% of the replies sloppy.
	items, err := readInstructFile(d.path("data", "sft_train.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	sloppy := 0
	for _, it := range items {
		if it.Style != "" {
			sloppy++
		}
	}
	if len(items) != demo.NumTrain || sloppy < len(items)/4 || sloppy > len(items)*7/20 {
		t.Errorf("sft_train.jsonl: %d sloppy of %d", sloppy, len(items))
	}
	for _, name := range []string{"sft.log", "rlaif.log", "eval-grpo-arith.log"} {
		if _, err := os.Stat(filepath.Join(d.out, "logs", name)); err != nil {
			t.Error(err)
		}
	}
	// A second run into the same folder starts afresh (the training
	// commands would otherwise refuse their old run folders).
	os.WriteFile(d.path("stale"), nil, 0o644)
	events.Reset()
	if err := d.run(); err != nil {
		t.Fatalf("second run: %v\n%s", err, out.String())
	}
	if _, err := os.Stat(d.path("stale")); !os.IsNotExist(err) {
		t.Errorf("the earlier run's files were kept: %v", err)
	}
}

// The demo never empties a folder it did not write.
func TestAlignDemoKeepsOtherFolders(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "thesis.tex"), []byte("x"), 0o644)
	var out bytes.Buffer
	d := &alignDemo{e: &Env{Ctx: context.Background(), Stdout: &out, Stderr: &out}, out: dir, quick: true}
	if err := d.run(); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("run into a folder with other files: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "thesis.tex")); err != nil {
		t.Fatal(err)
	}
}

// A failing step stops the demo with an error that names its log and
// quotes its end.
func TestAlignDemoStepFails(t *testing.T) {
	var out bytes.Buffer
	d := &alignDemo{e: &Env{Ctx: context.Background(), Stdout: &out, Stderr: &out}, out: t.TempDir()}
	os.MkdirAll(d.path("logs"), 0o755)
	_, err := d.step("rm", "rm", "--model", "demo", "--data", filepath.Join(d.out, "missing.jsonl"), "--out", d.path("rm"))
	if err == nil || !strings.Contains(err.Error(), filepath.Join("logs", "rm.log")) || !strings.Contains(err.Error(), "missing.jsonl") {
		t.Fatalf("error %v; want one naming logs/rm.log and the missing file", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d.e.Ctx = ctx
	if _, err := d.step("version", "version"); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("a cancelled demo went on: %v", err)
	}
}
