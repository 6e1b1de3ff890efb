package lora

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"

	"llmlab/core/autograd"
	"llmlab/core/checkpoint"
	"llmlab/core/model"
	"llmlab/core/tensor"
)

// Prefix tuning (Li & Liang 2021) learns, for every layer, the keys and
// values of P virtual tokens that every query attends to; prompt tuning
// (Lester et al. 2021) learns the embeddings of P virtual tokens put
// before the input. Both leave the base untouched and, as in PEFT, place
// the real tokens at positions P.. . Here both are a model.PrefixSource:
// prompt tuning runs its virtual tokens through the model once per pass
// (they attend only to each other, so their keys and values do not depend
// on the input) and hands each layer's keys and values to the attention
// as a prefix, which is exactly the concatenated input PEFT builds.
//
// PEFT's files: adapter_config.json (peft_type PREFIX_TUNING or
// PROMPT_TUNING, num_virtual_tokens, token_dim, num_layers, ...) and one
// tensor, "prompt_embeddings": (P, num_layers·2·token_dim) for prefix
// tuning, the keys and values of layer l in column blocks 2l and 2l+1,
// each (KVH, D) per virtual token; (P, C) for prompt tuning.

// PrefixConfig describes a prefix- or prompt-tuning adapter.
type PrefixConfig struct {
	Method        Method // Prefix or Prompt
	VirtualTokens int    // P
	// Projection trains prefix tuning's prefixes through an MLP
	// (embedding (P, W) -> Linear(W, Hidden) -> tanh -> Linear(Hidden,
	// L·2·W)), PEFT's prefix_projection; the saved adapter holds the
	// folded prefixes.
	Projection bool
	Hidden     int // MLP width (default: the model's hidden size)
	// InitIDs initialise prompt tuning from the embeddings of these tokens
	// (repeated to P; PEFT's TEXT init); nil: rows of the embedding matrix
	// drawn at random.
	InitIDs  []int32
	InitText string // recorded in adapter_config.json
	Seed     uint64
}

// PrefixAdapter is a prefix- or prompt-tuning adapter on one model.
type PrefixAdapter struct {
	Cfg   PrefixConfig
	Emb   *autograd.Param // (P, L·2·W) prefix, (P, W) prefix with projection, (P, C) prompt
	W1    *autograd.Param // (Hidden, W) projection only
	B1    *autograd.Param // (Hidden)
	W2    *autograd.Param // (L·2·W, Hidden)
	B2    *autograd.Param // (L·2·W)
	model *model.Transformer

	k, v []*autograd.Var // this pass's per-layer prefixes

	// Keys and values kept between passes that record no gradient
	// (generation), for the Emb they were computed from.
	cacheFor       []float32
	cacheK, cacheV []*tensor.Tensor
}

var _ model.PrefixSource = (*PrefixAdapter)(nil)

// width is W = KVH·D, the size of one layer's keys (or values) per token.
func width(m *model.Transformer) int { return m.Cfg.KVHeads * m.Cfg.HeadDim }

// ApplyPrefix creates a prefix- or prompt-tuning adapter and installs it
// as m's prefix. The base is frozen.
func ApplyPrefix(m *model.Transformer, c PrefixConfig) (*PrefixAdapter, error) {
	if c.Method != Prefix && c.Method != Prompt {
		return nil, fmt.Errorf("lora: ApplyPrefix needs the prefix or prompt method, got %v", c.Method)
	}
	if c.VirtualTokens <= 0 {
		return nil, fmt.Errorf("lora: --virtual-tokens must be positive, got %d", c.VirtualTokens)
	}
	if c.VirtualTokens >= m.Cfg.MaxPos {
		return nil, fmt.Errorf("lora: %d virtual tokens leave no room in the context of %d", c.VirtualTokens, m.Cfg.MaxPos)
	}
	if m.Prefix != nil {
		return nil, errors.New("lora: the model already has a prefix adapter")
	}
	m.Freeze(true)
	P, L, W, C := c.VirtualTokens, m.Cfg.Layers, width(m), m.Cfg.Hidden
	r := rand.New(rand.NewPCG(c.Seed, 0x9f1c))
	a := &PrefixAdapter{Cfg: c, model: m}
	normal := func(t *tensor.Tensor, std float64) {
		for i := range t.F32 {
			t.F32[i] = float32(r.NormFloat64() * std)
		}
	}
	switch {
	case c.Method == Prompt:
		a.Emb = &autograd.Param{Name: "prompt_embeddings", Value: tensor.New(P, C)}
		emb := m.Embed.Value.Float32s()
		for p := 0; p < P; p++ {
			var id int
			if len(c.InitIDs) > 0 {
				id = int(c.InitIDs[p%len(c.InitIDs)])
			} else {
				id = r.IntN(m.Cfg.VocabSize)
			}
			if id < 0 || id >= m.Cfg.VocabSize {
				return nil, fmt.Errorf("lora: prompt init token %d is outside the vocabulary (%d)", id, m.Cfg.VocabSize)
			}
			copy(a.Emb.Value.F32[p*C:(p+1)*C], emb[id*C:(id+1)*C])
		}
	case c.Projection:
		if c.Hidden <= 0 {
			c.Hidden = C
			a.Cfg.Hidden = C
		}
		a.Emb = &autograd.Param{Name: "prompt_encoder.embedding.weight", Value: tensor.New(P, W)}
		a.W1 = &autograd.Param{Name: "prompt_encoder.transform.0.weight", Value: tensor.New(c.Hidden, W)}
		a.B1 = &autograd.Param{Name: "prompt_encoder.transform.0.bias", Value: tensor.New(c.Hidden)}
		a.W2 = &autograd.Param{Name: "prompt_encoder.transform.2.weight", Value: tensor.New(L*2*W, c.Hidden)}
		a.B2 = &autograd.Param{Name: "prompt_encoder.transform.2.bias", Value: tensor.New(L * 2 * W)}
		normal(a.Emb.Value, 1)
		// torch.nn.Linear's default init: U(-1/sqrt(in), 1/sqrt(in)).
		for _, p := range []*tensor.Tensor{a.W1.Value, a.B1.Value} {
			bound := 1 / math.Sqrt(float64(W))
			for i := range p.F32 {
				p.F32[i] = float32((r.Float64()*2 - 1) * bound)
			}
		}
		for _, p := range []*tensor.Tensor{a.W2.Value, a.B2.Value} {
			bound := 1 / math.Sqrt(float64(c.Hidden))
			for i := range p.F32 {
				p.F32[i] = float32((r.Float64()*2 - 1) * bound)
			}
		}
	default:
		// Small prefixes: the attention then starts close to the base's.
		a.Emb = &autograd.Param{Name: "prompt_embeddings", Value: tensor.New(P, L*2*W)}
		normal(a.Emb.Value, 0.02)
	}
	m.Prefix = a
	return a, nil
}

// Len implements model.PrefixSource.
func (a *PrefixAdapter) Len() int { return a.Cfg.VirtualTokens }

// Prefix implements model.PrefixSource.
func (a *PrefixAdapter) Prefix(t *autograd.Tape, layer int) (k, v *autograd.Var) {
	return a.k[layer], a.v[layer]
}

// Begin implements model.PrefixSource: it computes every layer's prefix
// for this pass.
func (a *PrefixAdapter) Begin(t *autograd.Tape) error {
	L := a.model.Cfg.Layers
	a.k, a.v = a.k[:0], a.v[:0]
	if t.NoGrad && a.cacheK != nil && slices.Equal(a.cacheFor, a.Emb.Value.Float32s()) && a.W1 == nil {
		for l := 0; l < L; l++ {
			a.k = append(a.k, t.Const(a.cacheK[l]))
			a.v = append(a.v, t.Const(a.cacheV[l]))
		}
		return nil
	}
	if err := a.compute(t); err != nil {
		return err
	}
	if t.NoGrad && a.W1 == nil {
		a.cacheFor = append(a.cacheFor[:0], a.Emb.Value.Float32s()...)
		a.cacheK, a.cacheV = a.cacheK[:0], a.cacheV[:0]
		for l := 0; l < L; l++ {
			a.cacheK = append(a.cacheK, a.k[l].Value.Clone())
			a.cacheV = append(a.cacheV, a.v[l].Value.Clone())
		}
	}
	return nil
}

func (a *PrefixAdapter) compute(t *autograd.Tape) error {
	m := a.model
	P, L, W, KVH, D := a.Cfg.VirtualTokens, m.Cfg.Layers, width(m), m.Cfg.KVHeads, m.Cfg.HeadDim
	if a.Cfg.Method == Prompt {
		kv := make([][2]*autograd.Var, L)
		_, err := m.Hidden(t, model.Inputs{B: 1, T: P, Embeds: t.Param(a.Emb), NoPrefix: true,
			KV: func(l int, k, v *autograd.Var) { kv[l] = [2]*autograd.Var{k, v} }})
		if err != nil {
			return fmt.Errorf("prompt tuning: %w", err)
		}
		for l := 0; l < L; l++ {
			// (1, P, KVH, D) -> (KVH, P, D)
			a.k = append(a.k, headsFirst(t, kv[l][0], 0, P, KVH, D, KVH*D))
			a.v = append(a.v, headsFirst(t, kv[l][1], 0, P, KVH, D, KVH*D))
		}
		return nil
	}
	full := t.Param(a.Emb) // (P, L·2·W)
	if a.W1 != nil {
		h := tanh(t, t.Linear(full, t.Param(a.W1), t.Param(a.B1)))
		full = t.Linear(h, t.Param(a.W2), t.Param(a.B2))
	}
	for l := 0; l < L; l++ {
		a.k = append(a.k, headsFirst(t, full, 2*l*W, P, KVH, D, L*2*W))
		a.v = append(a.v, headsFirst(t, full, (2*l+1)*W, P, KVH, D, L*2*W))
	}
	return nil
}

// headsFirst returns y (KVH, P, D) with y[h][p][d] = x[p·stride + off +
// h·D + d]: one layer's keys or values taken out of a (P, ·) matrix. Backend
// ops only (a column split whose parts are y's head blocks, between two
// scratch parts; the backward a column concatenation), so device tensors
// stay on the device.
func headsFirst(t *autograd.Tape, x *autograd.Var, off, P, KVH, D, stride int) *autograd.Var {
	out := t.Alloc(KVH, P, D)
	rest := stride - off - KVH*D
	parts := func(heads *tensor.Tensor, edge func(int) *tensor.Tensor) []*tensor.Tensor {
		ps := make([]*tensor.Tensor, 0, KVH+2)
		if off > 0 {
			ps = append(ps, edge(off))
		}
		for h := 0; h < KVH; h++ {
			ps = append(ps, heads.Offset(h*P*D, P, D))
		}
		if rest > 0 {
			ps = append(ps, edge(rest))
		}
		return ps
	}
	// x as (P, stride) whatever its shape (prompt tuning's is (1, P, KVH, D)).
	t.B.SplitCols(parts(out, func(w int) *tensor.Tensor { return t.Alloc(P, w) }), x.Value.Offset(0, P, stride))
	var y *autograd.Var
	y = t.Custom(out, func() {
		if !x.NeedsGrad() {
			return
		}
		tmp := t.Alloc(P, stride)
		t.B.ConcatCols(tmp, parts(y.Grad, func(w int) *tensor.Tensor { return t.AllocZero(P, w) }))
		gx := t.GradOf(x).Offset(0, P, stride)
		t.B.Add(gx, gx, tmp)
	}, x)
	return y
}

// tanh is the elementwise hyperbolic tangent: a softcap of 1.
func tanh(t *autograd.Tape, x *autograd.Var) *autograd.Var { return t.Softcap(x, 1) }

// Params returns the trainable tensors.
func (a *PrefixAdapter) Params() []*autograd.Param {
	ps := []*autograd.Param{a.Emb}
	if a.W1 != nil {
		ps = append(ps, a.W1, a.B1, a.W2, a.B2)
	}
	return ps
}

// SetEnabled switches the prefix on or off (off: the base model).
func (a *PrefixAdapter) SetEnabled(on bool) {
	if on {
		a.model.Prefix = a
	} else {
		a.model.Prefix = nil
	}
}

// Remove detaches the adapter from the model.
func (a *PrefixAdapter) Remove() { a.model.Prefix = nil }

// Folded returns prefix tuning's prefixes as saved: (P, L·2·W), through
// the projection MLP when there is one.
func (a *PrefixAdapter) Folded() (*tensor.Tensor, error) {
	if a.W1 == nil {
		return a.Emb.Value, nil
	}
	t := autograd.NewTape(tensor.NewCPU(1))
	t.NoGrad = true
	h := tanh(t, t.Linear(t.Param(a.Emb), t.Param(a.W1), t.Param(a.B1)))
	return t.Linear(h, t.Param(a.W2), t.Param(a.B2)).Value.Clone(), nil
}

// prefixConfigJSON is adapter_config.json for prompt learning, as PEFT
// writes it (the fields we use).
type prefixConfigJSON struct {
	PeftType            string `json:"peft_type"`
	TaskType            string `json:"task_type"`
	VirtualTokens       int    `json:"num_virtual_tokens"`
	TokenDim            int    `json:"token_dim"`
	Submodules          int    `json:"num_transformer_submodules"`
	Heads               int    `json:"num_attention_heads"`
	Layers              int    `json:"num_layers"`
	Projection          bool   `json:"prefix_projection,omitempty"`
	EncoderHidden       int    `json:"encoder_hidden_size,omitempty"`
	Init                string `json:"prompt_tuning_init,omitempty"`
	InitText            string `json:"prompt_tuning_init_text,omitempty"`
	InferenceMode       bool   `json:"inference_mode"`
	BaseModel           string `json:"base_model_name_or_path"`
	TokenizerNameOrPath string `json:"tokenizer_name_or_path,omitempty"`
}

func (a *PrefixAdapter) config(base string, folded bool) prefixConfigJSON {
	m := a.model.Cfg
	pc := prefixConfigJSON{TaskType: "CAUSAL_LM", VirtualTokens: a.Cfg.VirtualTokens, Submodules: 1,
		Layers: m.Layers, InferenceMode: true, BaseModel: base}
	if a.Cfg.Method == Prompt {
		pc.PeftType, pc.TokenDim, pc.Heads = "PROMPT_TUNING", m.Hidden, m.Heads
		pc.Init = "RANDOM"
		if len(a.Cfg.InitIDs) > 0 {
			pc.Init, pc.InitText, pc.TokenizerNameOrPath = "TEXT", a.Cfg.InitText, base
		}
		return pc
	}
	// For grouped-query attention PEFT sizes the prefixes by the key/value
	// heads: token_dim = KVH·D, num_attention_heads = KVH.
	pc.PeftType, pc.TokenDim, pc.Heads = "PREFIX_TUNING", width(a.model), m.KVHeads
	if !folded && a.W1 != nil {
		pc.Projection, pc.EncoderHidden = true, a.Cfg.Hidden
	}
	return pc
}

// Save writes the adapter in PEFT's layout; prefix tuning's prefixes are
// folded through the projection MLP, as PEFT saves them.
func (a *PrefixAdapter) Save(dir, base string) error {
	t := a.Emb.Value
	if a.Cfg.Method == Prefix {
		var err error
		if t, err = a.Folded(); err != nil {
			return err
		}
	}
	return a.write(dir, a.config(base, true), []checkpoint.Named{{Name: "prompt_embeddings", T: t}})
}

// SaveWeights implements train.Weights: the training state, the projection
// MLP included (PEFT's prompt_encoder names), so a run resumes exactly.
func (a *PrefixAdapter) SaveWeights(dir string) error {
	if a.W1 == nil {
		return a.Save(dir, "")
	}
	var ts []checkpoint.Named
	for _, p := range a.Params() {
		ts = append(ts, checkpoint.Named{Name: p.Name, T: p.Value})
	}
	return a.write(dir, a.config("", false), ts)
}

func (a *PrefixAdapter) write(dir string, pc prefixConfigJSON, ts []checkpoint.Named) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(pc, "", "  ")
	if err != nil {
		return err
	}
	if err := checkpoint.WriteFileAtomic(filepath.Join(dir, "adapter_config.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	return checkpoint.Write(filepath.Join(dir, "adapter_model.safetensors"), ts, map[string]string{"format": "pt"})
}

// LoadWeights implements train.Weights.
func (a *PrefixAdapter) LoadWeights(dir string) error {
	path := filepath.Join(dir, "adapter_model.safetensors")
	f, err := checkpoint.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	ps := a.Params()
	if n := len(f.Names()); n != len(ps) {
		return fmt.Errorf("%s: %d tensors, the adapter has %d", path, n, len(ps))
	}
	for _, p := range ps {
		t, err := f.Tensor(p.Name)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if !t.Shape.Equal(p.Value.Shape) {
			return fmt.Errorf("%s: tensor %q has shape %v, want %v", path, p.Name, t.Shape, p.Value.Shape)
		}
		copy(p.Value.F32, t.Float32s())
	}
	return nil
}

// LoadPrefix reads a PEFT prefix- or prompt-tuning adapter and installs it
// on m, checking every size against the model.
func LoadPrefix(m *model.Transformer, dir string) (*PrefixAdapter, error) {
	cpath := filepath.Join(dir, "adapter_config.json")
	data, err := os.ReadFile(cpath)
	if err != nil {
		return nil, err
	}
	var pc prefixConfigJSON
	if err := json.Unmarshal(data, &pc); err != nil {
		return nil, fmt.Errorf("%s: %w", cpath, err)
	}
	// A file from PEFT in inference mode holds the folded prefixes even
	// when prefix_projection is set; ours from a running training holds
	// the MLP too.
	f, err := checkpoint.Open(filepath.Join(dir, "adapter_model.safetensors"))
	if err != nil {
		return nil, err
	}
	_, _, hasMLP := f.Info("prompt_encoder.embedding.weight")
	f.Close()
	c := PrefixConfig{VirtualTokens: pc.VirtualTokens, Projection: pc.Projection && hasMLP, Hidden: pc.EncoderHidden}
	switch pc.PeftType {
	case "PREFIX_TUNING":
		c.Method = Prefix
		if pc.TokenDim != width(m) && !(pc.TokenDim == m.Cfg.Hidden && m.Cfg.KVHeads == m.Cfg.Heads) {
			return nil, fmt.Errorf("%s: token_dim %d does not fit the base model (keys are %d wide)", cpath, pc.TokenDim, width(m))
		}
	case "PROMPT_TUNING":
		c.Method = Prompt
		if pc.TokenDim != m.Cfg.Hidden {
			return nil, fmt.Errorf("%s: token_dim %d does not fit the base model (hidden size %d)", cpath, pc.TokenDim, m.Cfg.Hidden)
		}
	default:
		return nil, fmt.Errorf("%s: peft_type %q is not prefix or prompt tuning", cpath, pc.PeftType)
	}
	if pc.Layers != 0 && pc.Layers != m.Cfg.Layers {
		return nil, fmt.Errorf("%s: num_layers %d, the base model has %d", cpath, pc.Layers, m.Cfg.Layers)
	}
	if pc.Submodules > 1 {
		return nil, fmt.Errorf("%s: num_transformer_submodules %d (encoder-decoder models) is not supported", cpath, pc.Submodules)
	}
	a, err := ApplyPrefix(m, c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if err := a.LoadWeights(dir); err != nil {
		a.Remove()
		return nil, err
	}
	return a, nil
}
