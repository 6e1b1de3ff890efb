package rlhf

import (
	"encoding/json"
	"fmt"
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
	_, err := checkpoint.WriteStepState(root, step, keep, write, func(files map[string]checkpoint.FileSum) any {
		man.Files, man.Time = files, time.Now().UTC().Format(time.RFC3339)
		return st
	})
	return err
}

// readRunState reads dir/state.json into st (a struct holding man), runs
// check on it, then verifies every file man lists.
func readRunState(dir string, st any, man *runManifest, check func() error) error {
	if err := checkpoint.ReadState(dir, st); err != nil {
		return err
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
	dir, skipped, err := checkpoint.NewestStep(root, read)
	if err != nil || dir != "" {
		return dir, err
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
		return &CheckpointMismatchError{Run: kind, Dir: dir, Diff: checkpoint.DiffJSON(a, b)}
	}
	return nil
}
