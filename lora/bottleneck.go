package lora

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"llmlab/core/autograd"
	"llmlab/core/checkpoint"
	"llmlab/core/model"
	"llmlab/core/tensor"
)

// Bottleneck adapters (Houlsby et al. 2019) add a small residual MLP after
// the attention and after the feed-forward part of every block:
//
//	h ← h + up(act(down(h)))    on the sublayer's output, before the
//	                            block's own residual connection
//
// down (r, C) and up (C, r) with biases; up starts at zero, so training
// starts from the base model. They wrap the sublayers' output projections
// (o_proj and down_proj, GPT-2's attn.c_proj and mlp.c_proj), which is the
// same place.
//
// PEFT has no bottleneck adapter, so the files are a layout of ours in
// PEFT's style:
//
//	adapter_config.json   {"peft_type": "BOTTLENECK", "bottleneck_size": r,
//	                       "non_linearity": "relu"|"gelu"|"silu",
//	                       "target_modules": [...], "base_model_name_or_path": ...}
//	adapter_model.safetensors
//	  base_model.model.<module>.adapter_down.weight (r, C), .adapter_down.bias (r)
//	  base_model.model.<module>.adapter_up.weight   (C, r), .adapter_up.bias   (C)
//
// where <module> is the wrapped projection's HF name, e.g.
// model.layers.0.self_attn.o_proj.

// BottleneckConfig describes bottleneck adapters.
type BottleneckConfig struct {
	Size       int      // r, the bottleneck width
	Activation string   // relu (default), gelu or silu
	Targets    []string // default: the attention and MLP output projections
	Seed       uint64
}

// BottleneckAdapter is a set of bottleneck adapters on one model.
type BottleneckAdapter struct {
	Cfg     BottleneckConfig
	Layers  []*BottleneckLinear
	model   *model.Transformer
	slots   []*model.Projection
	enabled bool
}

// BottleneckLinear is a projection followed by a bottleneck adapter.
type BottleneckLinear struct {
	Base        model.Projection
	Name        string
	Down, DownB *autograd.Param // (r, C), (r)
	Up, UpB     *autograd.Param // (C, r), (C)
	act         string
	enabled     *bool
}

var (
	_ model.Projection = (*BottleneckLinear)(nil)
	_ model.Named      = (*BottleneckLinear)(nil)
)

// ModuleName forwards the base's name.
func (l *BottleneckLinear) ModuleName() string { return l.Name }

// Forward applies the base and, when enabled, the adapter on its output.
func (l *BottleneckLinear) Forward(t *autograd.Tape, x *autograd.Var) *autograd.Var {
	y := l.Base.Forward(t, x)
	if !*l.enabled {
		return y
	}
	h := t.Linear(y, t.Param(l.Down), t.Param(l.DownB)) // (N, r)
	h = activation(t, h, l.act)
	return t.Add(y, t.Linear(h, t.Param(l.Up), t.Param(l.UpB))) // (N, C)
}

// activation applies relu, gelu (tanh approximation) or silu.
func activation(t *autograd.Tape, x *autograd.Var, name string) *autograd.Var {
	switch name {
	case "gelu":
		return t.GELU(x)
	case "silu":
		// silu(x) = SwiGLU's gate with an up of ones.
		ones := t.Alloc(x.Value.Shape...)
		tensor.Fill(ones, 1)
		return t.SwiGLU(x, t.Const(ones))
	}
	return t.ReLU(x)
}

// DefaultBottleneckTargets are the attention and MLP output projections.
func DefaultBottleneckTargets(m *model.Transformer) []string {
	if m.Cfg.Arch == model.GPT2 {
		return []string{"attn.c_proj", "mlp.c_proj"}
	}
	return []string{"o_proj", "down_proj"}
}

// ApplyBottleneck wraps the targeted projections with fresh adapters; the
// base is frozen.
func ApplyBottleneck(m *model.Transformer, c BottleneckConfig) (*BottleneckAdapter, error) {
	if c.Size <= 0 {
		return nil, fmt.Errorf("adapter: bottleneck size must be positive, got %d", c.Size)
	}
	if c.Activation == "" {
		c.Activation = "relu"
	}
	if c.Activation != "relu" && c.Activation != "gelu" && c.Activation != "silu" {
		return nil, fmt.Errorf("adapter: non-linearity %q is not supported (relu, gelu, silu)", c.Activation)
	}
	if len(c.Targets) == 0 {
		c.Targets = DefaultBottleneckTargets(m)
	}
	m.Freeze(true)
	a := &BottleneckAdapter{Cfg: c, model: m, enabled: true}
	r := rand.New(rand.NewPCG(c.Seed, 0xb077))
	for name, slot := range m.Projections() {
		if !matches(name, c.Targets) {
			continue
		}
		base, ok := (*slot).(*model.Linear)
		if !ok {
			a.Remove()
			return nil, fmt.Errorf("adapter: %s is already wrapped (%T)", name, *slot)
		}
		C := base.Out()
		if c.Size > C {
			a.Remove()
			return nil, fmt.Errorf("adapter: bottleneck size %d is larger than layer %s (%d wide)", c.Size, name, C)
		}
		l := &BottleneckLinear{Base: base, Name: name, act: c.Activation, enabled: &a.enabled,
			Down:  &autograd.Param{Name: name + ".adapter_down.weight", Value: tensor.New(c.Size, C)},
			DownB: &autograd.Param{Name: name + ".adapter_down.bias", Value: tensor.New(c.Size)},
			Up:    &autograd.Param{Name: name + ".adapter_up.weight", Value: tensor.New(C, c.Size)},
			UpB:   &autograd.Param{Name: name + ".adapter_up.bias", Value: tensor.New(C)},
		}
		bound := 1 / math.Sqrt(float64(C))
		for i := range l.Down.Value.F32 {
			l.Down.Value.F32[i] = float32((r.Float64()*2 - 1) * bound)
		}
		*slot = l
		a.Layers = append(a.Layers, l)
		a.slots = append(a.slots, slot)
	}
	if len(a.Layers) == 0 {
		return nil, fmt.Errorf("adapter: targets %v match no projection (valid: %s)", c.Targets, strings.Join(ValidTargets(m), ", "))
	}
	return a, nil
}

// Params returns the trainable tensors.
func (a *BottleneckAdapter) Params() []*autograd.Param {
	var ps []*autograd.Param
	for _, l := range a.Layers {
		ps = append(ps, l.Down, l.DownB, l.Up, l.UpB)
	}
	return ps
}

// SetEnabled switches the adapters on or off (off: the base model).
func (a *BottleneckAdapter) SetEnabled(on bool) { a.enabled = on }

// Remove restores the base projections.
func (a *BottleneckAdapter) Remove() {
	for i, s := range a.slots {
		*s = a.Layers[i].Base
	}
}

type bottleneckConfigJSON struct {
	PeftType   string   `json:"peft_type"`
	TaskType   string   `json:"task_type"`
	Size       int      `json:"bottleneck_size"`
	Activation string   `json:"non_linearity"`
	Targets    []string `json:"target_modules"`
	BaseModel  string   `json:"base_model_name_or_path"`
	Inference  bool     `json:"inference_mode"`
}

// Save writes the adapter in the layout described above.
func (a *BottleneckAdapter) Save(dir, base string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	adapted := map[string]bool{}
	for _, l := range a.Layers {
		adapted[l.Name] = true
	}
	seen := map[string]bool{}
	var targets []string
	var ts []checkpoint.Named
	for _, l := range a.Layers {
		if s := exactTarget(a.model, l.Name, adapted); !seen[s] {
			seen[s] = true
			targets = append(targets, s)
		}
		for _, p := range []*autograd.Param{l.Down, l.DownB, l.Up, l.UpB} {
			ts = append(ts, checkpoint.Named{Name: peftPrefix + p.Name, T: p.Value})
		}
	}
	sort.Strings(targets)
	js, err := json.MarshalIndent(bottleneckConfigJSON{PeftType: "BOTTLENECK", TaskType: "CAUSAL_LM", Size: a.Cfg.Size,
		Activation: a.Cfg.Activation, Targets: targets, BaseModel: base, Inference: true}, "", "  ")
	if err != nil {
		return err
	}
	if err := checkpoint.WriteFileAtomic(filepath.Join(dir, "adapter_config.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	return checkpoint.Write(filepath.Join(dir, "adapter_model.safetensors"), ts, map[string]string{"format": "pt"})
}

// SaveWeights implements train.Weights.
func (a *BottleneckAdapter) SaveWeights(dir string) error { return a.Save(dir, "") }

// LoadWeights implements train.Weights: exactly this adapter's tensors.
func (a *BottleneckAdapter) LoadWeights(dir string) error {
	path := filepath.Join(dir, "adapter_model.safetensors")
	f, err := checkpoint.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	ps := a.Params()
	if n := len(f.Names()); n != len(ps) {
		var want []string
		for _, p := range ps {
			want = append(want, peftPrefix+p.Name)
		}
		return fmt.Errorf("%s: %d tensors, the base model's adapter has %d (%s, ...)", path, n, len(ps), want[0])
	}
	for _, p := range ps {
		key := peftPrefix + p.Name
		t, err := f.Tensor(key)
		if err != nil {
			return fmt.Errorf("%s: missing tensor %s (an adapter for another base?)", path, key)
		}
		if !t.Shape.Equal(p.Value.Shape) {
			return fmt.Errorf("%s: tensor %q has shape %v, the base model needs %v (an adapter for another base?)", path, key, t.Shape, p.Value.Shape)
		}
		copy(p.Value.F32, t.Float32s())
	}
	return nil
}

// LoadBottleneck reads bottleneck adapters and applies them to m.
func LoadBottleneck(m *model.Transformer, dir string) (*BottleneckAdapter, error) {
	cpath := filepath.Join(dir, "adapter_config.json")
	data, err := os.ReadFile(cpath)
	if err != nil {
		return nil, err
	}
	var pc bottleneckConfigJSON
	if err := json.Unmarshal(data, &pc); err != nil {
		return nil, fmt.Errorf("%s: %w", cpath, err)
	}
	if pc.PeftType != "BOTTLENECK" {
		return nil, fmt.Errorf("%s: peft_type %q is not BOTTLENECK", cpath, pc.PeftType)
	}
	a, err := ApplyBottleneck(m, BottleneckConfig{Size: pc.Size, Activation: pc.Activation, Targets: pc.Targets})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if err := a.LoadWeights(dir); err != nil {
		a.Remove()
		return nil, err
	}
	return a, nil
}
