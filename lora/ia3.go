package lora

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"llmlab/core/autograd"
	"llmlab/core/checkpoint"
	"llmlab/core/model"
	"llmlab/core/tensor"
)

// IA3 ((IA)³, Liu et al. 2022) learns one scaling vector per adapted
// projection, initialised to 1 so training starts from the base model: the
// outputs of the attention keys and values are scaled (l_k, l_v), and the
// input of the MLP's down projection (l_ff) — PEFT's feedforward_modules.
// It is the smallest PEFT method: C numbers per module.
type IA3Adapter struct {
	Layers  []*IA3Linear
	model   *model.Transformer
	slots   []*model.Projection
	enabled bool
}

// IA3Linear scales a base projection's output (or, for feed-forward
// modules, its input) by a learned vector.
type IA3Linear struct {
	Base        model.Projection
	Name        string
	L           *autograd.Param // (out) or (in) for feed-forward modules
	FeedForward bool
	enabled     *bool
	zeros       []int32 // scaleCols' row ids, kept between steps
}

var _ model.Projection = (*IA3Linear)(nil)

// ModuleName forwards the base's name.
func (l *IA3Linear) ModuleName() string { return l.Name }

// Forward scales the input (feed-forward) or the output by the vector.
func (l *IA3Linear) Forward(t *autograd.Tape, x *autograd.Var) *autograd.Var {
	if !*l.enabled {
		return l.Base.Forward(t, x)
	}
	if l.FeedForward {
		return l.Base.Forward(t, scaleCols(t, x, t.Param(l.L), &l.zeros))
	}
	return scaleCols(t, l.Base.Forward(t, x), t.Param(l.L), &l.zeros)
}

// scaleCols multiplies each row of x (N, C) by s (C), with backend ops
// only (so device tensors stay on the device): s is gathered into every
// row (an embedding lookup of row 0), multiplied in, and its gradient is
// the column sums of dy∘x. zeros holds the N zero row ids, grown as
// needed.
func scaleCols(t *autograd.Tape, x, s *autograd.Var, zeros *[]int32) *autograd.Var {
	N, C := x.Value.Rows(), x.Value.Cols()
	if len(*zeros) < N {
		*zeros = make([]int32, N)
	}
	ids := (*zeros)[:N]
	rows := t.Alloc(N, C) // s in every row
	t.B.Embedding(rows, ids, s.Value)
	out := t.Alloc(N, C)
	t.B.Mul(out, x.Value, rows)
	var o *autograd.Var
	o = t.Custom(out, func() {
		if x.NeedsGrad() {
			tmp := t.Alloc(N, C)
			t.B.Mul(tmp, o.Grad, rows)
			gx := t.GradOf(x)
			t.B.Add(gx, gx, tmp)
		}
		if s.NeedsGrad() {
			tmp := t.Alloc(N, C)
			t.B.Mul(tmp, o.Grad, x.Value)
			t.B.SumRows(t.GradOf(s), tmp)
		}
	}, x, s)
	return o
}

// DefaultIA3Targets are PEFT's defaults for the Llama family and GPT-2.
func DefaultIA3Targets(m *model.Transformer) (targets, feedForward []string) {
	if m.Cfg.Arch == model.GPT2 {
		return []string{"c_attn", "mlp.c_proj"}, []string{"mlp.c_proj"}
	}
	return []string{"k_proj", "v_proj", "down_proj"}, []string{"down_proj"}
}

// ApplyIA3 wraps the targeted projections; modules matching feedForward
// scale their input instead of their output. The base is frozen.
func ApplyIA3(m *model.Transformer, targets, feedForward []string) (*IA3Adapter, error) {
	if len(targets) == 0 {
		targets, feedForward = DefaultIA3Targets(m)
	}
	m.Freeze(true)
	a := &IA3Adapter{model: m, enabled: true}
	for name, slot := range m.Projections() {
		if !matches(name, targets) {
			continue
		}
		base, ok := (*slot).(*model.Linear)
		if !ok {
			a.Remove()
			return nil, fmt.Errorf("ia3: %s is already wrapped (%T)", name, *slot)
		}
		ff := matches(name, feedForward)
		n := base.Out()
		if ff {
			n = base.In()
		}
		l := &IA3Linear{Base: base, Name: name, FeedForward: ff, enabled: &a.enabled,
			L: &autograd.Param{Name: name + ".ia3_l", Value: tensor.New(n)}}
		for i := range l.L.Value.F32 {
			l.L.Value.F32[i] = 1
		}
		*slot = l
		a.Layers = append(a.Layers, l)
		a.slots = append(a.slots, slot)
	}
	if len(a.Layers) == 0 {
		return nil, fmt.Errorf("ia3: targets %v match no projection (valid: %s)", targets, strings.Join(ValidTargets(m), ", "))
	}
	return a, nil
}

// Params returns the scaling vectors.
func (a *IA3Adapter) Params() []*autograd.Param {
	var ps []*autograd.Param
	for _, l := range a.Layers {
		ps = append(ps, l.L)
	}
	return ps
}

// SetEnabled switches the scaling on or off (off: the base model).
func (a *IA3Adapter) SetEnabled(on bool) { a.enabled = on }

// Remove restores the base projections.
func (a *IA3Adapter) Remove() {
	for i, s := range a.slots {
		*s = a.Layers[i].Base
	}
}

// Save writes PEFT's IA3 layout: adapter_config.json (peft_type IA3,
// target_modules, feedforward_modules) and ia3_l tensors shaped (out, 1),
// or (1, in) for feed-forward modules, as PEFT stores them.
func (a *IA3Adapter) Save(dir, base string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var targets, ff []string
	seen := map[string]bool{}
	var ts []checkpoint.Named
	adapted := map[string]bool{}
	for _, l := range a.Layers {
		adapted[l.Name] = true
	}
	for _, l := range a.Layers {
		s := exactTarget(a.model, l.Name, adapted)
		if !seen[s] {
			seen[s] = true
			targets = append(targets, s)
			if l.FeedForward {
				ff = append(ff, s)
			}
		}
		shape := []int{l.L.Value.Numel(), 1}
		if l.FeedForward {
			shape = []int{1, l.L.Value.Numel()}
		}
		ts = append(ts, checkpoint.Named{Name: peftPrefix + l.Name + ".ia3_l", T: l.L.Value.Reshape(shape...)})
	}
	sort.Strings(targets)
	sort.Strings(ff)
	cfg := map[string]any{"peft_type": "IA3", "task_type": "CAUSAL_LM", "target_modules": targets,
		"feedforward_modules": ff, "init_ia3_weights": true, "inference_mode": true, "base_model_name_or_path": base,
		"fan_in_fan_out": a.model.Cfg.Arch == model.GPT2}
	js, _ := json.MarshalIndent(cfg, "", "  ")
	if err := checkpoint.WriteFileAtomic(filepath.Join(dir, "adapter_config.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	return checkpoint.Write(filepath.Join(dir, "adapter_model.safetensors"), ts, map[string]string{"format": "pt"})
}

// LoadIA3 reads a PEFT IA3 adapter and applies it to m; every tensor must
// match a module of m.
func LoadIA3(m *model.Transformer, dir string) (*IA3Adapter, error) {
	cpath := filepath.Join(dir, "adapter_config.json")
	data, err := os.ReadFile(cpath)
	if err != nil {
		return nil, err
	}
	var pc struct {
		PeftType string   `json:"peft_type"`
		Targets  []string `json:"target_modules"`
		FF       []string `json:"feedforward_modules"`
	}
	if err := json.Unmarshal(data, &pc); err != nil {
		return nil, fmt.Errorf("%s: %w", cpath, err)
	}
	if pc.PeftType != "IA3" {
		return nil, fmt.Errorf("%s: peft_type %q is not IA3", cpath, pc.PeftType)
	}
	a, err := ApplyIA3(m, pc.Targets, pc.FF)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	f, err := checkpoint.Open(filepath.Join(dir, "adapter_model.safetensors"))
	if err != nil {
		a.Remove()
		return nil, err
	}
	defer f.Close()
	if n := len(f.Names()); n != len(a.Layers) {
		a.Remove()
		return nil, fmt.Errorf("%s: %d tensors for %d adapted modules", dir, n, len(a.Layers))
	}
	for _, l := range a.Layers {
		key := peftPrefix + l.Name + ".ia3_l"
		t, err := f.Tensor(key)
		if err != nil {
			a.Remove()
			return nil, fmt.Errorf("%s: missing tensor %s", dir, key)
		}
		if t.Numel() != l.L.Value.Numel() {
			a.Remove()
			return nil, fmt.Errorf("%s: tensor %q has shape %v, the base model needs %d values", dir, key, t.Shape, l.L.Value.Numel())
		}
		tensor.Copy(l.L.Value, tensor.FromF32(t.Float32s(), l.L.Value.Shape...))
	}
	return a, nil
}

// SaveWeights implements train.Weights.
func (a *IA3Adapter) SaveWeights(dir string) error { return a.Save(dir, "") }

// LoadWeights implements train.Weights: values of the same modules.
func (a *IA3Adapter) LoadWeights(dir string) error {
	f, err := checkpoint.Open(filepath.Join(dir, "adapter_model.safetensors"))
	if err != nil {
		return err
	}
	defer f.Close()
	for _, l := range a.Layers {
		t, err := f.Tensor(peftPrefix + l.Name + ".ia3_l")
		if err != nil {
			return err
		}
		if t.Numel() != len(l.L.Value.F32) {
			return fmt.Errorf("%s: %s has %d values, want %d", dir, l.Name, t.Numel(), len(l.L.Value.F32))
		}
		copy(l.L.Value.F32, t.Float32s())
	}
	return nil
}

// PeftType reads the peft_type of an adapter folder.
func PeftType(dir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	if err != nil {
		return "", err
	}
	var pc struct {
		PeftType string `json:"peft_type"`
	}
	if err := json.Unmarshal(data, &pc); err != nil {
		return "", fmt.Errorf("%s/adapter_config.json: %w", dir, err)
	}
	return pc.PeftType, nil
}

// Merge folds the scaling vectors into the base weights (converted to F32)
// and removes the adapter: rows of W (and the bias) for scaled outputs,
// columns of W for scaled inputs (feed-forward modules).
func (a *IA3Adapter) Merge() error {
	for _, l := range a.Layers {
		base, ok := l.Base.(*model.Linear)
		if !ok {
			return fmt.Errorf("ia3: cannot merge into %s (%T)", l.Name, l.Base)
		}
		if base.W.Value.DType != tensor.F32 {
			base.W.Value = base.W.Value.Convert(tensor.F32)
		}
		w, s := base.W.Value.F32, l.L.Value.F32
		in := base.In()
		if l.FeedForward {
			for o := 0; o < base.Out(); o++ {
				row := w[o*in : (o+1)*in]
				for i := range row {
					row[i] *= s[i]
				}
			}
			continue
		}
		for o, so := range s {
			row := w[o*in : (o+1)*in]
			for i := range row {
				row[i] *= so
			}
		}
		if base.B != nil {
			if base.B.Value.DType != tensor.F32 {
				base.B.Value = base.B.Value.Convert(tensor.F32)
			}
			for o, so := range s {
				base.B.Value.F32[o] *= so
			}
		}
	}
	a.Remove()
	return nil
}

// exactTarget is the shortest dotted suffix of module (at least the short
// name) that selects only adapted modules, as PEFT matches target_modules:
// GPT-2's "mlp.c_proj" when attn.c_proj is not adapted.
func exactTarget(m *model.Transformer, module string, adapted map[string]bool) string {
	parts := strings.Split(module, ".")
	for n := 1; n <= len(parts); n++ {
		suffix := strings.Join(parts[len(parts)-n:], ".")
		ok := true
		for name := range m.Projections() {
			if !adapted[name] && (name == suffix || strings.HasSuffix(name, "."+suffix)) {
				ok = false
				break
			}
		}
		if ok {
			return suffix
		}
	}
	return module
}
