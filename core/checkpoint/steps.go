package checkpoint

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"llmlab/core/atomicfile"
)

// A run keeps its checkpoints as ROOT/step-N folders. Each is written
// into step-N.tmp and renamed into place once complete, so a folder named
// step-N is never half-written; a crash leaves at most a .tmp folder,
// which the next write removes.

// StepDir is root's folder for step.
func StepDir(root string, step int) string { return filepath.Join(root, fmt.Sprintf("step-%d", step)) }

// Steps lists the step-N folders under root, newest first; unfinished
// .tmp folders are not listed.
func Steps(root string) []int {
	ents, _ := os.ReadDir(root)
	var steps []int
	for _, e := range ents {
		if n, ok := strings.CutPrefix(e.Name(), "step-"); ok && e.IsDir() {
			if s, err := strconv.Atoi(n); err == nil {
				steps = append(steps, s)
			}
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(steps)))
	return steps
}

// WriteStep writes root/step-N: fill writes the folder's files into a
// fresh step-N.tmp, which is then renamed into place (replacing an older
// step-N). Afterwards only the newest keep step folders remain (keep <= 0
// keeps 2), and any unfinished .tmp folder is removed. On error nothing
// of the new folder is left behind.
func WriteStep(root string, step, keep int, fill func(dir string) error) (string, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	final := StepDir(root, step)
	tmp := final + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return "", err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", err
	}
	if err := fill(tmp); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := os.RemoveAll(final); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	atomicfile.SyncDir(root)
	if keep <= 0 {
		keep = 2
	}
	for i, s := range Steps(root) {
		if i >= keep {
			os.RemoveAll(StepDir(root, s))
		}
	}
	stale, _ := filepath.Glob(filepath.Join(root, "step-*.tmp"))
	for _, d := range stale {
		os.RemoveAll(d)
	}
	return final, nil
}
