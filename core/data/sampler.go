package data

import (
	"fmt"
	"iter"
)

// Cursor is a Sampler's position: the epoch and how many windows of it
// have been drawn. Saving these two ints with a checkpoint and restoring
// them resumes the exact stream of batches.
type Cursor struct {
	Epoch int `json:"epoch"`
	Index int `json:"index"`
}

// Sampler draws batches of (B, T+1)-token windows from shards, treated as
// one stream. Each epoch cuts the stream into non-overlapping windows at a
// random offset in [0, T) and visits them in a random order, both from
// (seed, epoch), so every token is seen about once per epoch and the order
// is reproducible; within an epoch nothing but the permutation is stored.
type Sampler struct {
	B, T   int
	Seed   uint64
	shards []*Shard
	starts []int // starts[i]: stream index of shards[i]'s first token
	total  int

	cur    Cursor
	epoch  int // epoch the permutation below is for; -1 none
	offset int
	perm   []int
	buf    []int32
}

// NewSampler builds a sampler over shards for batches of B rows of T tokens.
func NewSampler(shards []*Shard, B, T int, seed uint64) (*Sampler, error) {
	if B <= 0 || T <= 0 {
		return nil, fmt.Errorf("data: sampler: batch %d × ctx %d must be positive", B, T)
	}
	s := &Sampler{B: B, T: T, Seed: seed, shards: shards, epoch: -1, buf: make([]int32, T+1)}
	for _, sh := range shards {
		s.starts = append(s.starts, s.total)
		s.total += sh.Len()
	}
	if s.total < T+1 {
		return nil, fmt.Errorf("data: sampler: %d tokens in %d shard(s), fewer than one window of ctx+1 = %d", s.total, len(shards), T+1)
	}
	return s, nil
}

// Tokens returns the tokens in the stream.
func (s *Sampler) Tokens() int { return s.total }

// WindowsPerEpoch returns how many windows an epoch has (it varies by at
// most one with the epoch's offset).
func (s *Sampler) WindowsPerEpoch() int {
	s.prepare(s.cur.Epoch)
	return len(s.perm)
}

// Cursor returns the position of the next batch.
func (s *Sampler) Cursor() Cursor { return s.cur }

// SetCursor moves to c (from Cursor, possibly of an earlier process with the
// same shards, B, T and seed).
func (s *Sampler) SetCursor(c Cursor) error {
	if c.Epoch < 0 || c.Index < 0 {
		return fmt.Errorf("data: sampler: cursor %+v is negative", c)
	}
	s.prepare(c.Epoch)
	if c.Index > len(s.perm) {
		return fmt.Errorf("data: sampler: cursor index %d past the %d windows of epoch %d (different data or ctx?)", c.Index, len(s.perm), c.Epoch)
	}
	s.cur = c
	return nil
}

func (s *Sampler) prepare(epoch int) {
	if s.epoch == epoch {
		return
	}
	r := newRNG(s.Seed, uint64(epoch)+0x5a3b1e)
	s.offset = r.intn(s.T)
	if s.total-s.offset < s.T+1 {
		s.offset = 0
	}
	n := (s.total - s.offset - 1) / s.T
	if cap(s.perm) < n {
		s.perm = make([]int, n)
	}
	s.perm = s.perm[:n]
	for i := range s.perm {
		s.perm[i] = i
	}
	r.shuffle(s.perm)
	s.epoch = epoch
}

// Next fills dst with the next B windows: IDs the first T tokens, Labels the
// next-token targets, Pos 0..T-1, Seg nil. dst is (re)allocated when its
// shape differs.
func (s *Sampler) Next(dst *Batch) {
	if dst.B != s.B || dst.T != s.T || len(dst.IDs) != s.B*s.T || len(dst.Labels) != s.B*s.T || len(dst.Pos) != s.B*s.T {
		*dst = NewBatch(s.B, s.T)
	}
	dst.Seg = nil
	for b := range s.B {
		s.prepare(s.cur.Epoch)
		if s.cur.Index >= len(s.perm) {
			s.cur = Cursor{Epoch: s.cur.Epoch + 1}
			s.prepare(s.cur.Epoch)
		}
		start := s.offset + s.perm[s.cur.Index]*s.T
		s.cur.Index++
		s.read(s.buf, start)
		row := b * s.T
		copy(dst.IDs[row:row+s.T], s.buf[:s.T])
		copy(dst.Labels[row:row+s.T], s.buf[1:])
		for t := range s.T {
			dst.Pos[row+t] = int32(t)
		}
	}
}

// read copies stream tokens [start, start+len(dst)) across shard boundaries.
func (s *Sampler) read(dst []int32, start int) {
	readStream(s.shards, s.starts, dst, start)
}

func readStream(shards []*Shard, starts []int, dst []int32, start int) {
	i := len(starts) - 1
	for i > 0 && starts[i] > start {
		i--
	}
	for len(dst) > 0 {
		off := start - starts[i]
		n := min(len(dst), shards[i].Len()-off)
		if n > 0 {
			shards[i].Read(dst[:n], off)
			dst, start = dst[n:], start+n
		}
		i++
	}
}

// Sequential yields batches of consecutive, non-overlapping windows from
// the start of the stream, at most maxBatches of them (0: all full
// batches): the deterministic pass used for held-out loss.
func Sequential(shards []*Shard, B, T, maxBatches int) iter.Seq[Batch] {
	return func(yield func(Batch) bool) {
		var starts []int
		total := 0
		for _, sh := range shards {
			starts = append(starts, total)
			total += sh.Len()
		}
		windows := 0
		if total > T {
			windows = (total - 1) / T
		}
		buf := make([]int32, T+1)
		for k := 0; (k+1)*B <= windows && (maxBatches <= 0 || k < maxBatches); k++ {
			b := NewBatch(B, T)
			for r := range B {
				readStream(shards, starts, buf, (k*B+r)*T)
				copy(b.IDs[r*T:], buf[:T])
				copy(b.Labels[r*T:], buf[1:])
				for t := range T {
					b.Pos[r*T+t] = int32(t)
				}
			}
			if !yield(b) {
				return
			}
		}
	}
}
