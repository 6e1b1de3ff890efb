package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"

	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"llmlab/core/autograd"
	"llmlab/core/data"
	"llmlab/core/model"
	"llmlab/core/optim"
	"llmlab/core/tensor"
)

// tokens is a deterministic source of random token windows: batch k is
// drawn from a PCG seeded with (seed, k), so the cursor is just k.
type tokens struct {
	B, T, V int
	Seed    uint64
	k       int
	batch   data.Batch
	row     []int32
}

func (s *tokens) Next() (data.Batch, error) {
	if s.batch.IDs == nil {
		s.batch = data.NewBatch(s.B, s.T)
	}
	r := rand.New(rand.NewPCG(s.Seed, uint64(s.k)))
	s.k++
	if s.row == nil {
		s.row = make([]int32, s.T+1)
	}
	row := s.row
	for b := range s.B {
		// A repeating pattern with a random phase: learnable, not trivial.
		ph := r.IntN(s.V)
		for i := range row {
			row[i] = int32((ph + i*7 + r.IntN(2)) % s.V)
		}
		copy(s.batch.IDs[b*s.T:], row[:s.T])
		copy(s.batch.Labels[b*s.T:], row[1:])
		for i := range s.T {
			s.batch.Pos[b*s.T+i] = int32(i)
		}
	}
	return s.batch, nil
}

func (s *tokens) State() ([]byte, error) { return json.Marshal(s.k) }
func (s *tokens) Restore(b []byte) error { return json.Unmarshal(b, &s.k) }

// droppedLM is next-token loss with a random 30% of the labels dropped in
// training: it draws from the loop's generator, so a resume is only bit
// exact if the generator's state is checkpointed.
type droppedLM struct {
	LM
	r      *rand.Rand
	labels []int32
}

func (o *droppedLM) SetRand(r *rand.Rand) { o.r = r }

func (o *droppedLM) Loss(t *autograd.Tape, b data.Batch) (*autograd.Var, Metrics, error) {
	if t.NoGrad {
		return o.LM.Loss(t, b)
	}
	o.labels = append(o.labels[:0], b.Labels...)
	for i := range o.labels {
		if o.r.Float64() < 0.3 {
			o.labels[i] = data.IgnoreIndex
		}
	}
	b.Labels = o.labels
	loss, m, err := o.LM.Loss(t, b)
	return loss, m, err
}

func tinyModel(t testing.TB, seed uint64) *model.Transformer {
	t.Helper()
	c, err := model.Preset(model.Llama, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.New(c, seed)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func lmConfig(out string, steps int) Config {
	opt := optim.DefaultAdamW()
	opt.LR = 3e-3
	return Config{Steps: steps, Accum: 2, LR: 3e-3, Clip: 1, Optim: opt, Seed: 7, SaveEvery: 2, EvalEvery: 3, KeepLast: 2,
		Schedule: optim.Schedule{Kind: optim.Cosine, Warmup: 2, Total: steps, MinRatio: 0.1}, Out: out, Hash: "h1"}
}

// evalBatches is a fixed held-out set.
func evalBatches(V int) EvalSource {
	src := &tokens{B: 2, T: 16, V: V, Seed: 99}
	var bs []data.Batch
	for range 2 {
		b, _ := src.Next()
		bs = append(bs, data.Batch{B: b.B, T: b.T, IDs: append([]int32(nil), b.IDs...),
			Labels: append([]int32(nil), b.Labels...), Pos: append([]int32(nil), b.Pos...)})
	}
	return Batches(bs)
}

// train runs the tiny model for c and returns its weights' bytes and the events.
func trainTiny(t *testing.T, ctx context.Context, c Config, threads int, initSeed uint64, on func(Event)) ([]byte, []Event, error) {
	t.Helper()
	m := tinyModel(t, initSeed)
	var evs []Event
	err := Run(ctx, c, tensor.NewCPU(threads), &droppedLM{LM: LM{M: m}}, &tokens{B: 2, T: 16, V: m.Cfg.VocabSize, Seed: 3},
		evalBatches(m.Cfg.VocabSize), m.ParamList(), ModelWeights{M: m}, func(e Event) {
			evs = append(evs, e)
			if on != nil {
				on(e)
			}
		})
	var buf bytes.Buffer
	for _, p := range m.ParamList() {
		buf.Write(p.Value.Bytes())
	}
	return buf.Bytes(), evs, err
}

// TestResumeIsBitExact: a run cancelled after step 5 (checkpoint written
// on the way out) and resumed into a differently initialised model ends
// with the same weights, bit for bit, as an uninterrupted run.
func TestResumeIsBitExact(t *testing.T) {
	want, evs, err := trainTiny(t, context.Background(), lmConfig(t.TempDir(), 8), 1, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	var steps, evals int
	for _, e := range evs {
		switch e.Kind {
		case "step":
			steps++
			if e.Loss <= 0 || e.LR <= 0 || e.GradNorm <= 0 || e.Tokens <= 0 || e.Elapsed <= 0 {
				t.Errorf("step event lacks figures: %+v", e)
			}
		case "eval":
			evals++
		}
	}
	if steps != 8 || evals != 3 { // eval at 3, 6 and the end
		t.Errorf("got %d step and %d eval events, want 8 and 3", steps, evals)
	}

	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	_, _, err = trainTiny(t, ctx, lmConfig(out, 8), 1, 1, func(e Event) {
		if e.Kind == "step" && e.Step == 5 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want a cancelled run, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "checkpoints", "step-5", "state.json")); err != nil {
		t.Fatalf("no checkpoint on cancel: %v", err)
	}
	c := lmConfig(out, 8)
	c.Resume = true
	var resumed bool
	got, _, err := trainTiny(t, context.Background(), c, 1, 2, func(e Event) {
		resumed = resumed || strings.HasPrefix(e.Message, "resumed from")
	})
	if err != nil {
		t.Fatal(err)
	}
	if !resumed {
		t.Error("no resume event")
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the resumed run ends with different weights than the uninterrupted run")
	}
}

// TestThreadCountInvariance: 1 and 2 threads give identical weights.
func TestThreadCountInvariance(t *testing.T) {
	a, _, err := trainTiny(t, context.Background(), lmConfig("", 3), 1, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := trainTiny(t, context.Background(), lmConfig("", 3), 2, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("1 and 2 threads give different weights")
	}
}

// TestDamagedCheckpointSkipped: a checkpoint whose files no longer match
// its manifest (cut short, or corrupted) is skipped with a warning for the
// one before, and the run still ends where an uninterrupted one does.
func TestDamagedCheckpointSkipped(t *testing.T) {
	want, _, err := trainTiny(t, context.Background(), lmConfig(t.TempDir(), 6), 1, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		damage func(dir string)
	}{
		{"weights cut short", func(dir string) {
			p := filepath.Join(dir, "weights", "model.safetensors")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o644)
		}},
		{"optimizer bit flipped", func(dir string) {
			p := filepath.Join(dir, "optimizer.safetensors")
			b, _ := os.ReadFile(p)
			b[len(b)-3] ^= 1
			os.WriteFile(p, b, 0o644)
		}},
		{"state.json cut short", func(dir string) {
			p := filepath.Join(dir, "state.json")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/3], 0o644)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			trainTiny(t, ctx, lmConfig(out, 6), 1, 1, func(e Event) {
				if e.Kind == "checkpoint" && e.Step == 4 {
					cancel()
				}
			})
			tc.damage(filepath.Join(out, "checkpoints", "step-4"))
			c := lmConfig(out, 6)
			c.Resume = true
			var msgs []string
			got, _, err := trainTiny(t, context.Background(), c, 1, 1, func(e Event) {
				if e.Kind == "warning" {
					msgs = append(msgs, e.Message)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			all := strings.Join(msgs, "\n")
			if !strings.Contains(all, "skipping checkpoint") || !strings.Contains(all, "step-4") || !strings.Contains(all, "resumed from") || !strings.Contains(all, "step-2") {
				t.Errorf("warnings do not tell of the skip:\n%s", all)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("weights differ from the uninterrupted run")
			}
		})
	}
}

func TestResumeRefusesOtherConfig(t *testing.T) {
	out := t.TempDir()
	if _, _, err := trainTiny(t, context.Background(), lmConfig(out, 2), 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	c := lmConfig(out, 2)
	c.Resume, c.Hash, c.LR = true, "h2", 1e-2
	_, _, err := trainTiny(t, context.Background(), c, 1, 1, nil)
	var me *ConfigMismatchError
	if !errors.As(err, &me) {
		t.Fatalf("want a ConfigMismatchError, got %v", err)
	}
	if !strings.Contains(err.Error(), "lr: 0.003 -> 0.01") {
		t.Errorf("the error does not show the difference:\n%v", err)
	}
}

func TestKeepLastAndNoTempFolders(t *testing.T) {
	out := t.TempDir()
	os.MkdirAll(filepath.Join(out, "checkpoints", "step-1.tmp"), 0o755) // left by a crash
	c := lmConfig(out, 5)
	c.SaveEvery, c.KeepLast, c.EvalEvery = 1, 3, 0
	if _, _, err := trainTiny(t, context.Background(), c, 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Join(out, "checkpoints"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if got, want := strings.Join(names, " "), "step-3 step-4 step-5"; got != want {
		t.Errorf("checkpoints: got %q, want %q", got, want)
	}
	var st state
	if err := readState(filepath.Join(out, "checkpoints", "step-5"), &st); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"optimizer.safetensors", "weights/model.safetensors", "weights/config.json"} {
		if _, ok := st.Files[f]; !ok {
			t.Errorf("state.json does not list %s: %v", f, st.Files)
		}
	}
	if len(st.RNG) == 0 || string(st.Source) != "10" { // 5 steps x 2 micro-batches
		t.Errorf("state.json: rng %x, source %s", st.RNG, st.Source)
	}
}

// BenchmarkTrainStep times one optimizer step of the tiny preset (batch
// 8x128, forward, backward, clipping, AdamW) and reports tokens/s and the
// allocations of a steady-state step.
func BenchmarkTrainStep(b *testing.B) {
	m := tinyModel(b, 1)
	c := lmConfig("", 1<<30)
	c.Accum = 1
	r, err := newRunner(c, tensor.NewCPU(0), LM{M: m}, &tokens{B: 8, T: 128, V: m.Cfg.VocabSize, Seed: 1}, nil, m.ParamList(), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	// Two steps size the arena (the first spills; the second's Reset
	// makes one slab of the right size), the gradients and the moments.
	for range 2 {
		if _, err := r.trainStep(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := r.trainStep(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(8*128*b.N)/b.Elapsed().Seconds(), "tokens/s")
}
