package model

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"llmlab/core/checkpoint"
	"llmlab/core/tensor"
)

// LoadOptions controls how weights are kept in memory.
type LoadOptions struct {
	// DType keeps the weights in this type. F32 (the default) widens f16
	// and bf16 files for training; F16/BF16 keep frozen weights small.
	// Zero value: F32.
	DType tensor.DType
	// KeepStored keeps each tensor in the type the file stores (for a
	// frozen base under PEFT or inference), ignoring DType.
	KeepStored bool
	// mapped keeps GGUF tensors other than F32 as views of the mapped
	// file instead of copies (LoadGGUF with KeepStored). Nothing writes
	// half-precision or block weights in place (merges convert them to
	// F32 first); F32 ones are copied.
	mapped bool
}

// TensorError names the file and tensor that do not fit the config.
type TensorError struct {
	Dir, Tensor string
	Err         error
}

func (e *TensorError) Error() string {
	if e.Tensor == "" {
		return fmt.Sprintf("%s: %v", e.Dir, e.Err)
	}
	return fmt.Sprintf("%s: tensor %q: %v", e.Dir, e.Tensor, e.Err)
}
func (e *TensorError) Unwrap() error { return e.Err }

// Load reads an HF model folder: config.json and model.safetensors (or
// shards), or a GGUF file (gguf_arch.go). Every tensor the config implies
// must be present with the right shape, and no unexpected tensor may be
// present. A multimodal Gemma 3 folder loads its text model; Save then
// writes that text model alone (model_type gemma3_text, the text names).
func Load(dir string, o LoadOptions) (*Transformer, error) {
	if checkpoint.IsGGUF(dir) {
		return LoadGGUF(dir, o) // a .gguf file (gguf_arch.go)
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	set, err := checkpoint.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	defer set.Close()
	return fromTensors(cfg, set, dir, o)
}

// TensorSource is a set of named tensors: a checkpoint.Set (a folder) or a
// checkpoint.File (one safetensors image, e.g. in a browser).
type TensorSource interface {
	Names() []string
	Tensor(name string) (*tensor.Tensor, error)
}

// FromBytes builds a model from the bytes of config.json and
// model.safetensors (the browser build has no file system).
func FromBytes(configJSON, safetensors []byte, o LoadOptions) (*Transformer, error) {
	cfg, err := ParseConfig(configJSON)
	if err != nil {
		return nil, &ConfigError{File: "config.json", Err: err}
	}
	f, err := checkpoint.Parse("model.safetensors", safetensors)
	if err != nil {
		return nil, err
	}
	return fromTensors(cfg, f, "model.safetensors", o)
}

func fromTensors(cfg Config, set TensorSource, dir string, o LoadOptions) (*Transformer, error) {
	m := newShell(cfg, false)
	// Map stored names to ours. GPT-2 files come with or without the
	// "transformer." prefix.
	stored := map[string]string{} // our name -> stored name
	have := map[string]bool{}
	for _, n := range set.Names() {
		have[n] = true
	}
	used := map[string]bool{}
	var missing []string
	for _, p := range m.params {
		name := p.Name
		found := false
		for _, sn := range storedNames(cfg, name) {
			if have[sn] {
				stored[name], found = sn, true
				break
			}
		}
		if !found {
			missing = append(missing, name)
			continue
		}
		used[stored[name]] = true
	}
	if len(missing) > 0 {
		return nil, &TensorError{Dir: dir, Err: fmt.Errorf("missing tensors for %s config: %s", cfg.ModelType, list(missing))}
	}
	var extra []string
	for n := range have {
		if used[n] || ignorable(cfg, n) {
			continue
		}
		extra = append(extra, n)
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return nil, &TensorError{Dir: dir, Err: fmt.Errorf("unexpected tensors (not in a %s model with this config): %s", cfg.ModelType, list(extra))}
	}
	lo, ok := set.(interface{ linearOutIn() bool })
	outIn := ok && lo.linearOutIn() // a GGUF file: GPT-2's matrices already (out, in)
	for _, p := range m.params {
		sn := stored[p.Name]
		t, err := set.Tensor(sn)
		if err != nil {
			return nil, &TensorError{Dir: dir, Tensor: sn, Err: err}
		}
		want := p.Value.Shape
		if cfg.Arch == GPT2 && isConv1D(p.Name) && !outIn {
			// Conv1D stores [in, out]; we keep nn.Linear's (out, in).
			if len(t.Shape) != 2 || t.Shape[0] != want[1] || t.Shape[1] != want[0] {
				return nil, &TensorError{Dir: dir, Tensor: sn, Err: fmt.Errorf("shape %v, config implies %v (Conv1D [in, out])", t.Shape, tensor.Shape{want[1], want[0]})}
			}
			t = transpose2D(t)
		} else if !t.Shape.Equal(want) {
			return nil, &TensorError{Dir: dir, Tensor: sn, Err: fmt.Errorf("shape %v, config implies %v", t.Shape, want)}
		}
		dt := o.DType
		if o.KeepStored {
			dt = t.DType
		}
		if m.fam.norm == normRMSOffset && len(t.Shape) == 1 {
			dt = tensor.F32 // (1+w) norms add w to F32 ones
		}
		if t.DType == dt {
			if !o.mapped || t.DType == tensor.F32 {
				t = t.Clone() // own the memory: the file is unmapped on return
			}
		} else {
			t = t.Convert(dt)
		}
		p.Value = t
	}
	return m, nil
}

// storedNames lists the names a parameter may have in a file, preferred
// first: GPT-2 files come with or without "transformer.", and a multimodal
// Gemma 3 keeps its text model under "language_model." (transformers 4)
// or "model.language_model." (transformers 5).
func storedNames(c Config, name string) []string {
	switch {
	case c.Arch == GPT2:
		return []string{name, strings.TrimPrefix(name, "transformer.")}
	case c.Multimodal && strings.HasPrefix(name, "model."):
		rest := strings.TrimPrefix(name, "model.")
		return []string{name, "model.language_model." + rest, "language_model.model." + rest}
	case c.Multimodal:
		return []string{name, "language_model." + name}
	}
	return []string{name}
}

// ignorable lists tensors that HF files carry but that are not parameters.
func ignorable(c Config, name string) bool {
	switch {
	case c.Multimodal && (strings.HasPrefix(name, "vision_tower.") || strings.HasPrefix(name, "multi_modal_projector.") ||
		strings.HasPrefix(name, "model.vision_tower.") || strings.HasPrefix(name, "model.multi_modal_projector.")):
		return true // the image side of a multimodal checkpoint
	case c.Multimodal && (name == "language_model.lm_head.weight"):
		return c.TieEmbeddings
	case strings.HasSuffix(name, ".attn.bias"), strings.HasSuffix(name, ".attn.masked_bias"):
		return c.Arch == GPT2 // causal-mask buffers in old GPT-2 files
	case strings.HasSuffix(name, "rotary_emb.inv_freq"):
		return true
	case name == "lm_head.weight":
		return c.TieEmbeddings // a tied head saved explicitly
	}
	return false
}

func list(names []string) string {
	if len(names) > 8 {
		return strings.Join(names[:8], ", ") + fmt.Sprintf(" and %d more", len(names)-8)
	}
	return strings.Join(names, ", ")
}

func isConv1D(name string) bool {
	for _, s := range []string{"attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// transpose2D returns a (c, r) copy of an (r, c) tensor, in its own dtype.
func transpose2D(t *tensor.Tensor) *tensor.Tensor {
	t = t.Host() // a copy when it lives on a device (saving a model trained there)
	r, c := t.Shape[0], t.Shape[1]
	out := tensor.NewOf(t.DType, c, r)
	if t.DType == tensor.F32 {
		for i := 0; i < r; i++ {
			for j := 0; j < c; j++ {
				out.F32[j*r+i] = t.F32[i*c+j]
			}
		}
		return out
	}
	for i := 0; i < r; i++ {
		for j := 0; j < c; j++ {
			out.Half[j*r+i] = t.Half[i*c+j]
		}
	}
	return out
}

// SaveOptions controls Save.
type SaveOptions struct {
	DType tensor.DType // stored type; zero value F32
}

// Save writes config.json and model.safetensors to dir (created if
// needed), each atomically, with HF names and layouts.
func (m *Transformer) Save(dir string, o SaveOptions) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg := m.Cfg
	switch o.DType {
	case tensor.F16:
		cfg.TorchDType = "float16"
	case tensor.BF16:
		cfg.TorchDType = "bfloat16"
	default:
		cfg.TorchDType = "float32"
	}
	js, err := cfg.JSON()
	if err != nil {
		return err
	}
	if err := checkpoint.WriteFileAtomic(filepath.Join(dir, "config.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	return checkpoint.Write(filepath.Join(dir, "model.safetensors"), m.StateDict(o.DType), map[string]string{"format": "pt"})
}

// StateDict returns the parameters as HF-named tensors in HF layout
// (GPT-2 Conv1D weights transposed back to [in, out]) converted to dt.
func (m *Transformer) StateDict(dt tensor.DType) []checkpoint.Named {
	var out []checkpoint.Named
	for _, p := range m.params {
		t := p.Value
		if m.Cfg.Arch == GPT2 && isConv1D(p.Name) {
			t = transpose2D(t)
		}
		if t.DType != dt {
			t = t.Convert(dt)
		}
		out = append(out, checkpoint.Named{Name: p.Name, T: t})
	}
	return out
}
