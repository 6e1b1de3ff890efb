package checkpoint

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
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
