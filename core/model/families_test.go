package model

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"llmlab/core/autograd"
	"llmlab/core/checkpoint"
	"llmlab/core/tensor"
	"llmlab/core/tensor/tensortest"
)

type familyBatch struct {
	IDs     [][]int32 `json:"ids"`
	Targets [][]int32 `json:"targets"`
	Prompt  []int32   `json:"prompt"`
}

// TestFamilies checks every family case written by
// tools/golden/families.py (an independent PyTorch reference of each HF
// family): logits, loss (1e-4 relative), every gradient of the f32 cases,
// and 12 greedy ids, decoded through the KV cache where the RoPE table
// does not depend on the length (else by recomputing the whole prefix,
// as the reference does).
func TestFamilies(t *testing.T) {
	cases, _ := filepath.Glob("testdata/golden/families/*/expected.safetensors")
	if len(cases) == 0 {
		t.Fatal("no family golden cases (run make golden)")
	}
	for _, exp := range cases {
		dir := filepath.Dir(exp)
		t.Run(filepath.Base(dir), func(t *testing.T) { checkFamily(t, dir) })
	}
}

func checkFamily(t *testing.T, dir string) {
	m, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var fb familyBatch
	data, err := os.ReadFile(filepath.Join(dir, "batch.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &fb); err != nil {
		t.Fatal(err)
	}
	want, err := checkpoint.Open(filepath.Join(dir, "expected.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	has := map[string]bool{}
	for _, n := range want.Names() {
		has[n] = true
	}
	get := func(name string) []float32 {
		x, err := want.Tensor(name)
		if err != nil {
			t.Fatalf("expected.safetensors: %v", err)
		}
		return x.Float32s()
	}
	B, T := len(fb.IDs), len(fb.IDs[0])
	in := Inputs{B: B, T: T, IDs: flatIDs(fb.IDs)}
	targets := flatIDs(fb.Targets)
	tp := autograd.NewTape(tensor.NewCPU(2))
	logits, err := m.Forward(tp, in)
	if err != nil {
		t.Fatal(err)
	}
	tensortest.Close(t, "logits", logits.Value.F32, get("logits"), 1e-4)
	loss, _, err := m.Loss(tp, in, targets)
	if err != nil {
		t.Fatal(err)
	}
	tensortest.Close(t, "loss", loss.Value.F32, get("loss"), 1e-4)
	if has["grad.model.embed_tokens.weight"] {
		if err := tp.Backward(loss); err != nil {
			t.Fatal(err)
		}
		for _, p := range m.ParamList() {
			tensortest.Close(t, "grad "+p.Name, p.Grad.F32, get("grad."+p.Name), 1e-3)
		}
	}
	wantIDs := toInt32(get("greedy"))
	recompute := m.Cfg.Rope.Kind == RopeDynamic || m.Cfg.Rope.Kind == RopeLongRoPE
	if got := greedy(t, m, fb.Prompt, len(wantIDs), recompute); !slices.Equal(got, wantIDs) {
		t.Errorf("greedy ids (-want +got):\n%s", cmp.Diff(wantIDs, got))
	}
}

func toInt32(x []float32) []int32 {
	out := make([]int32, len(x))
	for i, v := range x {
		out[i] = int32(v)
	}
	return out
}

// greedy appends n argmax ids to prompt: through a KV cache, or by running
// the whole sequence again for every token.
func greedy(t *testing.T, m *Transformer, prompt []int32, n int, recompute bool) []int32 {
	t.Helper()
	tp := autograd.NewTape(tensor.NewCPU(1))
	tp.NoGrad = true
	seq := slices.Clone(prompt)
	var cache *Cache
	if !recompute {
		cache = m.NewCache(1, len(prompt)+n)
	}
	next := seq
	for range n {
		tp.Reset()
		in := Inputs{B: 1, T: len(seq), IDs: seq}
		if cache != nil {
			in = Inputs{B: 1, T: len(next), IDs: next, Cache: cache}
		}
		logits, err := m.Forward(tp, in)
		if err != nil {
			t.Fatal(err)
		}
		V := m.Cfg.VocabSize
		last := logits.Value.F32[len(logits.Value.F32)-V:]
		best := 0
		for i, v := range last {
			if v > last[best] {
				best = i
			}
		}
		seq = append(seq, int32(best))
		next = []int32{int32(best)}
	}
	return seq[len(prompt):]
}
