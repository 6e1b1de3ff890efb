package checkpoint

import (
	"encoding/json"
	"errors"
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

// WriteStepState writes root/step-N as WriteStep does, with the protocol
// every resumable run shares: fill writes the checkpoint's files, then
// state.json is written last, from state(files) where files are the sums
// of everything fill wrote, so state.json vouches for the rest
// (VerifySums). It is the only place a run's checkpoint is laid out.
func WriteStepState(root string, step, keep int, fill func(dir string) error, state func(files map[string]FileSum) any) (string, error) {
	return WriteStep(root, step, keep, func(tmp string) error {
		if err := fill(tmp); err != nil {
			return err
		}
		files, err := SumFiles(tmp)
		if err != nil {
			return err
		}
		js, err := json.MarshalIndent(state(files), "", "  ")
		if err != nil {
			return err
		}
		return atomicfile.WriteFile(filepath.Join(tmp, "state.json"), append(js, '\n'), atomicfile.Mode)
	})
}

// ReadState reads dir/state.json into st.
func ReadState(dir string, st any) error {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, st); err != nil {
		return fmt.Errorf("state.json: %w", err)
	}
	return nil
}

// NewestStep returns the newest step folder under root that accept takes
// (accept reads and checks it), skipping broken ones; skipped says which
// were passed over and why. dir is "" when none was accepted. An error
// that accept marks as final (wrapped in Final) stops the search: a
// checkpoint written by another configuration must not be skipped for an
// older one.
func NewestStep(root string, accept func(dir string) error) (dir string, skipped []string, err error) {
	for _, s := range Steps(root) {
		d := StepDir(root, s)
		err := accept(d)
		var f finalError
		if errors.As(err, &f) {
			return "", skipped, f.err
		}
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v", d, err))
			continue
		}
		return d, skipped, nil
	}
	return "", skipped, nil
}

// Final marks an error from NewestStep's accept as one that ends the
// search.
func Final(err error) error { return finalError{err} }

type finalError struct{ err error }

func (e finalError) Error() string { return e.err.Error() }
func (e finalError) Unwrap() error { return e.err }

// DiffJSON lists the leaves that differ between two JSON objects, as
// "key.sub: a -> b" lines in key order ("(none)" for a missing key). It
// explains why a checkpoint does not fit the run that would resume it.
func DiffJSON(a, b []byte) []string {
	fa, fb := map[string]string{}, map[string]string{}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return nil
	}
	flattenJSON("", va, fa)
	flattenJSON("", vb, fb)
	var out []string
	for k, x := range fa {
		if y, ok := fb[k]; !ok {
			out = append(out, fmt.Sprintf("%s: %s -> (none)", k, x))
		} else if x != y {
			out = append(out, fmt.Sprintf("%s: %s -> %s", k, x, y))
		}
	}
	for k, y := range fb {
		if _, ok := fa[k]; !ok {
			out = append(out, fmt.Sprintf("%s: (none) -> %s", k, y))
		}
	}
	sort.Strings(out)
	return out
}

func flattenJSON(prefix string, v any, dst map[string]string) {
	if m, ok := v.(map[string]any); ok {
		for k, e := range m {
			if prefix != "" {
				k = prefix + "." + k
			}
			flattenJSON(k, e, dst)
		}
		return
	}
	b, _ := json.Marshal(v)
	dst[prefix] = string(b)
}
