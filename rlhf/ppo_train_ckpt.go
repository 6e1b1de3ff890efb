package rlhf

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"llmlab/core/checkpoint"
)

// PPO checkpoints follow core/train's layout and rules, with PPO's extra
// state. RUN/checkpoints/step-N/ (N the iteration):
//
//	weights/                  the policy (Weights.SaveWeights: adapter or model)
//	weights/value_head.safetensors
//	optimizer.safetensors     the policy's AdamW moments and step
//	value/optimizer.safetensors  the value head's
//	state.json                iteration, prompt cursor, KL controller, PCG
//	                          state, config and hash, and the size and
//	                          CRC-32C of every file above
//
// Written into step-N.tmp, state.json last, then renamed into place; a
// resume takes the newest checkpoint whose files match state.json.

// ValueHeadFile is the value head's file beside the policy's weights.
const ValueHeadFile = "value_head.safetensors"

// SaveValueHead writes h to dir/value_head.safetensors.
func SaveValueHead(dir string, h *ScalarHead) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ts := []checkpoint.Named{{Name: h.W.Name, T: h.W.Value}}
	if h.B != nil {
		ts = append(ts, checkpoint.Named{Name: h.B.Name, T: h.B.Value})
	}
	return checkpoint.Write(filepath.Join(dir, ValueHeadFile), ts, map[string]string{"format": "pt"})
}

// LoadValueHead reads dir/value_head.safetensors into h; names and shapes
// must match.
func LoadValueHead(dir string, h *ScalarHead) error {
	path := filepath.Join(dir, ValueHeadFile)
	f, err := checkpoint.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	ps := h.Params()
	if n := len(f.Names()); n != len(ps) {
		return fmt.Errorf("%s: %d tensors, the value head has %d (%s)", path, n, len(ps), strings.Join(f.Names(), ", "))
	}
	for _, p := range ps {
		t, err := f.Tensor(p.Name)
		if err != nil {
			return err
		}
		if !t.Shape.Equal(p.Value.Shape) {
			return fmt.Errorf("%s: %s has shape %v, the model needs %v", path, p.Name, t.Shape, p.Value.Shape)
		}
		copy(p.Value.F32, t.Float32s())
	}
	return nil
}

// ppoState is a checkpoint's state.json.
type ppoState struct {
	Iteration int        `json:"iteration"`
	Cursor    int        `json:"cursor"` // index of the next prompt
	KL        AdaptiveKL `json:"kl_controller"`
	RNG       []byte     `json:"rng"` // PCG state (minibatch order)
	runManifest
}

// save writes the checkpoint of the current iteration (nothing without Out).
func (r *PPORun) save() error {
	if r.Out == "" {
		return nil
	}
	if err := r.writeCheckpoint(); err != nil {
		return fmt.Errorf("ppo: checkpoint at iteration %d: %w", r.Iteration, err)
	}
	return nil
}

func (r *PPORun) writeCheckpoint() error {
	st := ppoState{Iteration: r.Iteration, Cursor: r.cursor, KL: r.KLCtl, runManifest: runManifest{Hash: r.Hash}}
	var err error
	if st.RNG, err = r.pcg.MarshalBinary(); err != nil {
		return err
	}
	if st.Config, err = json.Marshal(r.Cfg); err != nil {
		return err
	}
	write := func(tmp string) error {
		if err := os.MkdirAll(filepath.Join(tmp, "value"), 0o755); err != nil {
			return err
		}
		wdir := filepath.Join(tmp, "weights")
		r.SetPolicyOn()
		if err := r.Weights.SaveWeights(wdir); err != nil {
			return err
		}
		if err := SaveValueHead(wdir, r.Value); err != nil {
			return err
		}
		if err := r.polOpt.Save(tmp); err != nil {
			return err
		}
		return r.valOpt.Save(filepath.Join(tmp, "value"))
	}
	return writeRunCheckpoint(filepath.Join(r.Out, "checkpoints"), r.Iteration, r.Cfg.KeepLast, write, &st, &st.runManifest)
}

// resume loads the newest valid checkpoint in Out, if there is one.
func (r *PPORun) resume() error {
	var st ppoState
	dir, err := newestRunCheckpoint("ppo", filepath.Join(r.Out, "checkpoints"), func(dir string) error {
		var err error
		st, err = readPPOState(dir)
		return err
	})
	if err != nil || dir == "" {
		return err
	}
	// Everything but the length of the run must match: a finished run may
	// be extended with more iterations.
	if err := checkRunConfig("ppo", dir, &st.runManifest, r.Hash, r.Cfg, func(then *PPOConfig) { then.Iterations = r.Cfg.Iterations }); err != nil {
		return err
	}
	if st.Iteration > r.Cfg.Iterations {
		return fmt.Errorf("ppo: %s is at iteration %d, past the %d asked for", dir, st.Iteration, r.Cfg.Iterations)
	}
	fail := func(err error) error { return fmt.Errorf("ppo: resume from %s: %w", dir, err) }
	wdir := filepath.Join(dir, "weights")
	r.SetPolicyOn()
	if err := r.Weights.LoadWeights(wdir); err != nil {
		return fail(err)
	}
	if err := LoadValueHead(wdir, r.Value); err != nil {
		return fail(err)
	}
	if err := r.polOpt.Load(dir); err != nil {
		return fail(err)
	}
	if err := r.valOpt.Load(filepath.Join(dir, "value")); err != nil {
		return fail(err)
	}
	if err := r.pcg.UnmarshalBinary(st.RNG); err != nil {
		return fail(fmt.Errorf("rng state: %w", err))
	}
	r.Iteration, r.cursor, r.KLCtl = st.Iteration, st.Cursor, st.KL
	return nil
}

func readPPOState(dir string) (ppoState, error) {
	var st ppoState
	err := readRunState(dir, &st, &st.runManifest, func() error {
		if st.Iteration <= 0 || st.Cursor < 0 || len(st.Files) == 0 {
			return fmt.Errorf("iteration %d, cursor %d, %d files", st.Iteration, st.Cursor, len(st.Files))
		}
		return nil
	})
	return st, err
}
