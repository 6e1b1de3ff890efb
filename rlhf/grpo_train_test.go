package rlhf

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"llmlab/core/checkpoint"
	"llmlab/core/optim"
	"llmlab/core/tensor"
	"llmlab/core/train"
	"llmlab/lora"
)

// hasLetter scores 1 for a completion holding the letter, else 0.
type hasLetter byte

func (h hasLetter) Score(completion, _ string) float32 {
	if strings.IndexByte(completion, byte(h)) >= 0 {
		return 1
	}
	return 0
}

func (h hasLetter) String() string { return "has " + string(rune(h)) }

// newLoRAGRPO is a GRPO run on a fresh tiny model with a LoRA policy, the
// reference its adapter switched off.
func newLoRAGRPO(t *testing.T) *GRPORun {
	t.Helper()
	m := tinyModel(t)
	a, err := lora.Apply(m, lora.Config{Rank: 4, Alpha: 8, Targets: []string{"all-linear"}, ModulesToSave: []string{"embed_tokens"}, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	return &GRPORun{M: m, Tok: letters{}, B: tensor.NewCPU(1), Cfg: GRPOConfig{Beta: 0.04, Epsilon: 0.2}, Reward: hasLetter('f'),
		Params: a.Params(), SetPolicy: a.SetEnabled, Weights: a, Optim: optim.AdamWConfig{LR: 5e-3, Beta1: 0.9, Beta2: 0.99, Eps: 1e-8},
		LR: 5e-3, Prompts: 2, G: 4, MaxTokens: 4, Temp: 1, Seed: 1}
}

// newFullGRPO trains all weights (no reference: Beta 0).
func newFullGRPO(t *testing.T) *GRPORun {
	t.Helper()
	m := tinyModel(t)
	m.Freeze(false)
	return &GRPORun{M: m, Tok: letters{}, B: tensor.NewCPU(1), Cfg: GRPOConfig{Epsilon: 0.2}, Reward: hasLetter('f'),
		Params: m.ParamList(), Weights: train.ModelWeights{M: m}, Optim: optim.AdamWConfig{LR: 5e-3, Beta1: 0.9, Beta2: 0.99, Eps: 1e-8},
		LR: 5e-3, Prompts: 2, G: 4, MaxTokens: 4, Temp: 1, Seed: 1}
}

func stripGRPO(ss []GRPOStep) []GRPOStep {
	for i := range ss {
		ss[i].RolloutS, ss[i].UpdateS = 0, 0
	}
	return ss
}

// A run of 4 steps equals a run of 2 resumed for 2 more, bit for bit: the
// trainable weights and the reports of steps 3 and 4.
func TestGRPOResumeIsExact(t *testing.T) {
	for _, tc := range []struct {
		name string
		mk   func(*testing.T) *GRPORun
	}{{"lora", newLoRAGRPO}, {"full", newFullGRPO}} {
		t.Run(tc.name, func(t *testing.T) {
			tasks := ppoTasks(3) // the cursor wraps mid-step
			var whole []GRPOStep
			a := tc.mk(t)
			a.Out = t.TempDir()
			if err := a.Train(context.Background(), tasks, 4, func(s GRPOStep) { whole = append(whole, s) }); err != nil {
				t.Fatal(err)
			}
			out := t.TempDir()
			b := tc.mk(t)
			b.Out = out
			if err := b.Train(context.Background(), tasks, 2, nil); err != nil {
				t.Fatal(err)
			}
			var resumed []GRPOStep
			r := tc.mk(t)
			r.Out, r.Resume = out, true
			if err := r.Train(context.Background(), tasks, 4, func(s GRPOStep) { resumed = append(resumed, s) }); err != nil {
				t.Fatal(err)
			}
			if len(whole) != 4 {
				t.Fatalf("%d steps reported", len(whole))
			}
			if d := cmp.Diff(stripGRPO(whole[2:]), stripGRPO(resumed)); d != "" {
				t.Errorf("steps 3 and 4 (-whole +resumed):\n%s", d)
			}
			if whole[3].Loss == 0 && whole[3].KL == 0 && whole[3].ClipFrac == 0 {
				t.Errorf("step 4 %+v: nothing to compare", whole[3])
			}
			moved := false
			for i := range a.Params {
				if d := cmp.Diff(a.Params[i].Value.F32, r.Params[i].Value.F32); d != "" {
					t.Errorf("%s differs after resume:\n%s", a.Params[i].Name, d)
				}
				if !cmp.Equal(a.Params[i].Value.F32, tc.mk(t).Params[i].Value.F32) {
					moved = true
				}
			}
			if !moved {
				t.Error("no weight moved in 4 steps: the test shows nothing")
			}
			if got := checkpoint.Steps(filepath.Join(a.Out, "checkpoints")); !cmp.Equal(got, []int{4}) {
				t.Errorf("checkpoints of the whole run %v, want [4]", got)
			}
		})
	}
}

// Another configuration is refused, naming what changed; the step count
// alone may grow.
func TestGRPOResumeRefusesOtherSettings(t *testing.T) {
	tasks := ppoTasks(3)
	out := t.TempDir()
	a := newLoRAGRPO(t)
	a.Out = out
	if err := a.Train(context.Background(), tasks, 1, nil); err != nil {
		t.Fatal(err)
	}
	x := newLoRAGRPO(t)
	x.Out, x.Resume, x.Cfg.Epsilon, x.G = out, true, 0.3, 5
	err := x.Train(context.Background(), tasks, 2, nil)
	var mm *CheckpointMismatchError
	if !errors.As(err, &mm) || !strings.Contains(err.Error(), "epsilon: 0.2 -> 0.3") || !strings.Contains(err.Error(), "group: 4 -> 5") ||
		strings.Contains(err.Error(), "steps") || !strings.HasPrefix(err.Error(), "grpo: ") {
		t.Errorf("resume with another epsilon and group: %v", err)
	}
	h := newLoRAGRPO(t)
	h.Out, h.Resume, h.Hash = out, true, "other data"
	if err := h.Train(context.Background(), tasks, 2, nil); !errors.As(err, &mm) {
		t.Errorf("resume with another hash: %v", err)
	}
	p := newLoRAGRPO(t)
	p.Out, p.Resume = out, true
	if err := p.Train(context.Background(), tasks, 2, nil); err != nil || p.Step != 2 {
		t.Errorf("resume to 2 steps: step %d, %v", p.Step, err)
	}
}

// Cancelling writes a checkpoint of the last whole step; a damaged file
// makes a resume take the checkpoint before, and with none left it fails
// naming the file.
func TestGRPOCancelAndDamagedCheckpoint(t *testing.T) {
	tasks := ppoTasks(4)
	r := newLoRAGRPO(t)
	r.Out, r.SaveEvery, r.KeepLast = t.TempDir(), 1, 3
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := r.Train(ctx, tasks, 10, func(s GRPOStep) {
		if s.Step == 2 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Train: %v, want context.Canceled", err)
	}
	root := filepath.Join(r.Out, "checkpoints")
	if got := checkpoint.Steps(root); !cmp.Equal(got, []int{2, 1}) {
		t.Fatalf("checkpoints %v, want [2 1]", got)
	}
	st, err := readGRPOState(filepath.Join(root, "step-2"))
	if err != nil || st.Step != 2 || st.Cursor != 0 {
		t.Fatalf("state %+v, %v", st, err)
	}

	// Without SaveEvery the cancel itself writes the checkpoint.
	c := newLoRAGRPO(t)
	c.Out = t.TempDir()
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	err = c.Train(ctx2, tasks, 10, func(s GRPOStep) {
		if s.Step == 3 {
			cancel2()
		}
	})
	if got := checkpoint.Steps(filepath.Join(c.Out, "checkpoints")); !errors.Is(err, context.Canceled) || !cmp.Equal(got, []int{3}) {
		t.Fatalf("cancel at step 3: %v, checkpoints %v", err, got)
	}

	d := t.TempDir() // step-1 alone, damaged
	if err := os.CopyFS(filepath.Join(d, "checkpoints", "step-1"), os.DirFS(filepath.Join(root, "step-1"))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "checkpoints", "step-1", "weights", "adapter_model.safetensors"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "step-2", "optimizer.safetensors"), []byte("x"), 0o644)
	y := newLoRAGRPO(t)
	y.Out, y.Resume = r.Out, true
	var steps []int
	if err := y.Train(context.Background(), tasks, 3, func(s GRPOStep) { steps = append(steps, s.Step) }); err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(steps, []int{2, 3}) {
		t.Errorf("resumed past a damaged step-2: ran steps %v, want [2 3]", steps)
	}
	w := newLoRAGRPO(t)
	if err := w.Train(context.Background(), tasks, 3, nil); err != nil {
		t.Fatal(err)
	}
	for i := range w.Params {
		if !cmp.Equal(w.Params[i].Value.F32, y.Params[i].Value.F32) {
			t.Errorf("%s: 3 steps differ from 1 + 2 resumed", w.Params[i].Name)
		}
	}

	z := newLoRAGRPO(t)
	z.Out, z.Resume = d, true
	if err := z.Train(context.Background(), tasks, 3, nil); err == nil || !strings.Contains(err.Error(), "adapter_model.safetensors") {
		t.Fatalf("resume from a damaged checkpoint: %v", err)
	}
}
