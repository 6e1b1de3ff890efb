package lora

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"

	"llmlab/core/autograd"
	"llmlab/core/checkpoint"
	"llmlab/core/model"
	"llmlab/core/tensor"
	"llmlab/core/tensor/tensortest"
)

// TestQwen3AllLinear: a PEFT LoRA adapter on every linear layer of a tiny
// Qwen3 (q, k, v, o, gate, up, down in each block; written by
// tools/golden/peft.py with random A and B) applies exactly: the logits
// match PyTorch's Qwen3 forward on W + (alpha/r)·B·A, before and after
// Merge folds the adapter into the base weights. TestGolden checks the
// loss and the gradients of the same case.
func TestQwen3AllLinear(t *testing.T) {
	dir := filepath.Join("testdata", "golden", "qwen3_lora_all_linear")
	var gb struct {
		Base string    `json:"base"`
		IDs  [][]int32 `json:"ids"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "batch.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &gb); err != nil {
		t.Fatalf("%s: %v", filepath.Join(dir, "batch.json"), err)
	}
	m, err := model.Load(filepath.Join("..", "core", "model", "testdata", "golden", gb.Base), model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Cfg.ModelType != "qwen3" {
		t.Fatalf("base %s is %s, want qwen3", gb.Base, m.Cfg.ModelType)
	}
	a, err := Load(m, dir)
	if err != nil {
		t.Fatal(err)
	}
	// Every projection of the model is adapted, and nothing else.
	var adapted, all []string
	for _, l := range a.Layers {
		adapted = append(adapted, l.Name)
	}
	for name := range m.Projections() {
		all = append(all, name)
	}
	sort.Strings(adapted)
	sort.Strings(all)
	if diff := cmp.Diff(all, adapted); diff != "" {
		t.Fatalf("adapted layers differ from the model's projections (-all +adapted):\n%s", diff)
	}
	if want := 7 * m.Cfg.Layers; len(adapted) != want {
		t.Fatalf("%d adapted layers, want %d", len(adapted), want)
	}
	if got, want := a.Layers[0].Scale, float32(8)/4; got != want {
		t.Fatalf("scale %v, want alpha/r = %v", got, want)
	}

	want, err := checkpoint.Open(filepath.Join(dir, "expected.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	exp, err := want.Tensor("logits")
	if err != nil {
		t.Fatalf("expected.safetensors: %v", err)
	}
	var ids []int32
	for _, row := range gb.IDs {
		ids = append(ids, row...)
	}
	logits := func() []float32 {
		tp := autograd.NewTape(tensor.NewCPU(2))
		l, err := m.Forward(tp, model.Inputs{B: len(gb.IDs), T: len(gb.IDs[0]), IDs: ids})
		if err != nil {
			t.Fatal(err)
		}
		return append([]float32(nil), l.Value.F32...)
	}
	tensortest.Close(t, "adapted logits", logits(), exp.Float32s(), 1e-4)

	// The adapter must matter: without it the logits are far from these.
	a.SetEnabled(false)
	off := logits()
	a.SetEnabled(true)
	maxDiff := float32(0)
	for i, v := range exp.Float32s() {
		if d := v - off[i]; d > maxDiff {
			maxDiff = d
		} else if -d > maxDiff {
			maxDiff = -d
		}
	}
	if maxDiff < 1e-2 {
		t.Fatalf("the adapter changes the logits by at most %g: the check would not see a wrong update", maxDiff)
	}

	if err := a.Merge(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for name, p := range m.Projections() {
		n++
		if _, ok := (*p).(*Linear); ok {
			t.Fatalf("after Merge %s is still a LoRA layer", name)
		}
	}
	if n != len(all) {
		t.Fatalf("after Merge the model has %d projections, want %d", n, len(all))
	}
	tensortest.Close(t, "merged logits", logits(), exp.Float32s(), 1e-4)
}
