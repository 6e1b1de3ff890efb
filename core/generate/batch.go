package generate

import (
	"errors"
	"fmt"

	"llmlab/core/model"
	"llmlab/core/tensor"
)

// SeqRequest is one sequence to decode in a Batch: its prompt and its own
// sampling, seed, stops, length and streaming.
type SeqRequest struct {
	Prompt    []int32 // token ids, not empty
	MaxTokens int     // new tokens; 0 means 128; capped by the context
	Sampling  Sampling
	Seed      uint64
	// StopIDs end the sequence when generated (the token is not kept).
	StopIDs []int32
	// StopStrings end the sequence when its text contains one; the text
	// is cut before it.
	StopStrings []string
	// OnText, when set, receives new text as soon as it is complete UTF-8
	// and cannot be part of a stop string. Returning false cancels the
	// sequence: it leaves the batch at once.
	OnText func(text string) bool
}

// Seq is a sequence in a Batch, from Join until it finishes.
type Seq struct {
	req     SeqRequest
	sampler *Sampler
	context []int32 // prompt, then generated ids
	ids     []int32 // generated ids, a view of context
	text    string
	emitted int    // bytes of text given to OnText
	finish  string // "" while running, then "stop", "length" or "cancelled"
	maxNew  int
	next    int32 // the token to feed at the next step
	row     int   // cache row while in the batch, else -1
	first   int   // cache column of its first key (padding included)
}

// Done reports whether the sequence has finished (or was cancelled).
func (s *Seq) Done() bool { return s.finish != "" }

// Cancelled reports whether OnText or Batch.Cancel ended the sequence.
func (s *Seq) Cancelled() bool { return s.finish == "cancelled" }

// IDs returns the generated token ids (without a stop token).
func (s *Seq) IDs() []int32 { return s.ids }

// Text returns the generated text (cut before a stop string).
func (s *Seq) Text() string { return s.text }

// PromptLen is the number of prompt tokens.
func (s *Seq) PromptLen() int { return len(s.req.Prompt) }

// Finish is "stop" or "length" once done ("cancelled" when cut short),
// "" while running.
func (s *Seq) Finish() string { return s.finish }

// Batch is a slot-based decoder for continuous batching: up to Slots
// sequences decode together, one token each per Step. A sequence joins
// between steps (Join prefills its prompt into a free slot of the KV cache
// and samples its first token) and leaves when it finishes or is
// cancelled (its slot is freed and reused). Every slot has its own row of
// the cache, its own positions and its own sampler, so a sequence gets
// the tokens it would get decoding alone.
//
// The rows share one end column (the cache's Len), as left-padded prompts
// do: a sequence's keys are right-aligned, its earlier columns masked by
// segment id 0, so one attention call with a common causal offset (and
// sliding window) serves rows of every length, and keys of one sequence
// stay contiguous. A prompt prefills into a view of its row that ends at
// the common column; a prompt longer than the others shifts them right
// first; and when the end reaches the capacity, or the columns before the
// longest sequence are half of them, every row shifts left by that room
// (rare, and a copy per row, not per step).
//
// The running sequences always hold rows 0..n-1: a step is one forward
// pass of n rows over a view of the cache, and a sequence that leaves
// hands its row to the last one (a copy of that row, once per departure).
// A Step allocates nothing but the text of the tokens it decodes.
//
// A Batch belongs to one goroutine.
type Batch struct {
	g        *Generator
	slots    int
	capacity int
	cache    *model.Cache   // (slots, capacity); Len is the common end column
	views    []*model.Cache // views[n] covers rows 0..n-1
	live     []*Seq         // live[r] owns cache row r

	ids, pos, seg []int32   // (slots) one step's inputs
	row           []float32 // (V) logits scratch for the sampler

	// scratch for rotating the windowed layers' rings (moveRing)
	ringTmp    []float32 // (Window*KVH*D)
	ringSegTmp []int32   // (Window)

	shifts, compactions int // how often rows moved right and left (tests)
	compactMin          int // fewest unused columns worth moving before the end is reached
}

// NewBatch returns a Batch of slots sequences of up to capacity tokens
// each (prompt and generated; at most the model's context). It keeps its
// cache until Close. It shares the Generator's tape: do not use the
// Generator and the Batch at the same time.
func (g *Generator) NewBatch(slots, capacity int) (*Batch, error) {
	if slots < 1 {
		return nil, fmt.Errorf("generate: a batch needs at least one slot, got %d", slots)
	}
	if capacity < 2 || capacity > g.M.Cfg.ContextLen() {
		return nil, fmt.Errorf("generate: batch capacity %d must be between 2 and the context length %d", capacity, g.M.Cfg.ContextLen())
	}
	c := g.M.NewCache(slots, capacity)
	if a, ok := g.B.(tensor.Allocator); ok {
		c.Place(a) // the keys and values stay on the device
	}
	b := &Batch{g: g, slots: slots, capacity: capacity, cache: c, live: make([]*Seq, 0, slots),
		ids: make([]int32, slots), pos: make([]int32, slots), seg: make([]int32, slots),
		row: make([]float32, g.M.Cfg.VocabSize)}
	b.compactMin = 64
	if c.Window > 0 {
		b.ringTmp = make([]float32, c.Window*g.M.Cfg.KVHeads*g.M.Cfg.HeadDim)
		b.ringSegTmp = make([]int32, c.Window)
	}
	b.views = make([]*model.Cache, slots+1)
	for n := 1; n <= slots; n++ {
		b.views[n] = b.rows(0, n)
	}
	return b, nil
}

// rows returns a cache that views rows lo..hi-1 of b's cache.
func (b *Batch) rows(lo, hi int) *model.Cache {
	c := b.cache
	v := &model.Cache{B: hi - lo, Cap: c.Cap, Len: c.Len, Seg: c.Seg[lo*c.Cap : hi*c.Cap], Window: c.Window, Ring: c.Ring}
	if c.Window > 0 {
		v.RingSeg = c.RingSeg[lo*c.Window : hi*c.Window]
	}
	for l := range c.K {
		v.K = append(v.K, rowView(c.K[l], lo, hi))
		v.V = append(v.V, rowView(c.V[l], lo, hi))
	}
	return v
}

// The batch touches tensor memory from the host in three places only:
// hostLogits (a step's one read), rowView (views of cache rows) and the
// row and column moves (moveRow, moveCols), which happen when sequences
// join and leave, not per step.

// hostLogits returns a pass's logits (rows, V) as host memory.
func hostLogits(l *tensor.Tensor) []float32 { return l.F32 }

// rowView is rows lo..hi-1 of t (B, ...), sharing its memory.
func rowView(t *tensor.Tensor, lo, hi int) *tensor.Tensor {
	per := t.Numel() / t.Shape[0]
	shape := append(tensor.Shape{hi - lo}, t.Shape[1:]...)
	return &tensor.Tensor{Shape: shape, DType: t.DType, F32: t.F32[lo*per : hi*per]}
}

// Slots is the most sequences the batch runs at once.
func (b *Batch) Slots() int { return b.slots }

// Capacity is the most tokens (prompt and generated) of one sequence.
func (b *Batch) Capacity() int { return b.capacity }

// Running is the number of sequences in the batch.
func (b *Batch) Running() int { return len(b.live) }

// Free is the number of free slots.
func (b *Batch) Free() int { return b.slots - len(b.live) }

// Close gives back device memory the cache holds; b must not be used
// again.
func (b *Batch) Close() {
	if a, ok := b.g.B.(tensor.Allocator); ok {
		b.cache.Free(a)
	}
	b.live = b.live[:0]
}

// Join prefills the prompts into free slots, in one forward pass (prompts
// of different lengths are left-padded; a sequence never attends to its
// padding), and samples each one's first token. The returned sequences
// may already be done (a stop at the first token, or MaxTokens 1); those
// have left the batch.
func (b *Batch) Join(reqs ...SeqRequest) ([]*Seq, error) {
	k := len(reqs)
	if k == 0 {
		return nil, errors.New("generate: no prompts")
	}
	if k > b.Free() {
		return nil, fmt.Errorf("generate: %d sequences to join, %d free slots", k, b.Free())
	}
	maxP := 0
	for i, r := range reqs {
		if err := r.Sampling.Validate(); err != nil {
			return nil, err
		}
		if len(r.Prompt) == 0 {
			return nil, fmt.Errorf("generate: prompt %d is empty", i)
		}
		maxP = max(maxP, len(r.Prompt))
	}
	if maxP >= b.capacity {
		return nil, fmt.Errorf("generate: prompt of %d tokens does not fit the context of %d", maxP, b.capacity)
	}
	// Right-align the new rows with the running ones: a prompt longer
	// than the common end moves the running rows right.
	n := len(b.live)
	if n == 0 {
		b.cache.Len = 0
	}
	if maxP > b.cache.Len {
		b.shift(maxP - b.cache.Len)
	}
	end := b.cache.Len
	// Left-pad: pad tokens get segment 0 and position 0; real tokens
	// segment 1 and positions from 0. The columns before the prompts are
	// padding too.
	ids := make([]int32, k*maxP)
	pos := make([]int32, k*maxP)
	seg := make([]int32, k*maxP)
	seqs := make([]*Seq, k)
	for i, r := range reqs {
		pad := maxP - len(r.Prompt)
		for j, id := range r.Prompt {
			ids[i*maxP+pad+j] = id
			pos[i*maxP+pad+j] = int32(j)
			seg[i*maxP+pad+j] = 1
		}
		clear(b.cache.Seg[(n+i)*b.capacity:][:end-maxP])
		if W := b.cache.Window; W > 0 {
			clear(b.cache.RingSeg[(n+i)*W:][:W]) // the ring's older slots are padding too
		}
		maxNew := r.MaxTokens
		if maxNew <= 0 {
			maxNew = 128
		}
		maxNew = min(maxNew, b.capacity-maxP)
		s := &Seq{req: r, sampler: NewSampler(r.Sampling, r.Seed), maxNew: maxNew, row: n + i, first: end - maxP,
			context: make([]int32, len(r.Prompt), len(r.Prompt)+maxNew)}
		copy(s.context, r.Prompt)
		s.ids = s.context[len(r.Prompt):]
		seqs[i] = s
	}
	view := b.rows(n, n+k)
	view.Len = end - maxP
	t := b.g.tape
	t.Reset()
	h, err := b.g.M.Hidden(t, model.Inputs{B: k, T: maxP, IDs: ids, Pos: pos, Seg: seg, Cache: view})
	if err != nil {
		return nil, err
	}
	logits := hostLogits(b.g.M.Logits(t, lastRows(t, h, k, maxP)).Value) // (k, V)
	V := b.g.M.Cfg.VocabSize
	b.live = append(b.live, seqs...)
	for i, s := range seqs {
		b.advance(s, logits[i*V:(i+1)*V])
	}
	b.sweep()
	return seqs, nil
}

// Step decodes one token for every running sequence; finished ones leave.
func (b *Batch) Step() error {
	n := len(b.live)
	if n == 0 {
		return nil
	}
	if err := b.compact(); err != nil {
		return err
	}
	for r, s := range b.live {
		b.ids[r] = s.next
		b.pos[r] = int32(len(s.context) - 1)
		b.seg[r] = 1
	}
	t := b.g.tape
	t.Reset()
	view := b.views[n]
	view.Len = b.cache.Len
	h, err := b.g.M.Hidden(t, model.Inputs{B: n, T: 1, IDs: b.ids[:n], Pos: b.pos[:n], Seg: b.seg[:n], Cache: view})
	if err != nil {
		return err
	}
	b.cache.Len = view.Len
	logits := hostLogits(b.g.M.Logits(t, h).Value) // (n, V)
	V := b.g.M.Cfg.VocabSize
	for r, s := range b.live {
		b.advance(s, logits[r*V:(r+1)*V])
	}
	b.sweep()
	return nil
}

// Cancel ends s now: it leaves the batch (its slot is free for the next
// Join) and reports Cancelled. Cancelling a finished sequence does
// nothing.
func (b *Batch) Cancel(s *Seq) {
	if s.finish != "" {
		return
	}
	s.finish = "cancelled"
	b.sweep()
}

// advance samples s's next token from its logits (V) and updates its
// text, finish state and stream.
func (b *Batch) advance(s *Seq, logits []float32) {
	if s.finish != "" {
		return
	}
	copy(b.row, logits)
	id := s.sampler.Sample(b.row, s.context)
	if isStop(id, s.req.StopIDs) {
		s.finish = "stop"
		b.flush(s)
		return
	}
	s.context = append(s.context, id)
	s.ids = s.context[len(s.req.Prompt):]
	s.next = id
	if tok := b.g.Tok; tok != nil {
		text := tok.Decode(s.ids)
		if cut, ok := cutStop(text, s.req.StopStrings); ok {
			s.text, s.finish = cut, "stop"
		} else {
			s.text = text
		}
	}
	if s.finish == "" && len(s.ids) >= s.maxNew {
		s.finish = "length"
	}
	b.flush(s)
}

// flush gives OnText the text that is safe to show: all of it once s is
// done.
func (b *Batch) flush(s *Seq) {
	if s.req.OnText == nil || b.g.Tok == nil || s.finish == "cancelled" {
		return
	}
	safe := streamable(s.text, s.req.StopStrings, s.finish != "")
	if safe > s.emitted {
		if !s.req.OnText(s.text[s.emitted:safe]) {
			s.finish = "cancelled"
			return
		}
		s.emitted = safe
	}
}

// sweep removes finished sequences; the last running sequence moves into
// each freed row, so rows 0..n-1 stay the running ones.
func (b *Batch) sweep() {
	for r := len(b.live) - 1; r >= 0; r-- {
		s := b.live[r]
		if s.finish == "" {
			continue
		}
		s.row = -1
		last := len(b.live) - 1
		if r != last {
			b.moveRow(last, r)
			b.live[r] = b.live[last]
			b.live[r].row = r
		}
		b.live[last] = nil
		b.live = b.live[:last]
	}
}

// moveRow copies cache row src's keys, values and segment ids (columns
// up to the common end; a windowed layer's whole ring) into row dst.
func (b *Batch) moveRow(src, dst int) {
	c := b.cache
	n := c.Len
	for l := range c.K {
		rows := n
		if c.Ring[l] {
			rows = c.Window
		}
		for _, t := range []*tensor.Tensor{c.K[l], c.V[l]} {
			per := t.Shape[1]            // Cap, or Window for a ring
			w := t.Numel() / (c.B * per) // KVH*D
			copy(t.F32[dst*per*w:][:rows*w], t.F32[src*per*w:][:rows*w])
		}
	}
	copy(c.Seg[dst*c.Cap:][:n], c.Seg[src*c.Cap:][:n])
	if W := c.Window; W > 0 {
		copy(c.RingSeg[dst*W:][:W], c.RingSeg[src*W:][:W])
	}
}

// moveCols moves columns [from, from+n) of every running row to [to,
// to+n) (the ranges may overlap). The moved range always ends at the
// cache's end, before and after.
func (b *Batch) moveCols(from, to, n int) {
	c := b.cache
	for r := range b.live {
		for l := range c.K {
			if c.Ring[l] {
				continue
			}
			for _, t := range []*tensor.Tensor{c.K[l], c.V[l]} {
				w := t.Numel() / (c.B * c.Cap)
				row := t.F32[r*c.Cap*w : (r+1)*c.Cap*w]
				copy(row[to*w:(to+n)*w], row[from*w:(from+n)*w])
			}
		}
		seg := c.Seg[r*c.Cap : (r+1)*c.Cap]
		copy(seg[to:to+n], seg[from:from+n])
	}
	if c.Window > 0 {
		b.moveRing(from, to, n)
	}
}

// moveRing is moveCols for the windowed layers, whose ring holds column j
// in slot j mod W for the last W columns (core/model's kvring.go): each
// new column of the last W takes the old column it moved from, and a
// column opened before the range (padding, after a shift) gets segment 0
// so that no query sees it.
func (b *Batch) moveRing(from, to, n int) {
	c := b.cache
	W, d, end := c.Window, to-from, to+n
	lo := max(0, end-W)
	for r := range b.live {
		for l := range c.K {
			if !c.Ring[l] {
				continue
			}
			for _, t := range []*tensor.Tensor{c.K[l], c.V[l]} {
				w := t.Numel() / (c.B * W)
				row := t.F32[r*W*w : (r+1)*W*w]
				tmp := b.ringTmp[:W*w]
				copy(tmp, row)
				for col := max(lo, to); col < end; col++ {
					copy(row[(col%W)*w:][:w], tmp[((col-d)%W)*w:][:w])
				}
			}
		}
		seg := c.RingSeg[r*W : (r+1)*W]
		copy(b.ringSegTmp, seg)
		for col := lo; col < end; col++ {
			if col < to {
				seg[col%W] = 0
			} else {
				seg[col%W] = b.ringSegTmp[(col-d)%W]
			}
		}
	}
}

// shift moves every running row d columns right, for a longer prompt;
// the columns it opens are padding.
func (b *Batch) shift(d int) {
	c := b.cache
	b.shifts++
	b.moveCols(0, d, c.Len)
	for r, s := range b.live {
		clear(c.Seg[r*c.Cap:][:d])
		s.first += d
	}
	c.Len += d
}

// compact moves every running row left by the columns no sequence uses
// (before the first key of the longest one) when the end has reached the
// capacity, or when those columns are at least half of them (attention
// scans every column up to the end, masked or not).
func (b *Batch) compact() error {
	c := b.cache
	longest := 0
	for _, s := range b.live {
		longest = max(longest, c.Len-s.first)
	}
	d := c.Len - longest
	if c.Len < b.capacity && (d < b.compactMin || 2*d < c.Len) {
		return nil
	}
	if d <= 0 {
		return fmt.Errorf("generate: a sequence of %d tokens fills the cache of %d", longest, c.Cap)
	}
	b.compactions++
	b.moveCols(d, 0, longest)
	for _, s := range b.live {
		s.first -= d
	}
	c.Len = longest
	return nil
}

// reset empties the batch: running sequences are cancelled without
// moving their rows.
func (b *Batch) reset() {
	for _, s := range b.live {
		if s.finish == "" {
			s.finish = "cancelled"
		}
		s.row = -1
	}
	clear(b.live)
	b.live = b.live[:0]
	b.cache.Reset()
}
