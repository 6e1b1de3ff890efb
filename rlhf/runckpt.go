package rlhf

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"llmlab/core/checkpoint"
)

// The checkpoint machinery PPO and GRPO share. A run's checkpoints are
// RUN/checkpoints/step-N/, each written into step-N.tmp and renamed into
// place, its state.json written last: the run's own state beside a
// manifest (runManifest) with the run's hash and config and the size and
// CRC-32C of every other file. A resume takes the newest folder whose
// files match its manifest and refuses one written with other settings.

// runManifest is the part of state.json every run writes.
type runManifest struct {
	Hash   string                        `json:"hash"`
	Config json.RawMessage               `json:"config"`
	Files  map[string]checkpoint.FileSum `json:"files"`
	Time   string                        `json:"time"`
}

// writeRunCheckpoint writes root/step-N: write fills the folder, then
// state.json takes st (a struct holding man) with man's file sums and time
// filled in. Only the newest keep checkpoints are kept (keep <= 0 means 2).
func writeRunCheckpoint(root string, step, keep int, write func(dir string) error, st any, man *runManifest) error {
	_, err := checkpoint.WriteStep(root, step, keep, func(tmp string) error {
		if err := write(tmp); err != nil {
			return err
		}
		var err error
		if man.Files, err = checkpoint.SumFiles(tmp); err != nil {
			return err
		}
		man.Time = time.Now().UTC().Format(time.RFC3339)
		js, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return err
		}
		return checkpoint.WriteFileAtomic(filepath.Join(tmp, "state.json"), append(js, '\n'), 0o644)
	})
	return err
}

// readRunState reads dir/state.json into st (a struct holding man), runs
// check on it, then verifies every file man lists.
func readRunState(dir string, st any, man *runManifest, check func() error) error {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, st); err != nil {
		return fmt.Errorf("state.json: %w", err)
	}
	if err := check(); err != nil {
		return fmt.Errorf("state.json: %w", err)
	}
	return checkpoint.VerifySums(dir, man.Files)
}

// newestRunCheckpoint returns the newest step folder under root that read
// (readRunState through the caller's state) accepts, or "" when there is
// none; when every folder fails it names them and why.
func newestRunCheckpoint(kind, root string, read func(dir string) error) (string, error) {
	var skipped []string
	for _, s := range checkpointSteps(root) {
		dir := checkpoint.StepDir(root, s)
		if err := read(dir); err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v", dir, err))
			continue
		}
		return dir, nil
	}
	if len(skipped) > 0 {
		return "", fmt.Errorf("%s: no usable checkpoint to resume from:\n  %s", kind, strings.Join(skipped, "\n  "))
	}
	return "", nil // nothing saved yet: start from the beginning
}

// CheckpointMismatchError refuses to resume a checkpoint written by a run
// with other settings.
type CheckpointMismatchError struct {
	Run  string // "ppo", "grpo"
	Dir  string
	Diff []string // "key: then -> now"
}

// PPOCheckpointMismatchError is PPO's name for it.
type PPOCheckpointMismatchError = CheckpointMismatchError

func (e *CheckpointMismatchError) Error() string {
	msg := e.Run + ": " + e.Dir + " was written by a run with other settings"
	if len(e.Diff) > 0 {
		return msg + ":\n  " + strings.Join(e.Diff, "\n  ")
	}
	return msg + " (the model, data or reward differ)"
}

// checkRunConfig compares a checkpoint's manifest with the run resuming
// it: the hash and the config, once extend has copied the run's length
// from now into the saved config (a finished run may be extended).
func checkRunConfig[C any](kind, dir string, man *runManifest, hash string, now C, extend func(then *C)) error {
	var then C
	if err := json.Unmarshal(man.Config, &then); err != nil {
		return fmt.Errorf("%s: %s/state.json: config: %w", kind, dir, err)
	}
	extend(&then)
	a, _ := json.Marshal(then)
	b, _ := json.Marshal(now)
	if man.Hash != hash || string(a) != string(b) {
		return &CheckpointMismatchError{Run: kind, Dir: dir, Diff: jsonDiff(a, b)}
	}
	return nil
}

// checkpointSteps lists the step-N folders under root, newest first.
func checkpointSteps(root string) []int { return checkpoint.Steps(root) }

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

// jsonDiff lists the top-level keys whose values differ between two JSON
// objects, as "key: a -> b".
func jsonDiff(a, b []byte) []string {
	var x, y map[string]json.RawMessage
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return nil
	}
	keys := map[string]bool{}
	for k := range x {
		keys[k] = true
	}
	for k := range y {
		keys[k] = true
	}
	var out []string
	for k := range keys {
		if !jsonEqual(x[k], y[k]) {
			out = append(out, fmt.Sprintf("%s: %s -> %s", k, orNone(x[k]), orNone(y[k])))
		}
	}
	sort.Strings(out)
	return out
}

func orNone(b json.RawMessage) string {
	if b == nil {
		return "(none)"
	}
	return string(b)
}
