package data

import (
	"fmt"
	"sort"
)

// PadSeg is the segment id of padding positions in a packed batch: padding
// attends only to padding, never to an example.
const PadSeg int32 = -1

// putExample writes e at row offset off of dst (row length T), shifting its
// labels: the target at position t is e.Labels[t+1], and the last position
// of the example predicts nothing (the next token belongs to another
// example or is padding).
func putExample(ids, labels, pos []int32, e Example) {
	n := len(e.IDs)
	copy(ids, e.IDs)
	copy(labels, e.Labels[1:])
	labels[n-1] = IgnoreIndex
	for t := range n {
		pos[t] = int32(t)
	}
}

// Collate pads examples to rows of T tokens, one example a row (Seg nil;
// causal attention needs no mask for right padding). pad fills the IDs of
// padding positions; their labels are IgnoreIndex.
//
// Example: IDs [5 6 7], Labels [-100 6 7], T 4 gives the row
// IDs [5 6 7 pad], Labels [6 7 -100 -100], Pos [0 1 2 3].
func Collate(examples []Example, T int, pad int32) (Batch, error) {
	b := NewBatch(len(examples), T)
	for i, e := range examples {
		if err := checkExample(e, i, T); err != nil {
			return Batch{}, err
		}
		row := i * T
		putExample(b.IDs[row:], b.Labels[row:], b.Pos[row:], e)
		for t := len(e.IDs); t < T; t++ {
			b.IDs[row+t], b.Labels[row+t], b.Pos[row+t] = pad, IgnoreIndex, int32(t)
		}
	}
	return b, nil
}

func checkExample(e Example, i, T int) error {
	if len(e.IDs) == 0 || len(e.IDs) != len(e.Labels) {
		return fmt.Errorf("data: example %d has %d ids and %d labels; want the same, non-zero", i, len(e.IDs), len(e.Labels))
	}
	if len(e.IDs) > T {
		return fmt.Errorf("data: example %d has %d tokens, more than the row length %d (build with Ctx %d)", i, len(e.IDs), T, T)
	}
	return nil
}

// Pack places examples several to a row of T tokens (first fit, longest
// first), so short examples do not waste compute on padding. Each example
// gets its own segment id within its row (0, 1, ...) and positions that
// restart at 0, so with Seg as the attention's QSeg/KSeg no token attends
// across an example boundary and each example sees the positions it would
// see alone. Padding has segment PadSeg, id pad and label IgnoreIndex.
//
// Example: T 6, examples of lengths 4, 2 and 3 give two rows:
//
//	row 0: seg [0 0 0 0 1 1]   pos [0 1 2 3 0 1]
//	row 1: seg [0 0 0 -1 -1 -1] pos [0 1 2 0 1 2]
func Pack(examples []Example, T int, pad int32) (Batch, error) {
	order := make([]int, len(examples))
	for i := range order {
		order[i] = i
		if err := checkExample(examples[i], i, T); err != nil {
			return Batch{}, err
		}
	}
	sort.SliceStable(order, func(a, b int) bool { return len(examples[order[a]].IDs) > len(examples[order[b]].IDs) })
	// First fit over open rows. O(examples × rows), fine for SFT-sized sets;
	// rows that fill up are skipped cheaply by keeping only open ones.
	type row struct {
		used int
		ex   []int
	}
	var rows []*row
	var open []*row
	for _, i := range order {
		n := len(examples[i].IDs)
		placed := false
		for k, r := range open {
			if T-r.used >= n {
				r.used += n
				r.ex = append(r.ex, i)
				placed = true
				if T-r.used == 0 {
					open = append(open[:k], open[k+1:]...)
				}
				break
			}
		}
		if !placed {
			r := &row{used: n, ex: []int{i}}
			rows = append(rows, r)
			if n < T {
				open = append(open, r)
			}
		}
	}
	b := NewBatch(len(rows), T)
	b.Seg = make([]int32, len(rows)*T)
	for ri, r := range rows {
		off := ri * T
		for s, i := range r.ex {
			e := examples[i]
			n := len(e.IDs)
			putExample(b.IDs[off:], b.Labels[off:], b.Pos[off:], e)
			for t := range n {
				b.Seg[off+t] = int32(s)
			}
			off += n
		}
		for t := 0; off < (ri+1)*T; t, off = t+1, off+1 {
			b.IDs[off], b.Labels[off], b.Pos[off], b.Seg[off] = pad, IgnoreIndex, int32(t), PadSeg
		}
	}
	return b, nil
}
