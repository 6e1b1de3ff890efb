package tokenizer

import (
	"container/heap"
	"errors"
	"fmt"
	"iter"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// TrainOptions configures Train.
type TrainOptions struct {
	// VocabSize is the size of the result: 256 byte tokens, the special
	// tokens, and one token per merge.
	VocabSize int
	// SpecialTokens get the ids right after the bytes, in order; they are
	// cut out of the training text. Default: ["<|endoftext|>"], so EOS is
	// id 256 as in ByteLevelJSON.
	SpecialTokens []string
	// MinFrequency stops training early when the best pair occurs fewer
	// times than this (default 2: a pair seen once is not worth a token).
	MinFrequency int
	// Workers count words in parallel (default GOMAXPROCS).
	Workers int
}

// Train learns a byte-level BPE tokenizer in GPT-2's style (the GPT-2 split
// pattern, ByteLevel pre-tokenizer and decoder) from texts. Each text is
// split on its own, so callers that read files in chunks should cut at line
// ends. The result is the tokenizer.json HF tokenizers writes for such a
// model; Save writes it out.
//
// Words are counted once (in parallel); then each merge updates the pair
// counts of only the words that contain the merged pair, and a max-heap
// with lazy deletion finds the next best pair. Ties go to the pair with the
// smaller ids, so the result does not depend on the number of workers.
//
// Example: on "low low lower" the first merge is "l o" (3 times, tied with
// "o w" and won by the smaller ids), then "lo w".
func Train(texts iter.Seq[string], opts TrainOptions) (*Tokenizer, error) {
	if opts.SpecialTokens == nil {
		opts.SpecialTokens = []string{"<|endoftext|>"}
	}
	if opts.MinFrequency == 0 {
		opts.MinFrequency = 2
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	base := 256 + len(opts.SpecialTokens)
	if opts.VocabSize < base {
		return nil, fmt.Errorf("vocab size %d is less than the %d byte and special tokens", opts.VocabSize, base)
	}
	seen := map[string]bool{}
	for _, s := range opts.SpecialTokens {
		if s == "" || seen[s] {
			return nil, fmt.Errorf("special token %q is empty or repeated", s)
		}
		seen[s] = true
	}
	counts := countWords(texts, opts.SpecialTokens, opts.Workers)
	tab := newByteLevelTables()

	// id -> raw bytes of each token; ids [256, base) are the specials.
	tokBytes := make([]string, 0, opts.VocabSize)
	for b := 0; b < 256; b++ {
		tokBytes = append(tokBytes, string([]byte{byte(b)}))
	}
	tokBytes = append(tokBytes, opts.SpecialTokens...)
	byBytes := map[string]int32{}
	for b := 0; b < 256; b++ {
		byBytes[tokBytes[b]] = int32(b)
	}

	tr := newTrainer(counts)
	var merges []string
	for len(tokBytes) < opts.VocabSize {
		p, n, ok := tr.best()
		if !ok || n < int64(opts.MinFrequency) {
			break
		}
		a, b := int32(p>>32), int32(uint32(p))
		s := tokBytes[a] + tokBytes[b]
		z, exists := byBytes[s]
		if !exists {
			z = int32(len(tokBytes))
			tokBytes = append(tokBytes, s)
			byBytes[s] = z
		}
		merges = append(merges, tab.encode(tokBytes[a])+" "+tab.encode(tokBytes[b]))
		tr.merge(a, b, z)
	}

	vocab := make(map[string]int32, len(tokBytes))
	for id, s := range tokBytes {
		if id >= 256 && id < base {
			continue // specials are added by byteLevelDoc at these ids
		}
		vocab[tab.encode(s)] = int32(id)
	}
	for i, s := range opts.SpecialTokens {
		vocab[s] = int32(256 + i)
	}
	doc, err := byteLevelDoc(vocab, merges, opts.SpecialTokens)
	if err != nil {
		return nil, err
	}
	return FromJSON(doc)
}

// countWords splits texts with the GPT-2 pattern, after cutting out the
// special tokens, and counts each piece.
func countWords(texts iter.Seq[string], specials []string, workers int) map[string]int64 {
	work := make(chan string, workers)
	parts := make([]map[string]int64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := map[string]int64{}
			for text := range work {
				text = validUTF8(text)
				for _, seg := range cutSpecials(text, specials) {
					for i := 0; i < len(seg); {
						j := matchGPT2(seg, i)
						m[seg[i:j]]++
						i = j
					}
				}
			}
			parts[w] = m
		}()
	}
	for text := range texts {
		work <- text
	}
	close(work)
	wg.Wait()
	total := parts[0]
	for _, m := range parts[1:] {
		for k, v := range m {
			total[k] += v
		}
	}
	return total
}

// cutSpecials returns the text between occurrences of the special tokens.
func cutSpecials(s string, specials []string) []string {
	segs := []string{s}
	for _, sp := range specials {
		var next []string
		for _, seg := range segs {
			next = append(next, strings.Split(seg, sp)...)
		}
		segs = next
	}
	return segs
}

// trainer holds the words and pair statistics during training.
type trainer struct {
	words [][]int32 // symbols of each distinct word
	freq  []int64   // occurrences of each word
	count map[uint64]int64
	where map[uint64][]int32 // words that contain (or once contained) a pair
	h     countHeap
	stamp []int32 // per word: the last merge that visited it
	step  int32
	delta map[uint64]int64
}

func newTrainer(counts map[string]int64) *trainer {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys) // word order, and so ties, independent of map order
	tr := &trainer{count: map[uint64]int64{}, where: map[uint64][]int32{}, delta: map[uint64]int64{}}
	for wi, k := range keys {
		syms := make([]int32, len(k))
		for i := 0; i < len(k); i++ {
			syms[i] = int32(k[i])
		}
		tr.words = append(tr.words, syms)
		tr.freq = append(tr.freq, counts[k])
		for i := 0; i+1 < len(syms); i++ {
			p := pairKey(syms[i], syms[i+1])
			tr.count[p] += counts[k]
			if w := tr.where[p]; len(w) == 0 || w[len(w)-1] != int32(wi) {
				tr.where[p] = append(w, int32(wi))
			}
		}
	}
	tr.stamp = make([]int32, len(tr.words))
	for p, n := range tr.count {
		tr.h = append(tr.h, pairCount{n, p})
	}
	heap.Init(&tr.h)
	return tr
}

// best pops the most frequent pair, skipping stale heap entries.
func (tr *trainer) best() (uint64, int64, bool) {
	for tr.h.Len() > 0 {
		top := tr.h[0]
		cur := tr.count[top.pair]
		if cur == top.n {
			heap.Pop(&tr.h)
			return top.pair, top.n, true
		}
		// Counts of old pairs only fall, so a stale entry is re-queued
		// with its current count.
		heap.Pop(&tr.h)
		if cur > 0 {
			heap.Push(&tr.h, pairCount{cur, top.pair})
		}
	}
	return 0, 0, false
}

// merge replaces (a, b) with z in every word that has it, updating the
// pair counts by the difference each word's pairs make.
func (tr *trainer) merge(a, b, z int32) {
	tr.step++
	p := pairKey(a, b)
	clear(tr.delta)
	for _, wi := range tr.where[p] {
		if tr.stamp[wi] == tr.step {
			continue
		}
		tr.stamp[wi] = tr.step
		w := tr.words[wi]
		f := tr.freq[wi]
		hit := false
		for i := 0; i+1 < len(w); i++ {
			if w[i] == a && w[i+1] == b {
				hit = true
				break
			}
		}
		if !hit {
			continue
		}
		for i := 0; i+1 < len(w); i++ {
			tr.delta[pairKey(w[i], w[i+1])] -= f
		}
		out := w[:0]
		for i := 0; i < len(w); i++ {
			if i+1 < len(w) && w[i] == a && w[i+1] == b {
				out = append(out, z)
				i++
			} else {
				out = append(out, w[i])
			}
		}
		w = out
		tr.words[wi] = w
		for i := 0; i+1 < len(w); i++ {
			q := pairKey(w[i], w[i+1])
			tr.delta[q] += f
			if (w[i] == z || w[i+1] == z) && tr.stamp[wi] == tr.step {
				if l := tr.where[q]; len(l) == 0 || l[len(l)-1] != wi {
					tr.where[q] = append(l, wi)
				}
			}
		}
	}
	delete(tr.where, p)
	for q, d := range tr.delta {
		if d == 0 {
			continue
		}
		n := tr.count[q] + d
		if n <= 0 {
			delete(tr.count, q)
			continue
		}
		tr.count[q] = n
		if d > 0 {
			heap.Push(&tr.h, pairCount{n, q})
		}
	}
}

type pairCount struct {
	n    int64
	pair uint64
}

// countHeap is a max-heap on count, then the smaller pair.
type countHeap []pairCount

func (h countHeap) Len() int { return len(h) }
func (h countHeap) Less(i, j int) bool {
	if h[i].n != h[j].n {
		return h[i].n > h[j].n
	}
	return h[i].pair < h[j].pair
}
func (h countHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *countHeap) Push(x any)   { *h = append(*h, x.(pairCount)) }
func (h *countHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// ByteLevelJSON returns a byte-level BPE tokenizer.json with no merges: the
// 256 byte tokens (id = byte value) and "<|endoftext|>" as id 256, which is
// both BOS and EOS. Every text encodes to its bytes.
func ByteLevelJSON() []byte {
	tab := newByteLevelTables()
	vocab := make(map[string]int32, 257)
	for b := 0; b < 256; b++ {
		vocab[tab.str[b]] = int32(b)
	}
	doc, err := byteLevelDoc(vocab, nil, []string{"<|endoftext|>"})
	if err != nil {
		panic(err) // a constant document: cannot fail
	}
	return doc
}

var errNoText = errors.New("no training text")
