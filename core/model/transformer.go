package model

import (
	"fmt"
	"iter"
	"math"
	"math/rand/v2"

	"llmlab/core/autograd"
	"llmlab/core/tensor"
)

// Projection is the seam PEFT plugs into: a linear map applied to
// activations x (N, in) giving (N, out). Base projections are *Linear;
// LoRA and friends wrap the slot's Projection without copying its weight.
type Projection interface {
	Forward(t *autograd.Tape, x *autograd.Var) *autograd.Var
}

// Linear is y = x·Wᵀ + b with W (out, in) as in torch.nn.Linear (GPT-2's
// Conv1D weights are transposed into this layout on load).
type Linear struct {
	Name string          // HF module name, e.g. model.layers.0.self_attn.q_proj
	W    *autograd.Param // (out, in)
	B    *autograd.Param // (out) or nil
}

var _ Projection = (*Linear)(nil)

// Forward applies the projection.
func (l *Linear) Forward(t *autograd.Tape, x *autograd.Var) *autograd.Var {
	var b *autograd.Var
	if l.B != nil {
		b = t.Param(l.B)
	}
	return t.Linear(x, t.Param(l.W), b)
}

// In and Out are the projection's input and output sizes.
func (l *Linear) In() int  { return l.W.Value.Cols() }
func (l *Linear) Out() int { return l.W.Value.Rows() }

// Norm is a LayerNorm (W, B) or an RMSNorm (W only); W is nil for a norm
// the family does not have.
type Norm struct {
	W, B *autograd.Param // (C), or (D) for q/k norms
}

// Block is one transformer layer. GPT-2 uses QKV, O, FC and Proj; the
// Llama-style families use Q, K, V (or the fused QKV), O, and Gate, Up (or
// the fused GateUp) and Down. Norm1 comes before attention and Norm2
// before the MLP; PostAttn and PostMLP (Gemma) normalise the two branches'
// outputs; QNorm and KNorm (Qwen3, Gemma 3) each head of q and k.
type Block struct {
	Norm1, Norm2, PostAttn, PostMLP Norm
	QNorm, KNorm                    Norm
	QKV, Q, K, V, O                 Projection
	FC, Proj, Gate, Up, GateUp      Projection
	Down                            Projection
}

// PrefixSource supplies learned attention prefixes (prefix and prompt
// tuning): P virtual positions before every sequence, seen by every query.
// As in PEFT, the real tokens' positions then start at P.
type PrefixSource interface {
	// Begin is called at the start of every forward pass, before Prefix.
	Begin(t *autograd.Tape) error
	// Len is P, the number of virtual positions.
	Len() int
	// Prefix returns the keys and values of a layer, (KVH, P, D) each.
	Prefix(t *autograd.Tape, layer int) (k, v *autograd.Var)
}

// Transformer is the model: configuration, parameters and the forward pass.
type Transformer struct {
	Cfg    Config
	Embed  *autograd.Param // (V, C) wte / embed_tokens
	PosEmb *autograd.Param // (MaxPos, C) wpe, GPT-2 only
	Blocks []Block
	NormF  Norm
	Head   *autograd.Param // (V, C) lm_head, nil when tied

	// Prefix, when set, adds learned prefixes to every layer's attention.
	Prefix PrefixSource
	// CheckpointBlocks trades compute for memory in training: each block
	// keeps only its input and output, and runs forward again during the
	// backward pass (activation checkpointing). Not with a prefix.
	CheckpointBlocks bool

	// LossChunkRows, when > 0, is the number of rows whose logits Loss
	// computes at a time; 0 picks it from the vocabulary size.
	LossChunkRows int

	fam    *family
	ropes  *ropeSet
	ones   map[int]*tensor.Tensor // constants for (1+w) norms, by width
	params []*autograd.Param      // in HF order
}

// Names of the canonical HF parameter keys.
func (c Config) prefix() string {
	if c.Arch == GPT2 {
		return "transformer."
	}
	return "model."
}

// New builds a randomly initialised model for c: normal(0, 0.02) weights,
// residual output projections scaled by 1/sqrt(2L) (GPT-2's scheme), norm
// weights 1 and biases 0.
func New(c Config, seed uint64) (*Transformer, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	m := newShell(c, true)
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	resid := 0.02 / math.Sqrt(2*float64(c.Layers))
	for _, p := range m.params {
		v := p.Value.F32
		switch {
		case len(p.Value.Shape) == 1 && isNormWeight(p.Name):
			if m.fam.norm == normRMSOffset {
				break // (1+w) norms start at w = 0
			}
			for i := range v {
				v[i] = 1
			}
		case len(p.Value.Shape) == 1:
			// biases start at zero
		default:
			std := 0.02
			if isResidualOut(p.Name) {
				std = resid
			}
			for i := range v {
				v[i] = float32(r.NormFloat64() * std)
			}
		}
	}
	return m, nil
}

// newShell makes every parameter with its HF name: zeroed F32 storage
// with alloc, else the shape alone (a float32 tensor with no data) for a
// loader that replaces each value with the tensor it reads. A GGUF model's
// weights stay in its mapping, so storage allocated here would only be
// garbage (as large as the model in float32) that sets the collector's
// first goal.
func newShell(c Config, alloc bool) *Transformer {
	f := familyOf(c.ModelType)
	if c.Arch == GPT2 || f == nil {
		f = &gpt2Family
		if c.Arch == Llama {
			f = &llamaFamily
		}
	}
	m := &Transformer{Cfg: c, fam: f, ropes: newRopeSet(c), ones: map[int]*tensor.Tensor{}}
	pre := c.prefix()
	C, V, D, I := c.Hidden, c.VocabSize, c.HeadDim, c.Intermediate
	param := func(name string, shape ...int) *autograd.Param {
		v := &tensor.Tensor{Shape: tensor.Shape(shape), DType: tensor.F32}
		if alloc {
			v = tensor.New(shape...)
		}
		p := &autograd.Param{Name: name, Value: v}
		m.params = append(m.params, p)
		return p
	}
	linear := func(name string, out, in int, bias bool) *Linear {
		l := &Linear{Name: name, W: param(name+".weight", out, in)}
		if bias {
			l.B = param(name+".bias", out)
		}
		return l
	}
	norm := func(name string, width int) Norm {
		if name == "" {
			return Norm{}
		}
		if f.norm == normRMSOffset && m.ones[width] == nil {
			one := tensor.New(width)
			for i := range one.F32 {
				one.F32[i] = 1
			}
			m.ones[width] = one
		}
		return Norm{W: param(name+".weight", width)}
	}
	if c.Arch == GPT2 {
		m.Embed = param(pre+"wte.weight", V, C)
		m.PosEmb = param(pre+"wpe.weight", c.MaxPos, C)
	} else {
		m.Embed = param(pre+"embed_tokens.weight", V, C)
	}
	m.Blocks = make([]Block, c.Layers)
	for i := range m.Blocks {
		b := &m.Blocks[i]
		if c.Arch == GPT2 {
			n := fmt.Sprintf("%sh.%d.", pre, i)
			b.Norm1 = Norm{param(n+"ln_1.weight", C), param(n+"ln_1.bias", C)}
			b.QKV = linear(n+"attn.c_attn", 3*C, C, true)
			b.O = linear(n+"attn.c_proj", C, C, true)
			b.Norm2 = Norm{param(n+"ln_2.weight", C), param(n+"ln_2.bias", C)}
			b.FC = linear(n+"mlp.c_fc", I, C, true)
			b.Proj = linear(n+"mlp.c_proj", C, I, true)
			continue
		}
		// The order of these calls is the order of HF's state dict.
		n, nm := fmt.Sprintf("%slayers.%d.", pre, i), f.names
		b.Norm1 = norm(n+nm.norm1, C)
		if nm.qkv != "" {
			b.QKV = linear(n+nm.qkv, (c.Heads+2*c.KVHeads)*D, C, c.AttentionBias)
		} else {
			b.Q = linear(n+nm.q, c.Heads*D, C, c.AttentionBias)
			b.K = linear(n+nm.k, c.KVHeads*D, C, c.AttentionBias)
			b.V = linear(n+nm.v, c.KVHeads*D, C, c.AttentionBias)
		}
		b.O = linear(n+nm.o, C, c.Heads*D, c.OutputBias)
		if nm.qNorm != "" {
			b.QNorm = norm(n+nm.qNorm, D)
			b.KNorm = norm(n+nm.kNorm, D)
		}
		if nm.postAttn != "" {
			b.PostAttn = norm(n+nm.postAttn, C)
		}
		b.Norm2 = norm(n+nm.norm2, C)
		if nm.postMLP != "" {
			b.PostMLP = norm(n+nm.postMLP, C)
		}
		if nm.gateUp != "" {
			b.GateUp = linear(n+nm.gateUp, 2*I, C, false)
		} else {
			b.Gate = linear(n+nm.gate, I, C, false)
			b.Up = linear(n+nm.up, I, C, false)
		}
		b.Down = linear(n+nm.down, C, I, false)
	}
	if c.Arch == GPT2 {
		m.NormF = Norm{param(pre+"ln_f.weight", C), param(pre+"ln_f.bias", C)}
	} else {
		m.NormF = norm(pre+"norm", C)
	}
	if !c.TieEmbeddings {
		m.Head = param("lm_head.weight", V, C)
	}
	return m
}

func isNormWeight(name string) bool {
	for _, s := range []string{"ln_1.weight", "ln_2.weight", "ln_f.weight", "layernorm.weight", "norm.weight"} {
		if len(name) >= len(s) && name[len(name)-len(s):] == s {
			return true
		}
	}
	return false
}

func isResidualOut(name string) bool {
	for _, s := range []string{"attn.c_proj.weight", "mlp.c_proj.weight", "o_proj.weight", "down_proj.weight"} {
		if len(name) >= len(s) && name[len(name)-len(s):] == s {
			return true
		}
	}
	return false
}

// Params yields every parameter in HF order (a tied head is not repeated).
func (m *Transformer) Params() iter.Seq[*autograd.Param] {
	return func(yield func(*autograd.Param) bool) {
		for _, p := range m.params {
			if !yield(p) {
				return
			}
		}
	}
}

// ParamList returns the parameters as a slice, in HF order.
func (m *Transformer) ParamList() []*autograd.Param { return m.params }

// NumParams counts the parameters' elements.
func (m *Transformer) NumParams() int {
	n := 0
	for _, p := range m.params {
		n += p.Value.Numel()
	}
	return n
}

// Projections yields every projection slot with its HF module name, so a
// PEFT method can replace *slot with a wrapper around it.
func (m *Transformer) Projections() iter.Seq2[string, *Projection] {
	return func(yield func(string, *Projection) bool) {
		for i := range m.Blocks {
			b := &m.Blocks[i]
			for _, s := range []*Projection{&b.QKV, &b.Q, &b.K, &b.V, &b.O, &b.FC, &b.Proj, &b.Gate, &b.Up, &b.GateUp, &b.Down} {
				if *s == nil {
					continue
				}
				if !yield(baseName(*s), s) {
					return
				}
			}
		}
	}
}

// Named is implemented by projections that know their HF module name;
// wrappers forward it so names survive wrapping.
type Named interface{ ModuleName() string }

// ModuleName returns the HF module name.
func (l *Linear) ModuleName() string { return l.Name }

func baseName(p Projection) string {
	if n, ok := p.(Named); ok {
		return n.ModuleName()
	}
	return fmt.Sprintf("%T", p)
}

// Freeze marks every base parameter frozen (or trainable).
func (m *Transformer) Freeze(frozen bool) {
	for _, p := range m.params {
		p.Frozen = frozen
	}
}

// Inputs is one forward pass's input: B rows of T tokens.
type Inputs struct {
	B, T int
	IDs  []int32 // (B*T)
	// Pos are the positions (B*T); nil means 0..T-1 for each row (after
	// any cached tokens).
	Pos []int32
	// Seg are segment ids (B*T) for packed rows or left padding; a token
	// attends only to earlier tokens of its own segment. nil: one segment.
	Seg []int32
	// Cache, when set, is the KV cache to read and extend (inference).
	Cache *Cache
	// Embeds, when set, replaces the token embeddings: (B*T, C), and IDs
	// is not read (prompt tuning runs its virtual tokens through it).
	Embeds *autograd.Var
	// KV, when set, receives every layer's keys and values (B, T, KVH, D),
	// keys after RoPE.
	KV func(layer int, k, v *autograd.Var)
	// NoPrefix runs this pass without the model's Prefix.
	NoPrefix bool
}

// Cache is the KV cache for inference: per layer keys and values of
// (B, Cap, KVH, D), the first Len rows of each sequence filled. A layer
// with a sliding window shorter than Cap keeps only its last Window keys
// and values instead, (B, Window, KVH, D), as a ring (see kvring.go), so
// its memory stays bounded however long the sequence grows.
type Cache struct {
	B, Cap, Len int
	K, V        []*tensor.Tensor
	Seg         []int32 // (B*Cap) segment id of each cached key

	// Window is the ring size of the windowed layers (0: none); Ring says
	// which layers are rings and RingSeg holds the segment of each slot.
	Window  int
	Ring    []bool  // (L)
	RingSeg []int32 // (B*Window)

	placed []*tensor.Tensor // tensors in an Allocator's memory (Place)
	moved  []*tensor.Tensor // tensors in a backend's own memory (ToDevice)
}

// NewCache allocates a cache for b sequences of up to capacity tokens.
func (m *Transformer) NewCache(b, capacity int) *Cache {
	c := m.Cfg
	kc := &Cache{B: b, Cap: capacity, Ring: make([]bool, c.Layers)}
	for l := range c.Layers {
		rows := capacity
		if w := c.Window(l); w > 0 && w < capacity {
			rows, kc.Ring[l], kc.Window = w, true, w
		}
		kc.K = append(kc.K, tensor.New(b, rows, c.KVHeads, c.HeadDim))
		kc.V = append(kc.V, tensor.New(b, rows, c.KVHeads, c.HeadDim))
	}
	kc.Seg = make([]int32, b*capacity)
	if kc.Window > 0 {
		kc.RingSeg = make([]int32, b*kc.Window)
	}
	return kc
}

// Reset empties the cache for reuse.
func (kc *Cache) Reset() { kc.Len = 0 }

// Place moves the keys and values into a's memory (see tensor.Allocator),
// so a device backend reads and appends to them in place; tensors a cannot
// hold stay where they are. Free gives the memory back.
func (kc *Cache) Place(a tensor.Allocator) {
	for _, t := range append(append([]*tensor.Tensor(nil), kc.K...), kc.V...) {
		if x := a.AllocF32(len(t.F32)); x != nil {
			copy(x, t.F32)
			t.F32 = x
			kc.placed = append(kc.placed, t)
		}
	}
}

// ToDevice moves the keys and values into m, a backend's own memory (see
// tensor.Memory), so decoding appends to and reads them there; tensors m
// cannot hold stay on the host. Free gives the memory back.
func (kc *Cache) ToDevice(m tensor.Memory) {
	for _, t := range append(append([]*tensor.Tensor(nil), kc.K...), kc.V...) {
		if ok, _ := tensor.ToDevice(m, t); ok {
			kc.moved = append(kc.moved, t)
		}
	}
}

// Free returns memory Place took to a (nil when Place was not used) and
// memory ToDevice took; the cache must not be used again.
func (kc *Cache) Free(a tensor.Allocator) {
	for _, t := range kc.placed {
		a.FreeF32(t.F32)
		t.F32 = nil
	}
	kc.placed = nil
	for _, t := range kc.moved {
		tensor.Free(t)
	}
	kc.moved = nil
}

// positions returns the position ids to use: in.Pos, or past+t for each
// row, both shifted by the prefix length P.
func (m *Transformer) positions(in Inputs, past, P int) []int32 {
	if in.Pos != nil && P == 0 {
		return in.Pos
	}
	pos := make([]int32, in.B*in.T)
	if in.Pos != nil {
		for i, p := range in.Pos {
			pos[i] = p + int32(P)
		}
		return pos
	}
	for b := 0; b < in.B; b++ {
		for i := 0; i < in.T; i++ {
			pos[b*in.T+i] = int32(P + past + i)
		}
	}
	return pos
}

// Hidden runs the model up to and including the final norm: (B*T, C).
func (m *Transformer) Hidden(t *autograd.Tape, in Inputs) (*autograd.Var, error) {
	c := m.Cfg
	N := in.B * in.T
	if in.Embeds != nil {
		if in.Embeds.Value.Rows() != N || in.Embeds.Value.Cols() != c.Hidden {
			return nil, fmt.Errorf("model: embeddings %v for batch %dx%d of width %d", in.Embeds.Value.Shape, in.B, in.T, c.Hidden)
		}
	} else if len(in.IDs) != N {
		return nil, fmt.Errorf("model: %d ids for batch %dx%d", len(in.IDs), in.B, in.T)
	}
	past := 0
	if in.Cache != nil {
		past = in.Cache.Len
		if in.Cache.B != in.B || past+in.T > in.Cache.Cap {
			return nil, fmt.Errorf("model: cache holds %d of %d tokens for %d rows; cannot add %d tokens for %d rows",
				past, in.Cache.Cap, in.Cache.B, in.T, in.B)
		}
	}
	if in.Embeds == nil {
		for i, id := range in.IDs {
			if id < 0 || int(id) >= c.VocabSize {
				return nil, fmt.Errorf("model: token %d at index %d is outside the vocabulary (size %d)", id, i, c.VocabSize)
			}
		}
	}
	prefix := m.Prefix
	if in.NoPrefix {
		prefix = nil
	}
	P := 0
	if prefix != nil {
		if err := prefix.Begin(t); err != nil {
			return nil, err
		}
		P = prefix.Len()
	}
	pos := m.positions(in, past, P)
	seqLen := 0
	for _, p := range pos {
		if p < 0 || int(p) >= c.ContextLen() {
			return nil, fmt.Errorf("model: position %d is beyond the context length %d", p, c.ContextLen())
		}
		seqLen = max(seqLen, int(p)+1)
	}
	x := in.Embeds
	if x == nil {
		x = t.Embedding(in.IDs, t.Param(m.Embed)) // (N, C)
		if m.fam.embedScale {
			// HF rounds the scale to the weights' dtype: the checkpoint's.
			x = t.Scale(x, embedScale(c, c.TorchDType == "bfloat16", c.TorchDType == "float16"))
		}
	}
	if m.PosEmb != nil {
		x = t.Add(x, t.Embedding(pos, t.Param(m.PosEmb)))
	}
	H, KVH, D := c.Heads, c.KVHeads, c.HeadDim
	opts := tensor.AttentionOpts{
		Batch: in.B, Heads: H, KVHeads: KVH, HeadDim: D,
		Queries: in.T, Keys: past + in.T, KStride: in.T, Offset: past,
		Softcap: float32(c.AttnSoftcap),
	}
	if c.QueryPreAttnScalar > 0 {
		opts.Scale = float32(1 / math.Sqrt(c.QueryPreAttnScalar))
	}
	if in.Seg != nil {
		opts.QSeg, opts.KSeg = in.Seg, in.Seg
	}
	if in.Cache != nil {
		opts.KStride = in.Cache.Cap
		if in.Seg != nil {
			for b := 0; b < in.B; b++ {
				copy(in.Cache.Seg[b*in.Cache.Cap+past:], in.Seg[b*in.T:(b+1)*in.T])
			}
			opts.QSeg, opts.KSeg = in.Seg, in.Cache.Seg
		}
	}
	bs := blockState{in: in, pos: pos, opts: opts, prefix: prefix, past: past, ropes: m.ropes.tables(nil, seqLen)}
	if in.Cache != nil && in.Cache.Window > 0 {
		bs.ringSeg = in.Cache.ringSegments(in)
	}
	checkpoint := m.CheckpointBlocks && in.Cache == nil && in.KV == nil && prefix == nil && !t.NoGrad
	// Inference keeps one layer's activations: each block's output is
	// copied into carry and the arena rewound to before the block (not
	// when in.KV takes the layers' keys and values out of the pass).
	var carry *tensor.Tensor
	var mark autograd.Mark
	rewind := false
	if !checkpoint && in.KV == nil && len(m.Blocks) > 1 && !x.Value.OnDevice() {
		if _, rewind = t.Mark(); rewind {
			carry = t.Alloc(x.Value.Shape...)
			mark, _ = t.Mark()
		}
	}
	for l := range m.Blocks {
		switch {
		case checkpoint:
			x = t.Checkpoint(x, func(t *autograd.Tape, x *autograd.Var) *autograd.Var { return m.block(t, l, x, &bs) })
		case rewind:
			y := m.block(t, l, x, &bs)
			if y.Value.OnDevice() || y.Value.DType != tensor.F32 || len(y.Value.F32) != len(carry.F32) {
				rewind = false // not a host float32 (N, C): keep it as it is
				x = y
				continue
			}
			copy(carry.F32, y.Value.F32)
			t.Rewind(mark)
			x = t.Const(carry)
		default:
			x = m.block(t, l, x, &bs)
		}
	}
	if in.Cache != nil {
		in.Cache.Len += in.T
	}
	return m.norm(t, m.NormF, x), nil
}

// norm applies n to x (N, C) as the family computes norms.
func (m *Transformer) norm(t *autograd.Tape, n Norm, x *autograd.Var) *autograd.Var {
	eps := m.Cfg.NormEps
	switch m.fam.norm {
	case normLayer:
		return t.LayerNorm(x, t.Param(n.W), t.Param(n.B), eps)
	case normRMSOffset:
		w := t.Param(n.W)
		// The constant goes where the weights are, once, and comes back
		// like them when the model is used on the host again.
		one := m.ones[w.Value.Numel()]
		switch mem := tensor.MemoryOf(t.B); {
		case mem != nil && !one.OnDevice():
			tensor.ToDevice(mem, one)
		case mem == nil && one.OnDevice():
			tensor.ToHost(one)
		}
		return t.RMSNorm(x, t.Add(w, t.Const(one)), eps)
	}
	return t.RMSNorm(x, t.Param(n.W), eps)
}

// storeRows copies new keys or values src (B*T, KVH*D) into the cache
// dst (B, cap, KVH, D) at rows past..past+T of each sequence.
func storeRows(dst, src *tensor.Tensor, B, T, past, capacity int) {
	w := src.Cols()
	if len(src.Shape) > 2 {
		w = src.Numel() / (B * T)
	}
	if dst.OnDevice() || src.OnDevice() {
		if dst.Dev.Mem == src.Dev.Mem {
			// A strided copy on the device: (B, cap·w) <- (B, T·w).
			tensor.CopyCols(dst.Reshape(B, capacity*w), past*w, src.Reshape(B, T*w), 0, T*w)
			return
		}
		// One side on the host (a cache the device could not hold): slow,
		// through host copies.
		h := dst.Host()
		storeRows(h, src.Host(), B, T, past, capacity)
		tensor.Copy(dst, h)
		return
	}
	for b := 0; b < B; b++ {
		copy(dst.F32[(b*capacity+past)*w:(b*capacity+past+T)*w], src.F32[b*T*w:(b+1)*T*w])
	}
}

// Logits projects hidden states h (N, C) onto the vocabulary: (N, V).
func (m *Transformer) Logits(t *autograd.Tape, h *autograd.Var) *autograd.Var {
	head := m.Head
	if head == nil {
		head = m.Embed
	}
	logits := t.Linear(h, t.Param(head), nil)
	if c := m.Cfg.FinalSoftcap; c > 0 {
		logits = t.Softcap(logits, float32(c))
	}
	return logits
}

// Forward returns the logits (B*T, V) for in.
func (m *Transformer) Forward(t *autograd.Tape, in Inputs) (*autograd.Var, error) {
	h, err := m.Hidden(t, in)
	if err != nil {
		return nil, err
	}
	return m.Logits(t, h), nil
}

// Loss returns the mean next-token cross-entropy over targets that are
// not negative (targets[i] is the token that should follow position i),
// and the number of tokens it averages over.
//
// Only the positions with a target go through the output projection and
// the softmax: in SFT batches (prompt tokens and padding ignored) that is a
// small share of the rows, and the vocabulary-wide work is the largest
// per-token cost of a small model.
func (m *Transformer) Loss(t *autograd.Tape, in Inputs, targets []int32) (*autograd.Var, int, error) {
	n := 0
	for _, y := range targets {
		if y >= 0 {
			if int(y) >= m.Cfg.VocabSize {
				return nil, 0, fmt.Errorf("model: target %d is outside the vocabulary (size %d)", y, m.Cfg.VocabSize)
			}
			n++
		}
	}
	if n == 0 {
		return nil, 0, fmt.Errorf("model: the batch has no target tokens")
	}
	h, err := m.Hidden(t, in)
	if err != nil {
		return nil, 0, err
	}
	if N := h.Value.Rows(); len(targets) != N {
		return nil, 0, fmt.Errorf("model: %d targets for %d positions", len(targets), N)
	}
	if n < len(targets) {
		// Gather the rows that have a target (the gather's backward
		// scatters their gradients back) and their targets.
		rows, ys := make([]int32, 0, n), make([]int32, 0, n)
		for i, y := range targets {
			if y >= 0 {
				rows, ys = append(rows, int32(i)), append(ys, y)
			}
		}
		h, targets = t.Embedding(rows, h), ys
	}
	return t.SumScaled(m.tokenNLL(t, h, targets), 1/float32(n)), n, nil
}

// TokenNLL returns (B*T) −log p(targets[i]) for in, 0 where a target is
// negative: what sequence log-probabilities (DPO, KTO, GRPO) are made of.
// Like Loss it computes the logits a chunk of rows at a time.
func (m *Transformer) TokenNLL(t *autograd.Tape, in Inputs, targets []int32) (*autograd.Var, error) {
	for _, y := range targets {
		if int(y) >= m.Cfg.VocabSize {
			return nil, fmt.Errorf("model: target %d is outside the vocabulary (size %d)", y, m.Cfg.VocabSize)
		}
	}
	h, err := m.Hidden(t, in)
	if err != nil {
		return nil, err
	}
	if N := h.Value.Rows(); len(targets) != N {
		return nil, fmt.Errorf("model: %d targets for %d positions", len(targets), N)
	}
	return m.tokenNLL(t, h, targets), nil
}

// tokenNLL is the cross-entropy (N) of the logits of h (N, C) against
// targets. Large vocabularies: the logits of LossChunk rows at a time,
// each chunk a checkpoint that keeps only its rows of h and recomputes
// its logits in the backward pass, so (N x V) logits never exist at once.
func (m *Transformer) tokenNLL(t *autograd.Tape, h *autograd.Var, targets []int32) *autograd.Var {
	N, chunk := len(targets), m.LossChunk(t.B)
	if N <= chunk {
		return t.CrossEntropy(m.Logits(t, h), targets)
	}
	parts := make([]*autograd.Var, 0, (N+chunk-1)/chunk)
	out := t.Alloc(N)
	for lo := 0; lo < N; lo += chunk {
		hi := min(lo+chunk, N)
		idx := make([]int32, hi-lo)
		for i := range idx {
			idx[i] = int32(lo + i)
		}
		ys := targets[lo:hi]
		part := t.Checkpoint(t.Embedding(idx, h), func(t *autograd.Tape, x *autograd.Var) *autograd.Var {
			return t.CrossEntropy(m.Logits(t, x), ys)
		})
		tensor.Copy(out.Offset(lo, hi-lo), part.Value) // (N) values: the rows' losses, not logits
		parts = append(parts, part)
	}
	var o *autograd.Var
	o = t.Custom(out, func() {
		for k, p := range parts {
			lo := k * chunk
			g := t.GradOf(p)
			t.B.AddScaled(g, o.Grad.Offset(lo, g.Numel()), 1)
		}
	}, parts...)
	return o
}

// LossChunk is the number of rows Loss turns into logits at once on b:
// LossChunkRows, or about 2^22 logits (16 MiB) on the host, never fewer
// than 1 row. A backend with memory of its own (a GPU) takes about 2^27
// (512 MiB) and at least 256 rows: each chunk reads the whole output
// matrix (and, in bf16, converts it), so small chunks on a large
// vocabulary spend the step streaming it (a 128k vocabulary at 32 rows a
// chunk cost a llama-1b LoRA step on an H200 over a third of its time).
func (m *Transformer) LossChunk(b tensor.Backend) int {
	if m.LossChunkRows > 0 {
		return m.LossChunkRows
	}
	if b != nil && tensor.MemoryOf(b) != nil {
		return max(256, (1<<27)/m.Cfg.VocabSize)
	}
	return max(1, (1<<22)/m.Cfg.VocabSize)
}

// blockState is what every block of one forward pass shares.
type blockState struct {
	in     Inputs
	pos    []int32
	opts   tensor.AttentionOpts
	prefix PrefixSource
	past   int
	ropes  []*tensor.RoPETable // (L) nil: no RoPE on that layer
	// ringSeg are the key segments windowed cache layers attend with.
	ringSeg []int32
}

// block runs layer l on x (N, C): attention and MLP, each with its
// residual connection, as the family's data says.
func (m *Transformer) block(t *autograd.Tape, l int, x *autograd.Var, bs *blockState) *autograd.Var {
	c := m.Cfg
	in, pos := bs.in, bs.pos
	N := in.B * in.T
	H, KVH, D := c.Heads, c.KVHeads, c.HeadDim
	blk := &m.Blocks[l]
	h := m.norm(t, blk.Norm1, x)
	var q, k, v *autograd.Var
	if blk.QKV != nil {
		qkv := t.SplitCols(blk.QKV.Forward(t, h), H*D, KVH*D, KVH*D)
		q, k, v = qkv[0], qkv[1], qkv[2]
	} else {
		q = blk.Q.Forward(t, h)
		k = blk.K.Forward(t, h)
		v = blk.V.Forward(t, h)
	}
	if blk.QNorm.W != nil {
		q = m.norm(t, blk.QNorm, t.View(q, N*H, D))
		k = m.norm(t, blk.KNorm, t.View(k, N*KVH, D))
	}
	if tab := bs.ropes[l]; tab != nil {
		q = rope(t, q, N, H, D, pos, tab)
		k = rope(t, k, N, KVH, D, pos, tab)
	}
	if in.KV != nil {
		in.KV(l, t.View(k, in.B, in.T, KVH, D), t.View(v, in.B, in.T, KVH, D))
	}
	opts := bs.opts
	opts.Window = c.Window(l)
	switch {
	case in.Cache != nil && in.Cache.Ring[l]:
		kr, vr := in.Cache.ringKV(t, l, k.Value, v.Value, in, bs.ringSeg, &opts)
		k, v = t.Const(kr), t.Const(vr)
	case in.Cache != nil:
		kc, vc := in.Cache.K[l], in.Cache.V[l]
		storeRows(kc, k.Value, in.B, in.T, bs.past, in.Cache.Cap)
		storeRows(vc, v.Value, in.B, in.T, bs.past, in.Cache.Cap)
		k, v = t.Const(kc), t.Const(vc)
	default:
		k = t.View(k, in.B, in.T, KVH, D)
		v = t.View(v, in.B, in.T, KVH, D)
	}
	var pk, pv *autograd.Var
	if bs.prefix != nil {
		pk, pv = bs.prefix.Prefix(t, l)
	}
	a := blk.O.Forward(t, t.View(t.Attention(t.View(q, in.B, in.T, H, D), k, v, pk, pv, opts), N, H*D))
	if blk.PostAttn.W != nil {
		a = m.norm(t, blk.PostAttn, a)
	}
	x = t.Add(x, a)
	h = m.norm(t, blk.Norm2, x)
	switch m.fam.mlp {
	case mlpGELU:
		h = blk.Proj.Forward(t, t.GELU(blk.FC.Forward(t, h)))
	default:
		var g, u *autograd.Var
		if blk.GateUp != nil {
			gu := t.SplitCols(blk.GateUp.Forward(t, h), c.Intermediate, c.Intermediate)
			g, u = gu[0], gu[1]
		} else {
			g, u = blk.Gate.Forward(t, h), blk.Up.Forward(t, h)
		}
		if m.fam.mlp == mlpGeGLU {
			h = blk.Down.Forward(t, t.GeGLU(g, u))
		} else {
			h = blk.Down.Forward(t, t.SwiGLU(g, u))
		}
	}
	if blk.PostMLP.W != nil {
		h = m.norm(t, blk.PostMLP, h)
	}
	return t.Add(x, h)
}

// rope rotates x (N, heads*D) by the positions: all of each head, or its
// first tab.Dim values (partial rotary) with the rest passed through.
// Returns (N, heads, D).
func rope(t *autograd.Tape, x *autograd.Var, N, heads, D int, pos []int32, tab *tensor.RoPETable) *autograd.Var {
	rd := tab.Dim
	if rd == D {
		return t.RoPE(t.View(x, N, heads, D), pos, tab)
	}
	parts := t.SplitCols(t.View(x, N*heads, D), rd, D-rd) // (N*heads, rd), (N*heads, D-rd)
	r := t.RoPE(t.View(parts[0], N, heads, rd), pos, tab)
	return t.View(t.ConcatCols(t.View(r, N*heads, rd), parts[1]), N, heads, D)
}
