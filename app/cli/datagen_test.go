package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"llmlab/core/data"
	"llmlab/core/data/demo"
)

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestDataGen(t *testing.T) {
	dir := t.TempDir()
	train := filepath.Join(dir, "instruct_train.jsonl")
	code, out, errs := runCLI("data", "gen", "--kind", "instruct", "--out", train, "--seed", "3", "--n", "50", "--n-eval", "10", "--n-more", "30")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "instruct_eval.jsonl") || !strings.Contains(out, "instruct_more.jsonl") {
		t.Errorf("output %q does not name the eval and extra files", out)
	}
	ds, err := data.LoadJSONL(train)
	if err != nil || ds.Shape != data.ShapeChat || len(ds.Records) != 50 {
		t.Fatalf("train: %v, %+v", err, ds)
	}
	// The extra instructions share no prompt with either split.
	prompts := map[string]string{}
	for _, name := range []string{"instruct_train.jsonl", "instruct_eval.jsonl", "instruct_more.jsonl"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		items, err := demo.ReadInstruct(b)
		if err != nil || len(items) == 0 {
			t.Fatalf("%s: %v, %d items", name, err, len(items))
		}
		for _, it := range items {
			if prev, ok := prompts[it.Prompt]; ok {
				t.Errorf("%q in %s and %s", it.Prompt, prev, name)
			}
			prompts[it.Prompt] = name
		}
	}
	// --sloppy: the training replies change, never the held-out ones.
	sl := filepath.Join(dir, "sloppy_train.jsonl")
	if code, _, errs := runCLI("data", "gen", "--kind", "instruct", "--out", sl, "--seed", "3", "--n", "200", "--n-eval", "10", "--sloppy", "40"); code != 0 {
		t.Fatalf("--sloppy exit %d: %s", code, errs)
	}
	for name, wantStyled := range map[string]bool{"sloppy_train.jsonl": true, "sloppy_eval.jsonl": false} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		items, err := demo.ReadInstruct(b)
		if err != nil {
			t.Fatal(err)
		}
		styled := 0
		for _, it := range items {
			if it.Style != "" && strings.Contains(it.Reply, it.Answer) {
				styled++
			}
		}
		if wantStyled != (styled > 40) || (!wantStyled && styled > 0) {
			t.Errorf("%s: %d of %d replies styled", name, styled, len(items))
		}
	}
	prefs := filepath.Join(dir, "prefs_train.jsonl")
	if code, _, errs := runCLI("data", "gen", "--kind", "prefs", "--out", prefs, "--seed", "3", "--n", "50", "--n-eval", "10", "--json"); code != 0 {
		t.Fatalf("prefs exit %d: %s", code, errs)
	}
	for name, shape := range map[string]data.Shape{"prefs_train.jsonl": data.ShapePreference, "prefs_eval.jsonl": data.ShapePreference, "kto_train.jsonl": data.ShapeKTO} {
		ds, err := data.LoadJSONL(filepath.Join(dir, name))
		if err != nil || ds.Shape != shape {
			t.Errorf("%s: %v", name, err)
		}
	}
	st := filepath.Join(dir, "s.txt")
	if code, _, errs := runCLI("data", "gen", "--kind", "stories", "--out", st, "--bytes", "5000"); code != 0 {
		t.Fatalf("stories exit %d: %s", code, errs)
	}
	if b, _ := os.ReadFile(st); len(b) < 5000 || !strings.Contains(string(b), "\n\n") {
		t.Errorf("stories file %d bytes", len(b))
	}
}

func TestDataGenBadUsage(t *testing.T) {
	for _, args := range [][]string{
		{"data"},
		{"data", "gen", "--kind", "poems", "--out", "x"},
		{"data", "gen", "--kind", "stories"},
		{"data", "gen", "--kind", "instruct", "--out", "a.jsonl", "--eval", "a.jsonl"},
		{"data", "gen", "--kind", "stories", "--out", "x", "extra"},
		{"data", "gen", "--kind", "instruct", "--out", "x", "--sloppy", "101"},
		{"data", "gen", "--kind", "prefs", "--out", "x", "--sloppy", "10"},
	} {
		if code, _, _ := runCLI(args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}
