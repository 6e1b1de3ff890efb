package lora

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"llmlab/core/checkpoint"
	"llmlab/core/model"
	"llmlab/core/tensor"
)

// peftPrefix is what PEFT puts before every module name in its files.
const peftPrefix = "base_model.model."

// peftConfig is adapter_config.json as HF PEFT writes it (the fields we use).
type peftConfig struct {
	PeftType      string         `json:"peft_type"`
	TaskType      string         `json:"task_type"`
	R             int            `json:"r"`
	LoraAlpha     float64        `json:"lora_alpha"`
	LoraDropout   float64        `json:"lora_dropout"`
	TargetModules any            `json:"target_modules"`
	Bias          string         `json:"bias"`
	FanInFanOut   bool           `json:"fan_in_fan_out"`
	UseRSLoRA     bool           `json:"use_rslora"`
	UseDoRA       bool           `json:"use_dora"`
	InferenceMode bool           `json:"inference_mode"`
	BaseModel     string         `json:"base_model_name_or_path"`
	ModulesToSave []string       `json:"modules_to_save"`
	RankPattern   map[string]any `json:"rank_pattern"`
	AlphaPattern  map[string]any `json:"alpha_pattern"`
}

// Save writes the adapter to dir in PEFT's layout.
func (a *Adapter) Save(dir, baseModel string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var targets []string
	seen := map[string]bool{}
	for _, l := range a.Layers {
		s := shortName(l.Name)
		if !seen[s] {
			seen[s] = true
			targets = append(targets, s)
		}
	}
	sort.Strings(targets)
	pc := peftConfig{
		PeftType: "LORA", TaskType: "CAUSAL_LM", R: a.Cfg.Rank, LoraAlpha: a.Cfg.Alpha,
		LoraDropout: a.Cfg.Dropout, TargetModules: targets, Bias: "none",
		FanInFanOut: a.model.Cfg.Arch == model.GPT2, UseRSLoRA: a.Cfg.RSLoRA,
		UseDoRA: a.Cfg.Method == DoRA, InferenceMode: true, BaseModel: baseModel,
	}
	for _, s := range a.Saved {
		pc.ModulesToSave = append(pc.ModulesToSave, shortName(s.Module))
	}
	js, err := json.MarshalIndent(pc, "", "  ")
	if err != nil {
		return err
	}
	if err := checkpoint.WriteFileAtomic(filepath.Join(dir, "adapter_config.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	var ts []checkpoint.Named
	for _, l := range a.Layers {
		ts = append(ts,
			checkpoint.Named{Name: peftPrefix + l.Name + ".lora_A.weight", T: l.A.Value},
			checkpoint.Named{Name: peftPrefix + l.Name + ".lora_B.weight", T: l.B.Value})
		if l.M != nil {
			// PEFT writes the magnitude without a ".weight" suffix.
			ts = append(ts, checkpoint.Named{Name: peftPrefix + l.Name + ".lora_magnitude_vector", T: l.M.Value})
		}
	}
	for _, s := range a.Saved {
		ts = append(ts, checkpoint.Named{Name: peftPrefix + s.Module + ".weight", T: s.Copy.Value})
	}
	return checkpoint.Write(filepath.Join(dir, "adapter_model.safetensors"), ts, map[string]string{"format": "pt"})
}

// Load reads a PEFT LoRA adapter from dir and applies it to m. Every key in
// the file must match a projection of m with the right shape, and every
// wrapped projection must get its weights: mismatches are listed.
func Load(m *model.Transformer, dir string) (*Adapter, error) {
	cpath := filepath.Join(dir, "adapter_config.json")
	data, err := os.ReadFile(cpath)
	if err != nil {
		return nil, err
	}
	f, err := checkpoint.Open(filepath.Join(dir, "adapter_model.safetensors"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return loadFrom(m, dir, data, f)
}

// LoadBytes applies a LoRA adapter given the bytes of its
// adapter_config.json and adapter_model.safetensors (the browser build).
func LoadBytes(m *model.Transformer, configJSON, safetensors []byte) (*Adapter, error) {
	f, err := checkpoint.Parse("adapter_model.safetensors", safetensors)
	if err != nil {
		return nil, err
	}
	return loadFrom(m, "adapter", configJSON, f)
}

func loadFrom(m *model.Transformer, dir string, data []byte, f *checkpoint.File) (*Adapter, error) {
	cpath := filepath.Join(dir, "adapter_config.json")
	var pc peftConfig
	if err := json.Unmarshal(data, &pc); err != nil {
		return nil, fmt.Errorf("%s: %w", cpath, err)
	}
	if pc.PeftType != "LORA" {
		return nil, fmt.Errorf("%s: peft_type %q is not supported here (supported: LORA)", cpath, pc.PeftType)
	}
	if len(pc.RankPattern) > 0 || len(pc.AlphaPattern) > 0 {
		return nil, fmt.Errorf("%s: rank_pattern/alpha_pattern are not supported", cpath)
	}
	if pc.Bias != "" && pc.Bias != "none" {
		return nil, fmt.Errorf("%s: bias %q is not supported (only \"none\")", cpath, pc.Bias)
	}
	// Which modules does the file cover?
	modules := map[string]bool{}
	saved := map[string]string{} // module -> key
	for _, ms := range pc.ModulesToSave {
		_, mod, err := saveSlot(m, ms)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cpath, err)
		}
		saved[mod] = peftPrefix + mod + ".weight"
	}
	isSaved := func(n string) bool {
		for _, k := range saved {
			if k == n {
				return true
			}
		}
		return false
	}
	for _, n := range f.Names() {
		if isSaved(n) {
			continue
		}
		k := strings.TrimPrefix(n, peftPrefix)
		for _, suf := range loraSuffixes {
			k = strings.TrimSuffix(k, suf)
		}
		modules[normalizeModule(m, k)] = true
	}
	var targets []string
	for k := range modules {
		targets = append(targets, k)
	}
	cfg := Config{Method: LoRA, Rank: pc.R, Alpha: pc.LoraAlpha, Dropout: pc.LoraDropout, RSLoRA: pc.UseRSLoRA, Targets: targets}
	if pc.UseDoRA {
		cfg.Method = DoRA
	}
	// Apply to exactly the modules present in the file.
	a, err := applyExact(m, cfg, modules)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	var unexpected []string
	used := map[string]bool{}
	for _, l := range a.Layers {
		for _, p := range []struct {
			key string
			dst *tensor.Tensor
		}{{".lora_A.weight", l.A.Value}, {".lora_B.weight", l.B.Value}} {
			name := findKey(f, l.Name+p.key)
			if name == "" {
				a.Remove()
				return nil, fmt.Errorf("%s: missing tensor %s%s%s", dir, peftPrefix, l.Name, p.key)
			}
			used[name] = true
			t, err := f.Tensor(name)
			if err != nil {
				a.Remove()
				return nil, err
			}
			if !t.Shape.Equal(p.dst.Shape) {
				a.Remove()
				return nil, fmt.Errorf("%s: tensor %q has shape %v, the base model needs %v (an adapter for another base?)", dir, name, t.Shape, p.dst.Shape)
			}
			copy(p.dst.F32, t.Float32s())
		}
		if l.M != nil {
			name := findKey(f, l.Name+".lora_magnitude_vector")
			if name == "" {
				name = findKey(f, l.Name+".lora_magnitude_vector.weight")
			}
			if name == "" {
				a.Remove()
				return nil, fmt.Errorf("%s: missing tensor %s%s.lora_magnitude_vector (use_dora is set)", dir, peftPrefix, l.Name)
			}
			used[name] = true
			t, err := f.Tensor(name)
			if err != nil {
				a.Remove()
				return nil, err
			}
			if !t.Shape.Equal(l.M.Value.Shape) {
				a.Remove()
				return nil, fmt.Errorf("%s: tensor %q has shape %v, the base model needs %v (an adapter for another base?)", dir, name, t.Shape, l.M.Value.Shape)
			}
			copy(l.M.Value.F32, t.Float32s())
		}
	}
	for _, ms := range pc.ModulesToSave {
		if err := a.addSaved(m, ms); err != nil {
			a.Remove()
			return nil, err
		}
	}
	for _, s := range a.Saved {
		key := peftPrefix + s.Module + ".weight"
		t, err := f.Tensor(key)
		if err != nil {
			a.Remove()
			return nil, fmt.Errorf("%s: missing tensor %s (listed in modules_to_save)", dir, key)
		}
		if !t.Shape.Equal(s.Copy.Value.Shape) {
			a.Remove()
			return nil, fmt.Errorf("%s: tensor %q has shape %v, the base model needs %v", dir, key, t.Shape, s.Copy.Value.Shape)
		}
		copy(s.Copy.Value.F32, t.Float32s())
		used[key] = true
	}
	for _, n := range f.Names() {
		if !used[n] {
			unexpected = append(unexpected, n)
		}
	}
	if len(unexpected) > 0 {
		a.Remove()
		return nil, fmt.Errorf("%s: unexpected tensors that match no module of the base model: %s", dir, strings.Join(unexpected, ", "))
	}
	return a, nil
}

// loraSuffixes end the keys of a LoRA or DoRA file after the module name.
var loraSuffixes = []string{".lora_A.weight", ".lora_B.weight", ".lora_magnitude_vector.weight", ".lora_magnitude_vector"}

// normalizeModule maps a PEFT module name to ours (GPT-2 names may lack
// the "transformer." prefix).
func normalizeModule(m *model.Transformer, k string) string {
	if m.Cfg.Arch == model.GPT2 && !strings.HasPrefix(k, "transformer.") {
		return "transformer." + k
	}
	return k
}

func findKey(f *checkpoint.File, module string) string {
	for _, cand := range []string{peftPrefix + module, peftPrefix + strings.TrimPrefix(module, "transformer."), module} {
		if _, _, ok := f.Info(cand); ok {
			return cand
		}
	}
	return ""
}

// applyExact applies LoRA to exactly the named modules, failing on names
// the model does not have.
func applyExact(m *model.Transformer, c Config, modules map[string]bool) (*Adapter, error) {
	have := map[string]bool{}
	for name := range m.Projections() {
		have[name] = true
	}
	var unknown []string
	for k := range modules {
		if !have[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("adapter modules not in the base model: %s", strings.Join(unknown, ", "))
	}
	var full []string
	for k := range modules {
		full = append(full, k)
	}
	c.Targets = full
	return Apply(m, c)
}

// SaveWeights implements train.Weights: the adapter in PEFT layout.
func (a *Adapter) SaveWeights(dir string) error { return a.Save(dir, "") }

// LoadWeights implements train.Weights: values from a saved adapter with
// exactly this adapter's keys and shapes.
func (a *Adapter) LoadWeights(dir string) error {
	path := filepath.Join(dir, "adapter_model.safetensors")
	f, err := checkpoint.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	want := len(a.Saved)
	for _, l := range a.Layers {
		want += 2
		if l.M != nil {
			want++
		}
	}
	if n := len(f.Names()); n != want {
		return fmt.Errorf("%s: %d tensors, the adapter has %d", path, n, want)
	}
	for _, s := range a.Saved {
		t, err := f.Tensor(peftPrefix + s.Module + ".weight")
		if err != nil {
			return err
		}
		if !t.Shape.Equal(s.Copy.Value.Shape) {
			return fmt.Errorf("%s: %s has shape %v, want %v", path, s.Module, t.Shape, s.Copy.Value.Shape)
		}
		copy(s.Copy.Value.F32, t.Float32s())
	}
	for _, l := range a.Layers {
		for _, p := range []struct {
			key string
			dst *tensor.Tensor
		}{{peftPrefix + l.Name + ".lora_A.weight", l.A.Value}, {peftPrefix + l.Name + ".lora_B.weight", l.B.Value}, {peftPrefix + l.Name + ".lora_magnitude_vector", nil}} {
			if p.dst == nil {
				if l.M == nil {
					continue
				}
				p.dst = l.M.Value
			}
			t, err := f.Tensor(p.key)
			if err != nil {
				return err
			}
			if !t.Shape.Equal(p.dst.Shape) {
				return fmt.Errorf("%s: tensor %q has shape %v, want %v", path, p.key, t.Shape, p.dst.Shape)
			}
			copy(p.dst.F32, t.Float32s())
		}
	}
	return nil
}

// TrainableSummary is "trainable 0.52M of 124M, 0.42%".
func (a *Adapter) TrainableSummary() string {
	n := 0
	for _, p := range a.Params() {
		n += p.Value.Numel()
	}
	total := a.model.NumParams()
	return fmt.Sprintf("trainable %s of %s, %.2f%%", count(n), count(total), 100*float64(n)/float64(total))
}

func count(n int) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}
