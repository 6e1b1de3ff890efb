package tokenizer

import (
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"runtime"
	"sort"
	"sync"
)

// TrainOptions configures Train.
type TrainOptions struct {
	VocabSize int      // total ids: 256 bytes + merges + special tokens
	Special   []string // added special tokens, given the last ids in order
	// Progress, when set, is called now and then with merges done and wanted.
	Progress func(done, total int)
	Workers  int // pre-tokenisation goroutines (0: all cores)
}

type pair [2]int32

type pairItem struct {
	p     pair
	count int64
}

type pairHeap []pairItem

func (h pairHeap) Len() int { return len(h) }
func (h pairHeap) Less(i, j int) bool {
	if h[i].count != h[j].count {
		return h[i].count > h[j].count
	}
	if h[i].p[0] != h[j].p[0] {
		return h[i].p[0] < h[j].p[0]
	}
	return h[i].p[1] < h[j].p[1]
}
func (h pairHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pairHeap) Push(x any)   { *h = append(*h, x.(pairItem)) }
func (h *pairHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Train learns a byte-level BPE vocabulary with GPT-2's pre-tokenizer.
// Pair counts are kept incrementally with a max-heap (stale entries are
// skipped when popped), so each merge touches only the words that contain
// the merged pair. Ties go to the pair with the smaller ids.
func Train(texts iter.Seq[string], o TrainOptions) (*Tokenizer, error) {
	merges := o.VocabSize - 256 - len(o.Special)
	if merges < 0 {
		return nil, fmt.Errorf("tokenizer: vocab size %d is smaller than 256 bytes + %d special tokens", o.VocabSize, len(o.Special))
	}
	// Count pre-tokens, in parallel over texts.
	workers := o.Workers
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	ch := make(chan string, 64)
	counts := make([]map[string]int64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		counts[w] = map[string]int64{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for text := range ch {
				splitGPT2(text, func(p string) { counts[w][p]++ })
			}
		}()
	}
	for t := range texts {
		ch <- t
	}
	close(ch)
	wg.Wait()
	total := counts[0]
	for _, c := range counts[1:] {
		for k, v := range c {
			total[k] += v
		}
	}
	if len(total) == 0 {
		return nil, errors.New("tokenizer: no training text")
	}
	// Words as symbol sequences, in a deterministic order.
	keys := make([]string, 0, len(total))
	for k := range total {
		keys = append(keys, k)
	}
	sortStrings(keys)
	words := make([][]int32, len(keys))
	freq := make([]int64, len(keys))
	for i, k := range keys {
		w := make([]int32, len(k))
		for j := 0; j < len(k); j++ {
			w[j] = int32(k[j])
		}
		words[i], freq[i] = w, total[k]
	}
	pc := map[pair]int64{}
	where := map[pair]map[int32]struct{}{}
	for i, w := range words {
		for j := 0; j+1 < len(w); j++ {
			p := pair{w[j], w[j+1]}
			pc[p] += freq[i]
			if where[p] == nil {
				where[p] = map[int32]struct{}{}
			}
			where[p][int32(i)] = struct{}{}
		}
	}
	h := make(pairHeap, 0, len(pc))
	for p, c := range pc {
		h = append(h, pairItem{p, c})
	}
	heap.Init(&h)
	// Symbol strings (as bytes) for each id.
	sym := make([][]byte, 256, 256+merges)
	for b := range 256 {
		sym[b] = []byte{byte(b)}
	}
	var mergeList []pair
	for len(mergeList) < merges && h.Len() > 0 {
		it := heap.Pop(&h).(pairItem)
		if c := pc[it.p]; c != it.count || c <= 0 {
			continue // stale
		}
		if it.count < 2 {
			break // nothing repeats any more
		}
		id := int32(len(sym))
		sym = append(sym, append(append([]byte(nil), sym[it.p[0]]...), sym[it.p[1]]...))
		mergeList = append(mergeList, it.p)
		touched := map[pair]struct{}{}
		for wi := range where[it.p] {
			w := words[wi]
			f := freq[wi]
			for j := 0; j+1 < len(w); j++ {
				q := pair{w[j], w[j+1]}
				pc[q] -= f
				touched[q] = struct{}{}
			}
			out := w[:0]
			for j := 0; j < len(w); j++ {
				if j+1 < len(w) && w[j] == it.p[0] && w[j+1] == it.p[1] {
					out = append(out, id)
					j++
				} else {
					out = append(out, w[j])
				}
			}
			words[wi] = out
			for j := 0; j+1 < len(out); j++ {
				q := pair{out[j], out[j+1]}
				pc[q] += f
				touched[q] = struct{}{}
				if where[q] == nil {
					where[q] = map[int32]struct{}{}
				}
				where[q][wi] = struct{}{}
			}
		}
		delete(where, it.p)
		delete(pc, it.p)
		for q := range touched {
			if c := pc[q]; c > 0 {
				heap.Push(&h, pairItem{q, c})
			} else {
				delete(pc, q)
			}
		}
		if o.Progress != nil && len(mergeList)%256 == 0 {
			o.Progress(len(mergeList), merges)
		}
	}
	if o.Progress != nil {
		o.Progress(len(mergeList), merges)
	}
	return fromTrained(sym, mergeList, o.Special)
}

func fromTrained(sym [][]byte, merges []pair, special []string) (*Tokenizer, error) {
	b2r, _ := byteTables()
	str := func(b []byte) string {
		r := make([]rune, len(b))
		for i, c := range b {
			r[i] = b2r[c]
		}
		return string(r)
	}
	vocab := make(map[string]int, len(sym))
	for id, s := range sym {
		vocab[str(s)] = id
	}
	ms := make([][2]string, len(merges))
	for i, p := range merges {
		ms[i] = [2]string{str(sym[p[0]]), str(sym[p[1]])}
	}
	var added []any
	for i, s := range special {
		added = append(added, map[string]any{"id": len(sym) + i, "content": s, "single_word": false,
			"lstrip": false, "rstrip": false, "normalized": false, "special": true})
	}
	bl := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
	doc := map[string]any{
		"version": "1.0", "added_tokens": added, "normalizer": nil, "pre_tokenizer": bl,
		"post_processor": bl, "decoder": bl,
		"model": map[string]any{"type": "BPE", "vocab": vocab, "merges": ms, "byte_fallback": false},
	}
	js, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return FromJSON(js)
}

func sortStrings(s []string) { sort.Strings(s) }
