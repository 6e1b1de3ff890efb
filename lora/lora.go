// Package lora holds llmlab's parameter-efficient fine-tuning methods.
// Each wraps, never copies, the frozen base: a LoRA layer replaces a
// model.Projection slot with a wrapper that adds a low-rank update to the
// base projection's output. Adapters are saved and loaded in Hugging Face
// PEFT's layout (adapter_config.json + adapter_model.safetensors with PEFT
// key names), so they move both ways between llmlab and PEFT.
package lora

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"

	"llmlab/core/autograd"
	"llmlab/core/model"
	"llmlab/core/tensor"
)

// Method is a PEFT method.
type Method int

const (
	LoRA Method = iota
	DoRA
	Bottleneck // bottleneck adapters after attention and MLP
	Prefix
	Prompt
	IA3
)

var methodNames = []string{"lora", "dora", "adapter", "prefix", "prompt", "ia3"}

func (m Method) String() string {
	if int(m) < len(methodNames) {
		return methodNames[m]
	}
	return fmt.Sprintf("Method(%d)", int(m))
}

// ParseMethod accepts the names used on the command line.
func ParseMethod(s string) (Method, error) {
	for i, n := range methodNames {
		if strings.EqualFold(s, n) {
			return Method(i), nil
		}
	}
	return 0, fmt.Errorf("unknown PEFT method %q (want one of %s)", s, strings.Join(methodNames, ", "))
}

// Config describes a LoRA adapter.
type Config struct {
	Method  Method
	Rank    int      // r
	Alpha   float64  // lora_alpha
	Dropout float64  // lora_dropout (applied to the adapter's input while training)
	RSLoRA  bool     // scale alpha/sqrt(r) instead of alpha/r
	Targets []string // module short names (q_proj, c_attn, ...) or "all-linear"
	// ModulesToSave are base modules trained in full next to the low-rank
	// layers (PEFT's modules_to_save): "embed_tokens" (or GPT-2's "wte").
	// The adapter trains a copy; the base weight is never changed.
	ModulesToSave []string
	Seed          uint64
}

// Scale is the factor applied to B·A·x.
func (c Config) Scale() float32 {
	if c.RSLoRA {
		return float32(c.Alpha / math.Sqrt(float64(c.Rank)))
	}
	return float32(c.Alpha / float64(c.Rank))
}

// ValidTargets lists the projection short names a model has.
func ValidTargets(m *model.Transformer) []string {
	seen := map[string]bool{}
	for name := range m.Projections() {
		seen[shortName(name)] = true
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// shortName is the last one or two dotted parts that PEFT matches on:
// "model.layers.3.self_attn.q_proj" -> "q_proj"; "transformer.h.0.mlp.c_proj" -> "c_proj".
func shortName(module string) string {
	return module[strings.LastIndexByte(module, '.')+1:]
}

// matches reports whether module is selected by targets (short names or
// full suffixes such as "mlp.c_proj").
func matches(module string, targets []string) bool {
	for _, t := range targets {
		if t == "all-linear" || shortName(module) == t || strings.HasSuffix(module, "."+t) || module == t {
			return true
		}
	}
	return false
}

// Linear is a LoRA-wrapped projection: y = base(x) + scale·(x·Aᵀ)·Bᵀ, or
// with a magnitude M, DoRA's decomposition (dora.go).
type Linear struct {
	Base    model.Projection
	Name    string          // HF module name of the base
	A       *autograd.Param // (r, in)   Kaiming-uniform init
	B       *autograd.Param // (out, r)  zero init
	M       *autograd.Param // (out) DoRA magnitude, initialised to ‖W‖ per row; nil for LoRA
	Scale   float32
	Enabled *bool // shared switch of the adapter

	dora doraState
}

var (
	_ model.Projection = (*Linear)(nil)
	_ model.Named      = (*Linear)(nil)
)

// ModuleName forwards the base's name.
func (l *Linear) ModuleName() string { return l.Name }

// Forward adds the low-rank update when the adapter is enabled.
func (l *Linear) Forward(t *autograd.Tape, x *autograd.Var) *autograd.Var {
	if !*l.Enabled {
		return l.Base.Forward(t, x)
	}
	if l.M != nil {
		return l.forwardDoRA(t, x)
	}
	y := l.Base.Forward(t, x)
	if l.M != nil {
		return l.forwardDoRA(t, x)
	}
	h := t.Linear(x, t.Param(l.A), nil)  // (N, r)
	u := t.Linear(h, t.Param(l.B), nil)  // (N, out)
	return t.Add(y, t.Scale(u, l.Scale)) // (N, out)
}

// Adapter is a set of LoRA layers applied to one model.
type Adapter struct {
	Cfg     Config
	Layers  []*Linear
	Saved   []*SavedModule
	enabled bool
	model   *model.Transformer
	slots   []*model.Projection
}

// SavedModule is a base parameter trained in full: a copy that replaces
// the original while the adapter is enabled.
type SavedModule struct {
	Module string // HF module name, e.g. model.embed_tokens
	Copy   *autograd.Param
	orig   *autograd.Param
	slot   **autograd.Param
}

// saveSlot finds the parameter slot of a modules_to_save name.
func saveSlot(m *model.Transformer, name string) (**autograd.Param, string, error) {
	switch name {
	case "embed_tokens", "wte", "model.embed_tokens", "transformer.wte":
		mod := "model.embed_tokens"
		if m.Cfg.Arch == model.GPT2 {
			mod = "transformer.wte"
		}
		return &m.Embed, mod, nil
	}
	return nil, "", fmt.Errorf("lora: modules_to_save %q is not supported (have: embed_tokens)", name)
}

func (a *Adapter) addSaved(m *model.Transformer, name string) error {
	slot, mod, err := saveSlot(m, name)
	if err != nil {
		return err
	}
	orig := *slot
	cp := &autograd.Param{Name: orig.Name, Value: orig.Value.Convert(tensor.F32)}
	a.Saved = append(a.Saved, &SavedModule{Module: mod, Copy: cp, orig: orig, slot: slot})
	*slot = cp
	return nil
}

// Apply wraps every targeted projection of m with a fresh LoRA layer. The
// base parameters are frozen.
func Apply(m *model.Transformer, c Config) (*Adapter, error) {
	if c.Rank <= 0 {
		return nil, fmt.Errorf("lora: rank must be positive, got %d", c.Rank)
	}
	if c.Alpha == 0 {
		c.Alpha = float64(c.Rank)
	}
	if len(c.Targets) == 0 {
		return nil, fmt.Errorf("lora: no target modules (valid: %s, or all-linear)", strings.Join(ValidTargets(m), ", "))
	}
	valid := ValidTargets(m)
	for _, t := range c.Targets {
		if t != "all-linear" && !slices.Contains(valid, t) && !anySuffix(m, t) {
			return nil, fmt.Errorf("lora: unknown target module %q (valid: %s, or all-linear)", t, strings.Join(valid, ", "))
		}
	}
	m.Freeze(true)
	a := &Adapter{Cfg: c, enabled: true, model: m}
	r := rand.New(rand.NewPCG(c.Seed, 0x10ca))
	for name, slot := range m.Projections() {
		if !matches(name, c.Targets) {
			continue
		}
		base, ok := (*slot).(*model.Linear)
		if !ok {
			a.Remove()
			return nil, fmt.Errorf("lora: %s is already wrapped (%T)", name, *slot)
		}
		in, out := base.In(), base.Out()
		if c.Rank > min(in, out) {
			a.Remove()
			return nil, fmt.Errorf("lora: rank %d is larger than layer %s (%d x %d)", c.Rank, name, out, in)
		}
		l := &Linear{
			Base: base, Name: name, Scale: c.Scale(), Enabled: &a.enabled,
			A: &autograd.Param{Name: name + ".lora_A.weight", Value: tensor.New(c.Rank, in)},
			B: &autograd.Param{Name: name + ".lora_B.weight", Value: tensor.New(out, c.Rank)},
		}
		// PEFT's default: kaiming_uniform_(A, a=sqrt(5)) -> U(-1/sqrt(in), 1/sqrt(in)).
		bound := 1 / math.Sqrt(float64(in))
		for i := range l.A.Value.F32 {
			l.A.Value.F32[i] = float32((r.Float64()*2 - 1) * bound)
		}
		if c.Method == DoRA {
			l.M = &autograd.Param{Name: name + ".lora_magnitude_vector", Value: tensor.FromF32(magnitudeInit(base.W.Value), out)}
		}
		*slot = l
		a.Layers = append(a.Layers, l)
		a.slots = append(a.slots, slot)
	}
	if len(a.Layers) == 0 {
		return nil, fmt.Errorf("lora: targets %v match no projection (valid: %s)", c.Targets, strings.Join(valid, ", "))
	}
	for _, name := range c.ModulesToSave {
		if err := a.addSaved(m, name); err != nil {
			a.Remove()
			return nil, err
		}
	}
	return a, nil
}

func anySuffix(m *model.Transformer, t string) bool {
	for name := range m.Projections() {
		if name == t || strings.HasSuffix(name, "."+t) {
			return true
		}
	}
	return false
}

// SetEnabled switches the adapter on or off; off gives the base model
// exactly (the reference policy in alignment).
func (a *Adapter) SetEnabled(on bool) {
	a.enabled = on
	for _, s := range a.Saved {
		if on {
			*s.slot = s.Copy
		} else {
			*s.slot = s.orig
		}
	}
}

// Enabled reports the switch.
func (a *Adapter) Enabled() bool { return a.enabled }

// Params returns the trainable parameters (A and B of every layer).
func (a *Adapter) Params() []*autograd.Param {
	var ps []*autograd.Param
	for _, l := range a.Layers {
		ps = append(ps, l.A, l.B)
		if l.M != nil {
			ps = append(ps, l.M)
		}
	}
	for _, s := range a.Saved {
		ps = append(ps, s.Copy)
	}
	return ps
}

// Remove restores the model's original projections.
func (a *Adapter) Remove() {
	for i, s := range a.slots {
		*s = a.Layers[i].Base
	}
	for _, s := range a.Saved {
		*s.slot = s.orig
	}
}

// Merge folds the adapter into each base weight (converted to F32) and
// removes it: the model then computes what base+adapter computed.
func (a *Adapter) Merge() error {
	for _, l := range a.Layers {
		base := l.Base.(*model.Linear)
		w := base.W.Value
		if w.DType != tensor.F32 {
			w = w.Convert(tensor.F32)
			base.W.Value = w
		}
		if l.M != nil {
			l.mergeDoRA(w)
		} else {
			l.mergeLoRA(w)
		}
	}
	for i, s := range a.slots {
		*s = a.Layers[i].Base
	}
	for _, s := range a.Saved { // the trained copy becomes the base weight
		*s.slot = s.Copy
	}
	return nil
}

// mergeLoRA adds scale·B·A to w (out, in), F32.
func (l *Linear) mergeLoRA(w *tensor.Tensor) {
	r := l.A.Value.Rows()
	in, out := l.A.Value.Cols(), l.B.Value.Rows()
	A, B := l.A.Value.Float32s(), l.B.Value.Float32s() // copies from a device
	for o := 0; o < out; o++ {
		row := w.F32[o*in : (o+1)*in]
		for k := 0; k < r; k++ {
			s := l.Scale * B[o*r+k]
			if s == 0 {
				continue
			}
			ak := A[k*in : (k+1)*in]
			for i := range row {
				row[i] += s * ak[i]
			}
		}
	}
}
