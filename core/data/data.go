// Package data turns text into what the training loop eats.
//
// Two paths. Pretraining: text files are encoded in parallel into a token
// shard (a small header, then uint16 or uint32 tokens), memory-mapped for
// reading, and a Sampler draws (B, T+1) windows from it in a shuffled,
// seeded, resumable order. Fine-tuning and alignment: JSONL files in the
// common shapes are read into Records (errors name file and line), rendered
// through a chat template into segments, encoded segment by segment into
// Examples whose labels mark the tokens that carry loss, and either padded
// (Collate) or packed several to a row (Pack) into a Batch.
//
// Labels follow one convention everywhere: an Example's Labels are aligned
// with its IDs (Labels[i] is IDs[i] or IgnoreIndex), while a Batch's Labels
// are already shifted, Labels[b,t] being the target of the prediction made
// at position t (the next token), so the loss is cross-entropy of
// logits[b,t] against Labels[b,t] with IgnoreIndex skipped.
//
// The package needs only a small Encoder interface from a tokenizer, so it
// does not depend on core/tokenizer.
package data

import "fmt"

// IgnoreIndex marks a label that carries no loss (PyTorch's convention).
const IgnoreIndex int32 = -100

// Encoder is what this package needs from a tokenizer. Encode must match
// the tokenizer's special tokens when they appear as text (chat markers).
// BOS and EOS return -1 when the tokenizer has none.
type Encoder interface {
	Encode(text string, addSpecial bool) []int32
	BOS() int32
	EOS() int32
}

// Example is one tokenised training example: IDs and, aligned with them,
// Labels (the token itself where the model is trained to produce it,
// IgnoreIndex elsewhere).
type Example struct {
	IDs    []int32
	Labels []int32
}

// Trained returns how many tokens of e carry loss.
func (e Example) Trained() int {
	n := 0
	for _, l := range e.Labels {
		if l != IgnoreIndex {
			n++
		}
	}
	return n
}

// Batch is B rows of T tokens, flat row-major (index b*T+t).
type Batch struct {
	B, T   int
	IDs    []int32 // (B, T) input tokens
	Labels []int32 // (B, T) next-token targets, IgnoreIndex for no loss
	Pos    []int32 // (B, T) position ids, restarting at 0 for each packed example
	Seg    []int32 // (B, T) segment ids for attention (QSeg = KSeg); nil when unpacked
}

// NewBatch allocates a Batch with IDs, Labels and Pos (Seg nil).
func NewBatch(b, t int) Batch {
	return Batch{B: b, T: t, IDs: make([]int32, b*t), Labels: make([]int32, b*t), Pos: make([]int32, b*t)}
}

// Rows returns rows [i, j) of b, sharing its storage.
func (b Batch) Rows(i, j int) Batch {
	lo, hi := i*b.T, j*b.T
	r := Batch{B: j - i, T: b.T, IDs: b.IDs[lo:hi], Labels: b.Labels[lo:hi], Pos: b.Pos[lo:hi]}
	if b.Seg != nil {
		r.Seg = b.Seg[lo:hi]
	}
	return r
}

// Tokens returns how many targets of b carry loss.
func (b Batch) Tokens() int {
	n := 0
	for _, l := range b.Labels {
		if l != IgnoreIndex {
			n++
		}
	}
	return n
}

// Check verifies that b's slices have B*T elements.
func (b Batch) Check() error {
	n := b.B * b.T
	if len(b.IDs) != n || len(b.Labels) != n || (b.Pos != nil && len(b.Pos) != n) || (b.Seg != nil && len(b.Seg) != n) {
		return fmt.Errorf("data: batch (%d, %d) wants %d elements, has ids %d labels %d pos %d seg %d",
			b.B, b.T, n, len(b.IDs), len(b.Labels), len(b.Pos), len(b.Seg))
	}
	return nil
}
