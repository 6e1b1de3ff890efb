package rlhf

import (
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

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
	Iteration int                   `json:"iteration"`
	Cursor    int                   `json:"cursor"` // index of the next prompt
	KL        AdaptiveKL            `json:"kl_controller"`
	RNG       []byte                `json:"rng"` // PCG state (minibatch order)
	Hash      string                `json:"hash"`
	Config    json.RawMessage       `json:"config"`
	Files     map[string]ppoFileSum `json:"files"`
	Time      string                `json:"time"`
}

type ppoFileSum struct {
	Size   int64  `json:"size"`
	CRC32C uint32 `json:"crc32c"`
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
	root := filepath.Join(r.Out, "checkpoints")
	final := filepath.Join(root, fmt.Sprintf("step-%d", r.Iteration))
	tmp := final + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(tmp, "value"), 0o755); err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
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
	if err := r.valOpt.Save(filepath.Join(tmp, "value")); err != nil {
		return err
	}
	st := ppoState{Iteration: r.Iteration, Cursor: r.cursor, KL: r.KLCtl, Hash: r.Hash, Time: time.Now().UTC().Format(time.RFC3339)}
	var err error
	if st.RNG, err = r.pcg.MarshalBinary(); err != nil {
		return err
	}
	if st.Config, err = json.Marshal(r.Cfg); err != nil {
		return err
	}
	if st.Files, err = ppoSumFiles(tmp); err != nil {
		return err
	}
	js, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := checkpoint.WriteFileAtomic(filepath.Join(tmp, "state.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.RemoveAll(final); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(root); err == nil {
		d.Sync()
		d.Close()
	}
	keep := r.Cfg.KeepLast
	if keep <= 0 {
		keep = 2
	}
	for i, s := range ppoCheckpoints(root) {
		if i >= keep {
			os.RemoveAll(filepath.Join(root, fmt.Sprintf("step-%d", s)))
		}
	}
	return nil
}

// PPOCheckpointMismatchError refuses to resume a checkpoint written by a
// run with other settings.
type PPOCheckpointMismatchError struct {
	Dir  string
	Diff []string // "key: then -> now"
}

func (e *PPOCheckpointMismatchError) Error() string {
	msg := "ppo: " + e.Dir + " was written by a run with other settings"
	if len(e.Diff) > 0 {
		return msg + ":\n  " + strings.Join(e.Diff, "\n  ")
	}
	return msg + " (the model, data or reward differ)"
}

// resume loads the newest valid checkpoint in Out, if there is one.
func (r *PPORun) resume() error {
	root := filepath.Join(r.Out, "checkpoints")
	var skipped []string
	for _, s := range ppoCheckpoints(root) {
		dir := filepath.Join(root, fmt.Sprintf("step-%d", s))
		st, err := readPPOState(dir)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v", dir, err))
			continue
		}
		// Everything but the length of the run must match: a finished run
		// may be extended with more iterations.
		var then PPOConfig
		if err := json.Unmarshal(st.Config, &then); err != nil {
			return fmt.Errorf("ppo: %s/state.json: config: %w", dir, err)
		}
		then.Iterations = r.Cfg.Iterations
		a, _ := json.Marshal(then)
		now, _ := json.Marshal(r.Cfg)
		if st.Hash != r.Hash || string(a) != string(now) {
			return &PPOCheckpointMismatchError{Dir: dir, Diff: jsonDiff(a, now)}
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
	if len(skipped) > 0 {
		return fmt.Errorf("ppo: no usable checkpoint to resume from:\n  %s", strings.Join(skipped, "\n  "))
	}
	return nil // nothing saved yet: start from the beginning
}

func readPPOState(dir string) (ppoState, error) {
	var st ppoState
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("state.json: %w", err)
	}
	if st.Iteration <= 0 || st.Cursor < 0 || len(st.Files) == 0 {
		return st, fmt.Errorf("state.json: iteration %d, cursor %d, %d files", st.Iteration, st.Cursor, len(st.Files))
	}
	names := make([]string, 0, len(st.Files))
	for n := range st.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		want := st.Files[n]
		got, err := ppoSumFile(filepath.Join(dir, filepath.FromSlash(n)))
		if err != nil {
			return st, err
		}
		if got != want {
			return st, fmt.Errorf("%s has %d bytes, checksum %08x; state.json says %d bytes, %08x", n, got.Size, got.CRC32C, want.Size, want.CRC32C)
		}
	}
	return st, nil
}

// ppoCheckpoints lists the step-N folders under root, newest first.
func ppoCheckpoints(root string) []int {
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

var ppoCastagnoli = crc32.MakeTable(crc32.Castagnoli)

func ppoSumFiles(dir string) (map[string]ppoFileSum, error) {
	sums := map[string]ppoFileSum{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		s, err := ppoSumFile(path)
		sums[filepath.ToSlash(rel)] = s
		return err
	})
	return sums, err
}

func ppoSumFile(path string) (ppoFileSum, error) {
	f, err := os.Open(path)
	if err != nil {
		return ppoFileSum{}, err
	}
	defer f.Close()
	h := crc32.New(ppoCastagnoli)
	n, err := io.Copy(h, f)
	return ppoFileSum{Size: n, CRC32C: h.Sum32()}, err
}

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
