package tensor

import "math"

// Backend is the engine's one wide interface: coarse, fused kernels, each
// with its backward. Arguments come outputs first, then inputs, then options
// (llm.c's order). Unless a comment says otherwise, a forward kernel
// overwrites its outputs and a backward kernel ADDS into its gradient
// outputs (dx += ...), so gradients from several uses of a value accumulate.
//
// Shapes are given as comments; kernels view a tensor of shape (..., C) as a
// matrix of Rows() x C. Only weights (the b of MatMul, the table of
// Embedding) may be F16/BF16; everything else is F32.
type Backend interface {
	Name() string

	// MatMul: dst = op(a)·op(b), or dst += op(a)·op(b) with Accumulate.
	// a viewed as (M, K), or (K, M) with TransA; b as (K, N), or (N, K) with
	// TransB; dst (M, N). With Batch > 1, a, b and dst are Batch equal,
	// consecutive slabs multiplied pairwise.
	MatMul(dst, a, b *Tensor, o MatMulOpts)

	// Embedding: dst[i,:] = table[ids[i],:]. dst (N, C), table (V, C).
	Embedding(dst *Tensor, ids []int32, table *Tensor)
	// EmbeddingBackward: dtable[ids[i],:] += dy[i,:].
	EmbeddingBackward(dtable *Tensor, ids []int32, dy *Tensor)

	// LayerNorm over the last dim: x (N, C), w, b (C) (b may be nil),
	// mean, rstd (N) saved for the backward.
	LayerNorm(dst, mean, rstd, x, w, b *Tensor, eps float32)
	LayerNormBackward(dx, dw, db, dy, x, w, mean, rstd *Tensor) // dw, db may be nil (frozen)
	// RMSNorm: dst = x * rstd * w, rstd = 1/sqrt(mean(x²)+eps). x (N, C), w (C), rstd (N).
	RMSNorm(dst, rstd, x, w *Tensor, eps float32)
	RMSNormBackward(dx, dw, dy, x, w, rstd *Tensor) // dw may be nil

	// GELU, tanh approximation (GPT-2's gelu_new).
	GELU(dst, x *Tensor)
	GELUBackward(dx, dy, x *Tensor)
	// SwiGLU: dst = silu(gate) * up, all the same shape.
	SwiGLU(dst, gate, up *Tensor)
	SwiGLUBackward(dgate, dup, dy, gate, up *Tensor)
	// GeGLU: dst = gelu_tanh(gate) * up, all the same shape (Gemma's MLP,
	// HF's gelu_pytorch_tanh).
	GeGLU(dst, gate, up *Tensor)
	GeGLUBackward(dgate, dup, dy, gate, up *Tensor)
	// Softcap: dst = c * tanh(x / c) (Gemma 2's final logits). The
	// backward reads the forward's output y: dx += dy * (1 - (y/c)²).
	Softcap(dst, x *Tensor, c float32)
	SoftcapBackward(dx, dy, y *Tensor, c float32)
	// ReLU: dst = max(x, 0). The backward reads the output y: dx += dy
	// where y > 0.
	ReLU(dst, x *Tensor)
	ReLUBackward(dx, dy, y *Tensor)

	// RoPE, HF's rotate-half convention, on x (N, H, D) where row n of x is
	// at position pos[n] (len(pos) == N). dst may equal x.
	RoPE(dst, x *Tensor, pos []int32, tab *RoPETable)
	RoPEBackward(dx, dy *Tensor, pos []int32, tab *RoPETable)

	// Attention: fused, tiled causal attention with grouped-query heads.
	// q, out (B, T, H, D); k, v (B, o.KStride, KVH, D) of which the first
	// o.Keys rows per sequence are valid; lse (B, H, T) saved for backward.
	Attention(out, lse, q, k, v *Tensor, o *AttentionOpts)
	// AttentionBackward adds into dq, dk, dv (dk, dv may be nil when the
	// keys need no gradient) and into o.DPrefixK/V when set.
	AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse *Tensor, o *AttentionOpts)

	// CrossEntropy per row: loss[i] = lse(logits[i]) - logits[i][targets[i]];
	// rows whose target is < 0 are ignored (loss 0). logits (N, V); loss, lse (N).
	CrossEntropy(loss, lse, logits *Tensor, targets []int32)
	// CrossEntropyBackward: dlogits[i] += dloss[i] * (softmax(logits[i]) - onehot).
	CrossEntropyBackward(dlogits, dloss, logits, lse *Tensor, targets []int32)

	// Elementwise, all the same number of elements unless stated.
	Add(dst, a, b *Tensor)                  // dst = a + b
	Mul(dst, a, b *Tensor)                  // dst = a * b
	AddScaled(dst, a *Tensor, s float32)    // dst += s * a
	AddBias(dst, x, bias *Tensor)           // dst = x + bias, x (N, C), bias (C)
	SumRows(dst, x *Tensor)                 // dst (C) += column sums of x (N, C)
	SplitCols(dsts []*Tensor, x *Tensor)    // x (N, ΣCi) -> dsts[i] (N, Ci)
	ConcatCols(dst *Tensor, srcs []*Tensor) // dst (N, ΣCi) = [srcs...]; ConcatCols with Accumulate is never needed

	// AdamW updates p in place from its gradient g and moments m, v (all F32, same shape).
	AdamW(p, g, m, v *Tensor, o AdamWOpts)
	// SumSquares returns Σ x², accumulated in float64 (for gradient norms).
	SumSquares(x *Tensor) float64
}

// MatMulOpts selects transposes, accumulation and batching for MatMul.
type MatMulOpts struct {
	TransA, TransB bool
	Accumulate     bool
	Batch          int // 0 or 1: one product
}

// AttentionOpts describes one fused attention call.
type AttentionOpts struct {
	Batch, Heads, KVHeads, HeadDim int // B, H, KVH (H % KVH == 0), D
	Queries                        int // T: queries per sequence
	Keys                           int // S: valid keys per sequence (past + T)
	KStride                        int // rows per sequence in k, v (cache capacity); 0 means Keys
	// Offset is the key index of query 0: query i may see keys j <= Offset+i
	// (causal). Normally Keys - Queries.
	Offset int
	Scale  float32 // 0 means 1/sqrt(D)
	// Window, when > 0, is a sliding window: query i sees key j only when
	// Offset+i-j < Window (Mistral, Gemma's local layers).
	Window int
	// Softcap, when > 0, caps every score s (after Scale) to
	// Softcap*tanh(s/Softcap) before the softmax (Gemma 2).
	Softcap float32

	// Optional learned prefix, seen by every query of every sequence,
	// before the keys: (KVH, P, D) each.
	PrefixK, PrefixV   *Tensor
	DPrefixK, DPrefixV *Tensor // gradients of the prefix (added into), backward only

	// Optional segment ids: query (b, i) sees key (b, j) only when
	// QSeg[b*T+i] == KSeg[b*KStride+j]. Packing and left padding use them.
	QSeg, KSeg []int32
}

// AdamWOpts carries one AdamW step's hyper-parameters. Step counts from 1.
type AdamWOpts struct {
	LR, Beta1, Beta2, Eps, WeightDecay float32
	Step                               int
}

// RoPETable holds cos and sin of position × frequency for rotate-half RoPE:
// Cos[p*D/2+i] = cos(p * theta^(-2i/D)).
type RoPETable struct {
	Dim      int // rotary dimension (= head dim)
	MaxPos   int
	Cos, Sin []float32 // (MaxPos, Dim/2)
}

// MultiAdamW is implemented by backends that update many parameters with
// one launch: AdamWAll is AdamW(ps[i], gs[i], ms[i], vs[i], o) for every
// i, with o.WeightDecay replaced by decay[i], and the same results.
type MultiAdamW interface {
	AdamWAll(ps, gs, ms, vs []*Tensor, decay []float32, o AdamWOpts)
}

// ArgMaxer is implemented by backends that pick greedy tokens where the
// logits are: ArgMax writes the index of the first largest value of each
// row of x (N, V) into dst (len N), 0 for a row with nothing above -inf,
// exactly as ArgMaxRows.
type ArgMaxer interface {
	ArgMax(dst []int32, x *Tensor)
}

// ArgMaxRows is the reference ArgMax on a host tensor.
func ArgMaxRows(dst []int32, x *Tensor) {
	V := x.Cols()
	for r := range dst {
		best, bi := float32(math.Inf(-1)), 0
		for i, v := range x.F32[r*V : (r+1)*V] {
			if v > best {
				best, bi = v, i
			}
		}
		dst[r] = int32(bi)
	}
}

// Allocator is implemented by backends whose memory the host can map
// (a GPU's host-visible device memory, an integrated GPU, a CPU Vulkan
// device): float32 storage allocated there is used by their kernels in
// place, with no copy in or out. The autograd arena takes its slab from
// it, so a step's activations and gradients live on the device.
type Allocator interface {
	// AllocF32 returns n floats of device memory, zeroed, or nil when the
	// device cannot provide them (the caller then uses ordinary memory).
	// The slice starts at an offset aligned for binding.
	AllocF32(n int) []float32
	// FreeF32 returns memory from AllocF32; the slice must not be used again.
	FreeF32(x []float32)
}

// AllocAlign is the alignment, in float32 values, that arenas give every
// tensor they carve from an Allocator's memory (256 bytes: the largest
// storage-buffer offset alignment devices ask for).
const AllocAlign = 64
