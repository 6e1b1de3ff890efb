package tokenizer

import (
	"container/heap"
	"math"
)

// bpeModel is the byte-pair-encoding model: a vocabulary and a table of
// merges. Symbols are token ids throughout, so merging never builds strings:
// merges maps the pair (left id, right id) to (rank, merged id). A word is
// merged the way HF tokenizers and tiktoken do it: repeatedly the pair of
// lowest rank, the leftmost one among equals, until no pair merges.
//
// Example: with merges "h e" (rank 0) and "he llo"... "hello" -> [h e l l o]
// -> [he l l o] -> ... by rank, never by position first.
type bpeModel struct {
	vocab  map[string]int32 // token string -> id (model vocabulary only)
	pieces []string         // id -> token string ("" for ids the model lacks)
	merges map[uint64]uint64

	unk          int32 // -1: none
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool       // a word that is itself in the vocabulary is not merged (Llama 3)
	byteTok      [256]int32 // id of "<0xXX>" for byte fallback, -1 if absent
}

const noMerge = math.MaxUint64

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// lookup returns rank<<32 | merged id for the pair, or noMerge.
func (m *bpeModel) lookup(a, b int32) uint64 {
	if v, ok := m.merges[pairKey(a, b)]; ok {
		return v
	}
	return noMerge
}

// smallWord is the longest word merged with the quadratic scan; longer ones
// go through the heap. The scan is faster for the short words that a
// pre-tokenizer produces; the heap keeps a whole-text word (SentencePiece
// style, no pre-tokenizer) at n log n.
const smallWord = 64

// merge merges the symbols of one word in place and returns them.
func (m *bpeModel) merge(syms []int32, scratch *[]uint64) []int32 {
	if len(syms) < 2 {
		return syms
	}
	if len(syms) > smallWord {
		return m.mergeHeap(syms)
	}
	ranks := (*scratch)[:0]
	for k := 0; k+1 < len(syms); k++ {
		ranks = append(ranks, m.lookup(syms[k], syms[k+1]))
	}
	*scratch = ranks
	n := len(syms)
	for n > 1 {
		// ranks[k] packs rank<<32|id: the minimum is the lowest rank and,
		// for equal ranks (the same pair), the leftmost.
		best, bi := uint64(noMerge), -1
		for k, r := range ranks[:n-1] {
			if r < best {
				best, bi = r, k
			}
		}
		if bi < 0 {
			break
		}
		syms[bi] = int32(uint32(best))
		copy(syms[bi+1:n-1], syms[bi+2:n])
		copy(ranks[bi:n-2], ranks[bi+1:n-1])
		n--
		if bi > 0 {
			ranks[bi-1] = m.lookup(syms[bi-1], syms[bi])
		}
		if bi+1 < n {
			ranks[bi] = m.lookup(syms[bi], syms[bi+1])
		}
	}
	return syms[:n]
}

// mergeNaive is the reference for merge: it rescans every pair after every
// merge. Tests compare the two.
func (m *bpeModel) mergeNaive(syms []int32) []int32 {
	syms = append([]int32(nil), syms...)
	for {
		best, bi := uint64(noMerge), -1
		for k := 0; k+1 < len(syms); k++ {
			if r := m.lookup(syms[k], syms[k+1]); r < best {
				best, bi = r, k
			}
		}
		if bi < 0 {
			return syms
		}
		syms[bi] = int32(uint32(best))
		syms = append(syms[:bi+1], syms[bi+2:]...)
	}
}

// pairItem is a candidate merge of the symbol at pos with its right
// neighbour; it is stale once either side changed.
type pairItem struct {
	rank uint64 // rank<<32 | merged id
	pos  int32
}

type pairHeap []pairItem

func (h pairHeap) Len() int { return len(h) }
func (h pairHeap) Less(i, j int) bool {
	if h[i].rank>>32 != h[j].rank>>32 {
		return h[i].rank < h[j].rank
	}
	return h[i].pos < h[j].pos
}
func (h pairHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pairHeap) Push(x any)   { *h = append(*h, x.(pairItem)) }
func (h *pairHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// mergeHeap merges a long word with a heap of candidate pairs over a linked
// list of symbols: O(n log n).
func (m *bpeModel) mergeHeap(syms []int32) []int32 {
	n := len(syms)
	next := make([]int32, n) // -1 at the end
	prev := make([]int32, n) // -1 at the start
	h := make(pairHeap, 0, n)
	for k := 0; k < n; k++ {
		next[k], prev[k] = int32(k+1), int32(k-1)
		if k+1 < n {
			if r := m.lookup(syms[k], syms[k+1]); r != noMerge {
				h = append(h, pairItem{r, int32(k)})
			}
		}
	}
	next[n-1] = -1
	heap.Init(&h)
	dead := make([]bool, n)
	for h.Len() > 0 {
		it := heap.Pop(&h).(pairItem)
		p := it.pos
		q := next[p]
		if dead[p] || q < 0 || m.lookup(syms[p], syms[q]) != it.rank {
			continue
		}
		syms[p] = int32(uint32(it.rank))
		dead[q] = true
		next[p] = next[q]
		if next[q] >= 0 {
			prev[next[q]] = p
		}
		if l := prev[p]; l >= 0 {
			if r := m.lookup(syms[l], syms[p]); r != noMerge {
				heap.Push(&h, pairItem{r, l})
			}
		}
		if r := next[p]; r >= 0 {
			if rk := m.lookup(syms[p], syms[r]); rk != noMerge {
				heap.Push(&h, pairItem{rk, p})
			}
		}
	}
	out := syms[:0]
	for k := int32(0); k >= 0; k = next[k] {
		out = append(out, syms[k])
	}
	return out
}
