// Package generate turns a model into text: a KV-cached decoding loop over
// one or many prompts at once, samplers (greedy, temperature, top-k, top-p,
// min-p, repetition penalty) with an explicit seeded RNG, stop strings and
// end-of-sequence handling, and streaming of tokens as they are made.
//
// Batch is the one decoding loop: a slot-based decoder for continuous
// batching, where sequences join a running batch between steps and leave
// when done, each with its own cache region, positions and sampler (a
// server drives it from one goroutine). Generator.Generate and Begin/Step
// are a Batch that all of a request's prompts join at once.
package generate

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Sampling holds the sampler settings. The zero value is greedy decoding.
type Sampling struct {
	Temperature       float64 // 0: greedy (argmax)
	TopK              int     // 0: off
	TopP              float64 // 0 or 1: off
	MinP              float64 // 0: off; keep tokens with p >= MinP * p_max
	RepetitionPenalty float64 // 0 or 1: off; CTRL-style, on tokens already in the context
}

// Validate checks the ranges.
func (s Sampling) Validate() error {
	switch {
	case s.Temperature < 0 || math.IsNaN(s.Temperature):
		return fmt.Errorf("temperature must be >= 0, got %v", s.Temperature)
	case s.TopK < 0:
		return fmt.Errorf("top-k must be >= 0, got %d", s.TopK)
	case s.TopP < 0 || s.TopP > 1:
		return fmt.Errorf("top-p must be in [0, 1], got %v", s.TopP)
	case s.MinP < 0 || s.MinP > 1:
		return fmt.Errorf("min-p must be in [0, 1], got %v", s.MinP)
	case s.RepetitionPenalty < 0:
		return fmt.Errorf("repetition penalty must be >= 0, got %v", s.RepetitionPenalty)
	}
	return nil
}

// Sampler draws tokens from logits. It owns scratch buffers, so one
// Sampler serves one goroutine; sampling allocates nothing per token.
type Sampler struct {
	S     Sampling
	rng   *rand.Rand
	probs []float64
	idx   []int32
	seen  []bool
}

// NewSampler returns a sampler with a seeded RNG.
func NewSampler(s Sampling, seed uint64) *Sampler {
	return &Sampler{S: s, rng: rand.New(rand.NewPCG(seed, 0x6e6e))}
}

// Sample picks the next token from logits (V). context holds the tokens
// so far (for the repetition penalty). logits is modified in place.
func (sm *Sampler) Sample(logits []float32, context []int32) int32 {
	s := sm.S
	if s.RepetitionPenalty > 0 && s.RepetitionPenalty != 1 {
		// Once per distinct token, as HF's gather/scatter does.
		if len(sm.seen) < len(logits) {
			sm.seen = make([]bool, len(logits))
		}
		p := float32(s.RepetitionPenalty)
		for _, id := range context {
			if id < 0 || int(id) >= len(logits) || sm.seen[id] {
				continue
			}
			sm.seen[id] = true
			if l := logits[id]; l > 0 {
				logits[id] = l / p
			} else {
				logits[id] = l * p
			}
		}
		for _, id := range context {
			if id >= 0 && int(id) < len(logits) {
				sm.seen[id] = false
			}
		}
	}
	if s.Temperature == 0 {
		return argmax(logits)
	}
	V := len(logits)
	if cap(sm.probs) < V {
		sm.probs = make([]float64, V)
		sm.idx = make([]int32, V)
	}
	probs, idx := sm.probs[:V], sm.idx[:V]
	maxL := float64(logits[argmax(logits)])
	inv := 1 / s.Temperature
	for i, l := range logits {
		probs[i] = math.Exp((float64(l) - maxL) * inv)
		idx[i] = int32(i)
	}
	n := V
	needSort := (s.TopK > 0 && s.TopK < V) || (s.TopP > 0 && s.TopP < 1)
	if needSort {
		// Most probable first, ties by id: a total order, so any sort gives
		// the same result. slices.SortFunc allocates nothing per token.
		slices.SortFunc(idx, func(a, b int32) int {
			pa, pb := probs[a], probs[b]
			switch {
			case pa > pb:
				return -1
			case pa < pb:
				return 1
			}
			return cmp.Compare(a, b)
		})
		if s.TopK > 0 && s.TopK < n {
			n = s.TopK
		}
		if s.TopP > 0 && s.TopP < 1 {
			var tot float64
			for i := 0; i < n; i++ {
				tot += probs[idx[i]]
			}
			var cum float64
			for i := 0; i < n; i++ {
				cum += probs[idx[i]] / tot
				if cum >= s.TopP {
					n = i + 1
					break
				}
			}
		}
	}
	if s.MinP > 0 {
		pmax := 1.0 // exp(0) at the max logit
		k := 0
		for i := 0; i < n; i++ {
			if probs[idx[i]] >= s.MinP*pmax {
				idx[k] = idx[i]
				k++
			}
		}
		n = k
	}
	var tot float64
	for i := 0; i < n; i++ {
		tot += probs[idx[i]]
	}
	r := sm.rng.Float64() * tot
	for i := 0; i < n; i++ {
		r -= probs[idx[i]]
		if r < 0 {
			return idx[i]
		}
	}
	return idx[n-1]
}

func argmax(x []float32) int32 {
	best, bi := float32(math.Inf(-1)), 0
	for i, v := range x {
		if v > best {
			best, bi = v, i
		}
	}
	return int32(bi)
}
