package rlhf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"llmlab/core/autograd"
	"llmlab/core/checkpoint"
	"llmlab/core/data"
	"llmlab/core/model"
	"llmlab/core/tensor"
	"llmlab/core/train"
	"llmlab/lora"
)

// letters decodes token k as the letter 'a'+k.
type letters struct{}

func (letters) Decode(ids []int32) string {
	var b strings.Builder
	for _, id := range ids {
		b.WriteByte(byte('a' + id%26))
	}
	return b.String()
}

// containsToken scores 1 for a response holding token x, else 0.
func containsToken(x int32) Scorer {
	return ScorerFunc(func(_ context.Context, rs []Rollout, dst []float32) error {
		for i, r := range rs {
			dst[i] = 0
			for _, id := range r.Response {
				if id == x {
					dst[i] = 1
				}
			}
		}
		return nil
	})
}

func ppoTasks(n int) []Task {
	tasks := make([]Task, n)
	for i := range tasks {
		tasks[i] = Task{Prompt: []int32{1, int32(2 + i%7), int32(3 + i%5)}}
	}
	return tasks
}

// newLoRAPPO is a PPO run on a fresh tiny model with a LoRA policy.
func newLoRAPPO(t *testing.T, cfg PPOConfig, sc Scorer) *PPORun {
	t.Helper()
	m := tinyModel(t)
	a, err := lora.Apply(m, lora.Config{Rank: 4, Alpha: 8, Targets: []string{"all-linear"}, ModulesToSave: []string{"embed_tokens"}, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	return &PPORun{M: m, Tok: letters{}, B: tensor.NewCPU(1), Cfg: cfg, Scorer: sc, Params: a.Params(),
		Value: NewScalarHead(ValueHeadName, m.Cfg.Hidden, true), SetPolicy: a.SetEnabled, Weights: a}
}

// newFullPPO is a PPO run training all weights against a frozen copy.
func newFullPPO(t *testing.T, cfg PPOConfig, sc Scorer) *PPORun {
	t.Helper()
	m, ref := tinyModel(t), tinyModel(t)
	m.Freeze(false)
	return &PPORun{M: m, Tok: letters{}, B: tensor.NewCPU(1), Cfg: cfg, Scorer: sc, Params: m.ParamList(),
		Value: NewScalarHead(ValueHeadName, m.Cfg.Hidden, true), Ref: ref, Weights: train.ModelWeights{M: m}}
}

func smallPPO() PPOConfig {
	c := DefaultPPO()
	c.Iterations, c.Prompts, c.MaxTokens, c.Epochs, c.MiniBatch = 1, 4, 5, 1, 4
	return c
}

// On the first minibatch of the first iteration the policy is the
// reference and the rollout policy: KL exactly 0, ratio exactly 1, nothing
// clipped.
func TestPPOFirstMinibatchIsOnPolicy(t *testing.T) {
	for _, tc := range []struct {
		name string
		mk   func(*testing.T, PPOConfig, Scorer) *PPORun
		kl   KLEstimator
	}{{"lora-k1", newLoRAPPO, K1}, {"lora-k3", newLoRAPPO, K3}, {"full-k1", newFullPPO, K1}} {
		t.Run(tc.name, func(t *testing.T) {
			c := smallPPO()
			c.KL, c.Temperature = tc.kl, 0.7
			r := tc.mk(t, c, containsToken(5))
			var got []PPOIteration
			if err := r.Train(context.Background(), ppoTasks(4), func(it PPOIteration) { got = append(got, it) }); err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 {
				t.Fatalf("%d iterations reported", len(got))
			}
			it := got[0]
			if it.KL != 0 || it.ApproxKL != 0 || it.ClipFrac != 0 {
				t.Errorf("KL %g, approx KL %g, clip fraction %g; want all exactly 0", it.KL, it.ApproxKL, it.ClipFrac)
			}
			if it.Length <= 0 || it.Entropy <= 0 || it.RolloutTPS <= 0 || it.UpdateTPS <= 0 || it.KLCoef != c.KLCoef {
				t.Errorf("implausible report %+v", it)
			}
		})
	}
}

// PPO learns a toy reward: responses that contain token 5 (a LoRA policy
// with the embeddings trained in full: a tiny random model's logits are too
// flat for the projections alone to move them).
func TestPPOLearnsToyReward(t *testing.T) {
	c := DefaultPPO()
	c.Iterations, c.Prompts, c.MaxTokens, c.Epochs, c.MiniBatch = 20, 16, 4, 2, 8
	c.LR, c.KLCoef, c.VFCoef = 1e-2, 0.01, 0.5
	r := newLoRAPPO(t, c, containsToken(5))
	var rewards []float64
	start := time.Now()
	err := r.Train(context.Background(), ppoTasks(8), func(it PPOIteration) { rewards = append(rewards, it.Reward) })
	if err != nil {
		t.Fatal(err)
	}
	mean := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	first, last := mean(rewards[:5]), mean(rewards[len(rewards)-5:])
	t.Logf("reward %.2f -> %.2f in %d iterations (%v)", first, last, len(rewards), time.Since(start).Round(time.Millisecond))
	if last < first+0.4 {
		t.Fatalf("reward %.2f in the first 5 iterations, %.2f in the last 5: not learned\n%v", first, last, rewards)
	}
}

// A run of 4 iterations equals a run of 2 resumed for 2 more, bit for bit:
// adapter, value head and the reports of iterations 3 and 4.
func TestPPOResumeIsExact(t *testing.T) {
	c := smallPPO()
	c.Iterations, c.Epochs, c.MiniBatch, c.TargetKL, c.LR, c.EntCoef = 4, 2, 2, 0.5, 5e-3, 0.01
	tasks := ppoTasks(3) // the cursor wraps mid-batch
	strip := func(its []PPOIteration) []PPOIteration {
		for i := range its {
			its[i].RolloutS, its[i].ScoreS, its[i].ForwardS, its[i].RefS, its[i].UpdateS = 0, 0, 0, 0, 0
			its[i].RolloutTPS, its[i].UpdateTPS = 0, 0
		}
		return its
	}
	var whole []PPOIteration
	a := newLoRAPPO(t, c, containsToken(5))
	a.Out = t.TempDir()
	if err := a.Train(context.Background(), tasks, func(it PPOIteration) { whole = append(whole, it) }); err != nil {
		t.Fatal(err)
	}

	out := t.TempDir()
	c2 := c
	c2.Iterations = 2
	b := newLoRAPPO(t, c2, containsToken(5))
	b.Out = out
	if err := b.Train(context.Background(), tasks, nil); err != nil {
		t.Fatal(err)
	}
	var resumed []PPOIteration
	r := newLoRAPPO(t, c, containsToken(5))
	r.Out, r.Resume = out, true
	if err := r.Train(context.Background(), tasks, func(it PPOIteration) { resumed = append(resumed, it) }); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(strip(whole[2:]), strip(resumed)); d != "" {
		t.Errorf("iterations 3 and 4 (-whole +resumed):\n%s", d)
	}
	pa, pr := append(a.Params, a.Value.Params()...), append(r.Params, r.Value.Params()...)
	for i := range pa {
		if d := cmp.Diff(pa[i].Value.F32, pr[i].Value.F32); d != "" {
			t.Errorf("%s differs after resume:\n%s", pa[i].Name, d)
		}
	}
	if a.KLCtl != r.KLCtl || a.KLCtl.Coef == c.KLCoef {
		t.Errorf("KL controller %+v after 4, %+v after 2+2 (started at %g)", a.KLCtl, r.KLCtl, c.KLCoef)
	}

	// Another configuration is refused, naming what changed.
	c3 := c
	c3.Clip = 0.3
	x := newLoRAPPO(t, c3, containsToken(5))
	x.Out, x.Resume = out, true
	err := x.Train(context.Background(), tasks, nil)
	var mm *PPOCheckpointMismatchError
	if !errors.As(err, &mm) || !strings.Contains(err.Error(), "clip: 0.2 -> 0.3") {
		t.Errorf("resume with another clip: %v", err)
	}
}

// Cancelling writes a checkpoint of the last whole iteration.
func TestPPOCancelCheckpoints(t *testing.T) {
	c := smallPPO()
	c.Iterations = 5
	r := newLoRAPPO(t, c, containsToken(5))
	r.Out = t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := r.Train(ctx, ppoTasks(4), func(it PPOIteration) {
		if it.Iteration == 2 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Train: %v, want context.Canceled", err)
	}
	if got := checkpoint.Steps(filepath.Join(r.Out, "checkpoints")); !cmp.Equal(got, []int{2}) {
		t.Fatalf("checkpoints %v, want [2]", got)
	}
	st, err := readPPOState(filepath.Join(r.Out, "checkpoints", "step-2"))
	if err != nil || st.Iteration != 2 || st.Cursor != 0 {
		t.Fatalf("state %+v, %v", st, err)
	}
	// A damaged file is caught by the manifest.
	os.WriteFile(filepath.Join(r.Out, "checkpoints", "step-2", "weights", ValueHeadFile), []byte("x"), 0o644)
	y := newLoRAPPO(t, c, containsToken(5))
	y.Out, y.Resume = r.Out, true
	if err := y.Train(context.Background(), ppoTasks(4), nil); err == nil || !strings.Contains(err.Error(), ValueHeadFile) {
		t.Fatalf("resume from a damaged checkpoint: %v", err)
	}
}

func TestValueHeadSaveLoad(t *testing.T) {
	h := NewScalarHead(ValueHeadName, 6, true)
	for i := range h.W.Value.F32 {
		h.W.Value.F32[i] = float32(i) - 2.5
	}
	h.B.Value.F32[0] = 0.25
	dir := t.TempDir()
	if err := SaveValueHead(dir, h); err != nil {
		t.Fatal(err)
	}
	g := NewScalarHead(ValueHeadName, 6, true)
	if err := LoadValueHead(dir, g); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(h.W.Value.F32, g.W.Value.F32); d != "" || g.B.Value.F32[0] != 0.25 {
		t.Errorf("round trip: weight (-want +got):\n%s bias %g", d, g.B.Value.F32[0])
	}
	wrong := NewScalarHead(ValueHeadName, 8, true)
	if err := LoadValueHead(dir, wrong); err == nil || !strings.Contains(err.Error(), "v_head.summary.weight has shape [1, 6], the model needs [1, 8]") {
		t.Errorf("loading into a wider head: %v", err)
	}
	if err := LoadValueHead(t.TempDir(), g); err == nil {
		t.Error("loading from an empty folder: no error")
	}
}

func TestHTTPScorer(t *testing.T) {
	rs := []Rollout{{PromptText: "p0", Text: "abc", Answer: "7"}, {PromptText: "p1", Text: "hello"}, {PromptText: "p2", Text: ""}}
	var fails atomic.Int32
	fails.Store(2)
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var in map[string]string
		b, _ := io.ReadAll(req.Body)
		if err := json.Unmarshal(b, &in); err != nil || req.Method != http.MethodPost {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if in["prompt"] == "p1" && fails.Add(-1) >= 0 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, `{"reward": %d, "note": %q}`, len(in["response"])+len(in["answer"]), in["prompt"])
	}))
	defer good.Close()
	s := &HTTPScorer{URL: good.URL, Retries: 3, Backoff: time.Millisecond}
	got := make([]float32, len(rs))
	if err := s.Scores(context.Background(), rs, got); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]float32{4, 5, 0}, got); d != "" {
		t.Errorf("scores (-want +got):\n%s", d)
	}

	for _, tc := range []struct {
		name, body string
		status     int
		want       string
	}{
		{"garbage", "<html>oops</html>", 200, `not JSON {"reward": number}: "<html>oops</html>"`},
		{"no reward", `{"score": 1}`, 200, `not JSON {"reward": number}`},
		{"string reward", `{"reward": "high"}`, 200, `not JSON {"reward": number}`},
		{"client error", "no such model", 404, "404 Not Found"},
		{"server error", "down", 500, `after 3 tries: status 500 Internal Server Error: "down\n"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hits atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				hits.Add(1)
				if tc.status != 200 {
					http.Error(w, tc.body, tc.status)
					return
				}
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			s := &HTTPScorer{URL: srv.URL, Retries: 2, Backoff: time.Millisecond, Workers: 1}
			err := s.Scores(context.Background(), rs[:1], got[:1])
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), srv.URL) {
				t.Fatalf("error %v, want one naming the URL and %s", err, tc.want)
			}
			wantHits := int32(1)
			if tc.status >= 500 {
				wantHits = 3
			}
			if hits.Load() != wantHits {
				t.Errorf("%d requests, want %d", hits.Load(), wantHits)
			}
		})
	}

	// A server that never answers in time.
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		select {
		case <-release:
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()
	defer close(release) // before Close, which waits for the handler
	s = &HTTPScorer{URL: slow.URL, Timeout: 20 * time.Millisecond, Backoff: time.Millisecond}
	if err := s.Scores(context.Background(), rs[:1], got[:1]); err == nil || !strings.Contains(err.Error(), "Timeout") {
		t.Errorf("slow server: %v", err)
	}
}

// RMScorer reads the reward model at the last token of prompt + response.
func TestRMScorer(t *testing.T) {
	be := tensor.NewCPU(1)
	rm := NewRewardModel(tinyModel(t))
	for i := range rm.Head.W.Value.F32 {
		rm.Head.W.Value.F32[i] = float32(i%3) - 1
	}
	rs := []Rollout{{Prompt: []int32{1, 2}, Response: []int32{3, 4, 5}}, {Prompt: []int32{1, 2, 3, 4}, Response: []int32{9}}}
	got := make([]float32, 2)
	s := &RMScorer{RM: rm, B: be, Rows: 1}
	if err := s.Scores(context.Background(), rs, got); err != nil {
		t.Fatal(err)
	}
	// By hand: the head on the final hidden state of each row's last token.
	for i, r := range rs {
		ids := append(append([]int32(nil), r.Prompt...), r.Response...)
		tp := autograd.NewTape(be)
		h, err := rm.M.Hidden(tp, model.Inputs{B: 1, T: len(ids), IDs: ids})
		if err != nil {
			t.Fatal(err)
		}
		all := rm.Head.Forward(tp, h).Value.F32
		if want := all[len(ids)-1]; got[i] != want {
			t.Errorf("row %d: score %g, want %g", i, got[i], want)
		}
	}
	s.Encode = func(Rollout) (data.Example, error) {
		return data.Example{IDs: []int32{1}, Labels: []int32{data.IgnoreIndex}}, nil
	}
	if err := s.Scores(context.Background(), rs, got); err == nil || !strings.Contains(err.Error(), "nothing to score") {
		t.Errorf("an empty response: %v", err)
	}
}

func TestPPOConfigValidate(t *testing.T) {
	ok := DefaultPPO()
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(*PPOConfig)
	}{
		{"minibatch larger than batch", func(c *PPOConfig) { c.MiniBatch = c.Prompts + 1 }},
		{"no epochs", func(c *PPOConfig) { c.Epochs = 0 }},
		{"lambda above 1", func(c *PPOConfig) { c.Lambda = 1.5 }},
		{"adaptive without horizon", func(c *PPOConfig) { c.TargetKL, c.KLHorizon = 6, 0 }},
		{"zero lr", func(c *PPOConfig) { c.LR = 0 }},
		{"nan temperature", func(c *PPOConfig) { c.Temperature = math.NaN() }},
	} {
		c := ok
		tc.edit(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

// A response ends with the stop token the model sampled; nothing follows it.
func TestPPOResponsesEndAtStop(t *testing.T) {
	c := smallPPO()
	c.Iterations, c.MaxTokens = 3, 12
	var seen []Rollout
	sc := ScorerFunc(func(_ context.Context, rs []Rollout, dst []float32) error {
		seen = append(seen, rs...)
		for i := range dst {
			dst[i] = float32(len(rs[i].Response))
		}
		return nil
	})
	r := newLoRAPPO(t, c, sc)
	r.StopIDs = []int32{7}
	if err := r.Train(context.Background(), ppoTasks(4), nil); err != nil {
		t.Fatal(err)
	}
	stopped := 0
	for i, ro := range seen {
		for k, id := range ro.Response {
			if id == 7 && k != len(ro.Response)-1 {
				t.Fatalf("rollout %d: stop token at %d of %v", i, k, ro.Response)
			}
		}
		switch {
		case ro.Finish == "stop":
			stopped++
			if ro.Response[len(ro.Response)-1] != 7 {
				t.Errorf("rollout %d stopped but ends %v", i, ro.Response)
			}
		case len(ro.Response) != c.MaxTokens:
			t.Errorf("rollout %d: %d tokens, finish %q", i, len(ro.Response), ro.Finish)
		}
		if ro.Text != (letters{}).Decode(ro.Response[:len(ro.Response)-boolInt(ro.Finish == "stop")]) {
			t.Errorf("rollout %d: text %q for %v", i, ro.Text, ro.Response)
		}
	}
	if stopped == 0 {
		t.Error("no rollout stopped: the test shows nothing")
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
