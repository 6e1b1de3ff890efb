package rlhf

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"

	"llmlab/core/autograd"
	"llmlab/core/data"
	"llmlab/core/model"
	"llmlab/core/tensor"
)

// Reference gives the reference policy's summed log-probability of each
// row's labels: dst (b.B). Implementations: FrozenModel (a second, frozen
// model), ReferenceFunc (e.g. the policy with its adapter switched off),
// and CachedReference around either.
type Reference interface {
	LogProbs(ctx context.Context, b data.Batch, dst []float32) error
}

// ReferenceFunc adapts a function to Reference.
type ReferenceFunc func(ctx context.Context, b data.Batch, dst []float32) error

func (f ReferenceFunc) LogProbs(ctx context.Context, b data.Batch, dst []float32) error {
	return f(ctx, b, dst)
}

// FrozenModel is a reference that runs M forward without recording
// gradients, on its own tape.
type FrozenModel struct {
	M    *model.Transformer
	tape *autograd.Tape
}

// NewFrozenModel returns a reference computing with m on backend be.
func NewFrozenModel(m *model.Transformer, be tensor.Backend) *FrozenModel {
	t := autograd.NewTape(be)
	t.NoGrad = true
	return &FrozenModel{M: m, tape: t}
}

func (f *FrozenModel) LogProbs(ctx context.Context, b data.Batch, dst []float32) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(dst) != b.B {
		return fmt.Errorf("reference: dst has %d values for %d rows", len(dst), b.B)
	}
	t := f.tape
	defer t.Reset()
	nll, err := f.M.TokenNLL(t, model.Inputs{B: b.B, T: b.T, IDs: b.IDs, Pos: b.Pos, Seg: b.Seg}, b.Labels)
	if err != nil {
		return fmt.Errorf("reference: %w", err)
	}
	copy(dst, SequenceLogProbsNLL(t, nll, b.Labels, b.B, b.T).Value.F32)
	return nil
}

// CachedReference remembers the log-probabilities of every row it has
// seen, keyed by a hash of the row's tokens, labels and positions. A frozen
// reference gives the same numbers for the same row, so after the first
// epoch (or a Warm pass over the data) DPO and KTO run no reference forward
// at all. Only a batch with an unseen row goes to the inner reference.
// Rows are 64-bit FNV-1a hashes: a collision among fewer than a million
// rows has odds below 1e-7.
type CachedReference struct {
	Inner        Reference
	m            map[uint64]float32
	keys         []uint64
	Hits, Misses int // rows served from memory, rows the inner reference computed
}

// NewCachedReference wraps inner, which must be frozen.
func NewCachedReference(inner Reference) *CachedReference {
	return &CachedReference{Inner: inner, m: map[uint64]float32{}}
}

// Len is the number of rows cached.
func (c *CachedReference) Len() int { return len(c.m) }

func rowKey(b data.Batch, r int) uint64 {
	h := fnv.New64a()
	var buf [4]byte
	put := func(xs []int32) {
		for _, x := range xs[r*b.T : (r+1)*b.T] {
			binary.LittleEndian.PutUint32(buf[:], uint32(x))
			h.Write(buf[:])
		}
	}
	put(b.IDs)
	put(b.Labels)
	if b.Pos != nil {
		put(b.Pos)
	}
	if b.Seg != nil {
		put(b.Seg)
	}
	return h.Sum64()
}

func (c *CachedReference) LogProbs(ctx context.Context, b data.Batch, dst []float32) error {
	if len(dst) != b.B {
		return fmt.Errorf("reference: dst has %d values for %d rows", len(dst), b.B)
	}
	c.keys = c.keys[:0]
	all := true
	for r := range b.B {
		k := rowKey(b, r)
		c.keys = append(c.keys, k)
		v, ok := c.m[k]
		dst[r] = v
		all = all && ok
	}
	if all {
		c.Hits += b.B
		return nil
	}
	if err := c.Inner.LogProbs(ctx, b, dst); err != nil {
		return err
	}
	c.Misses += b.B // the whole batch was computed
	for r, k := range c.keys {
		c.m[k] = dst[r]
	}
	return nil
}
