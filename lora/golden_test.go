package lora

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"llmlab/core/autograd"
	"llmlab/core/checkpoint"
	"llmlab/core/model"
	"llmlab/core/tensor"
	"llmlab/core/tensor/tensortest"
)

// TestGolden loads the PEFT-layout adapters that tools/golden/peft.py
// (PyTorch) wrote for the engine's golden base models, and matches the
// logits, the loss and the gradient of every adapter tensor.
func TestGolden(t *testing.T) {
	cases, _ := filepath.Glob("testdata/golden/*/expected.safetensors")
	if len(cases) == 0 {
		t.Fatal("no golden cases in testdata/golden (run make golden)")
	}
	for _, c := range cases {
		dir := filepath.Dir(c)
		t.Run(filepath.Base(dir), func(t *testing.T) { checkGolden(t, dir) })
	}
}

// goldenAdapter is what the golden test needs from any adapter type.
type goldenAdapter struct {
	params []*autograd.Param
	key    func(p *autograd.Param) string // the PEFT key of a parameter
}

func loadGoldenAdapter(t *testing.T, m *model.Transformer, dir string) goldenAdapter {
	kind, err := PeftType(dir)
	if err != nil {
		t.Fatal(err)
	}
	switch kind {
	case "LORA":
		a, err := Load(m, dir)
		if err != nil {
			t.Fatal(err)
		}
		return goldenAdapter{a.Params(), func(p *autograd.Param) string { return peftPrefix + p.Name }}
	case "IA3":
		a, err := LoadIA3(m, dir)
		if err != nil {
			t.Fatal(err)
		}
		return goldenAdapter{a.Params(), func(p *autograd.Param) string { return peftPrefix + p.Name }}
	default:
		a, err := LoadPrefix(m, dir)
		if err != nil {
			t.Fatal(err)
		}
		return goldenAdapter{a.Params(), func(p *autograd.Param) string { return p.Name }}
	}
}

func checkGolden(t *testing.T, dir string) {
	var gb struct {
		Base    string    `json:"base"`
		IDs     [][]int32 `json:"ids"`
		Targets [][]int32 `json:"targets"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "batch.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &gb); err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(filepath.Join("..", "core", "model", "testdata", "golden", gb.Base), model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a := loadGoldenAdapter(t, m, dir)
	want, err := checkpoint.Open(filepath.Join(dir, "expected.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	get := func(name string) []float32 {
		x, err := want.Tensor(name)
		if err != nil {
			t.Fatalf("expected.safetensors: %v", err)
		}
		return x.Float32s()
	}
	B, T := len(gb.IDs), len(gb.IDs[0])
	var ids, targets []int32
	for b := range gb.IDs {
		ids = append(ids, gb.IDs[b]...)
		targets = append(targets, gb.Targets[b]...)
	}
	for _, threads := range []int{1, 2} {
		for _, p := range a.params {
			p.Grad = nil
		}
		tp := autograd.NewTape(tensor.NewCPU(threads))
		logits, err := m.Forward(tp, model.Inputs{B: B, T: T, IDs: ids})
		if err != nil {
			t.Fatal(err)
		}
		tensortest.Close(t, "logits", logits.Value.F32, get("logits"), 1e-4)
		n := 0
		for _, y := range targets {
			if y >= 0 {
				n++
			}
		}
		loss := tp.SumScaled(tp.CrossEntropy(logits, targets), 1/float32(n))
		tensortest.Close(t, "loss", loss.Value.F32, get("loss"), 1e-4)
		if err := tp.Backward(loss); err != nil {
			t.Fatal(err)
		}
		for p := range m.Params() {
			if p.Grad != nil && !strings.Contains(p.Name, "lora") {
				t.Errorf("frozen base parameter %s received a gradient", p.Name)
			}
		}
		for _, p := range a.params {
			closeScaled(t, "grad "+a.key(p), p.Grad.F32, get("grad."+a.key(p)), 1e-4)
		}
	}
}

// closeScaled checks |got - want| <= tol·max|want| everywhere: gradients
// here are 1e-4 to 1e-1, so a tolerance in absolute terms would not test
// the small ones.
func closeScaled(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	scale := 0.0
	for _, w := range want {
		scale = max(scale, math.Abs(float64(w)))
	}
	worst, at := 0.0, 0
	for i := range got {
		if d := math.Abs(float64(got[i]) - float64(want[i])); d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	if scale == 0 || !(worst <= tol*scale) {
		t.Errorf("%s: max diff %.3g at %d (got %v, want %v) against a largest value of %.3g", what, worst, at, got[at], want[at], scale)
	}
}
