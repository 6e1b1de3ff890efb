package checkpoint

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWriteStep(t *testing.T) {
	root := filepath.Join(t.TempDir(), "checkpoints")
	fill := func(step int) func(string) error {
		return func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "x"), []byte{byte(step)}, 0o644)
		}
	}
	for step := 1; step <= 4; step++ {
		dir, err := WriteStep(root, step, 2, fill(step))
		if err != nil || dir != StepDir(root, step) {
			t.Fatalf("step %d: %q, %v", step, dir, err)
		}
	}
	if got := Steps(root); !slices.Equal(got, []int{4, 3}) {
		t.Fatalf("kept %v, want [4 3]", got)
	}
	// A failed fill leaves nothing, not even its .tmp, and keeps the rest.
	boom := errors.New("disk full")
	if _, err := WriteStep(root, 5, 2, func(dir string) error {
		os.WriteFile(filepath.Join(dir, "half"), nil, 0o644)
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("err %v, want %v", err, boom)
	}
	ents, _ := os.ReadDir(root)
	if len(ents) != 2 || !slices.Equal(Steps(root), []int{4, 3}) {
		t.Fatalf("after a failed write: %v", ents)
	}
	// A crash's leftover .tmp is not a checkpoint and goes at the next write;
	// rewriting an existing step replaces it.
	os.MkdirAll(filepath.Join(root, "step-9.tmp"), 0o755)
	if got := Steps(root); !slices.Equal(got, []int{4, 3}) {
		t.Fatalf("a .tmp folder listed: %v", got)
	}
	if _, err := WriteStep(root, 4, 3, fill(40)); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(StepDir(root, 4), "x")); len(b) != 1 || b[0] != 40 {
		t.Errorf("step 4 not replaced: %v", b)
	}
	if _, err := os.Stat(filepath.Join(root, "step-9.tmp")); !os.IsNotExist(err) {
		t.Errorf("stale .tmp kept: %v", err)
	}
}

// TestStepStateAndNewest: state.json vouches for the files written before
// it; NewestStep passes over a damaged newest checkpoint, says why, and
// stops at an error marked Final.
func TestStepStateAndNewest(t *testing.T) {
	root := t.TempDir()
	type st struct {
		Step  int                `json:"step"`
		Files map[string]FileSum `json:"files"`
	}
	for step := 1; step <= 3; step++ {
		_, err := WriteStepState(root, step, 3, func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "w.bin"), []byte{byte(step)}, 0o644)
		}, func(files map[string]FileSum) any { return st{Step: step, Files: files} })
		if err != nil {
			t.Fatal(err)
		}
	}
	// Damage step 3's weights: its sums no longer match.
	os.WriteFile(filepath.Join(StepDir(root, 3), "w.bin"), []byte{9}, 0o644)
	accept := func(dir string) error {
		var s st
		if err := ReadState(dir, &s); err != nil {
			return err
		}
		return VerifySums(dir, s.Files)
	}
	dir, skipped, err := NewestStep(root, accept)
	if err != nil || dir != StepDir(root, 2) || len(skipped) != 1 || !strings.Contains(skipped[0], "step-3") {
		t.Fatalf("NewestStep: %q, skipped %q, %v", dir, skipped, err)
	}
	stop := errors.New("other settings")
	dir, _, err = NewestStep(root, func(string) error { return Final(stop) })
	if dir != "" || !errors.Is(err, stop) {
		t.Fatalf("a Final error: %q, %v", dir, err)
	}
}

func TestDiffJSON(t *testing.T) {
	a := []byte(`{"lr": 0.1, "opt": {"beta1": 0.9, "eps": 1e-8}, "old": 1}`)
	b := []byte(`{"lr": 0.2, "opt": {"beta1": 0.9, "eps": 1e-6}, "new": true}`)
	want := []string{"lr: 0.1 -> 0.2", "new: (none) -> true", "old: 1 -> (none)", "opt.eps: 1e-8 -> 0.000001"}
	if diff := cmp.Diff(want, DiffJSON(a, b)); diff != "" {
		t.Errorf("DiffJSON (-want +got):\n%s", diff)
	}
}
