package generate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"llmlab/core/autograd"
	"llmlab/core/model"
	"llmlab/core/tensor"
)

// Decoder turns token ids back into text (a *tokenizer.Tokenizer).
type Decoder interface {
	Decode(ids []int32) string
}

// Request is one generation call over one or more prompts.
type Request struct {
	Prompts   [][]int32 // token ids, one slice per sequence
	MaxTokens int       // new tokens per sequence
	Sampling  Sampling
	Seed      uint64
	// StopIDs end a sequence when generated (usually the EOS token); the
	// stop token is not part of the text.
	StopIDs []int32
	// StopStrings end a sequence when its text contains one; the text is
	// cut before it.
	StopStrings []string
	// OnText, when set, receives each sequence's new text as soon as it is
	// complete UTF-8 and known not to be part of a stop string. Returning
	// false stops generation.
	OnText func(seq int, text string) bool
}

// Result holds what each sequence generated.
type Result struct {
	IDs    [][]int32 // generated ids (without the stop token)
	Text   []string
	Finish []string // "stop" or "length"
	Tokens int      // generated tokens over all sequences
	// Elapsed covers prompt processing and decoding.
	Elapsed time.Duration
}

// TokensPerSecond is generated tokens over elapsed time.
func (r Result) TokensPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Tokens) / r.Elapsed.Seconds()
}

// Generator runs requests against one model; it keeps its tape, cache and
// buffers between calls, so it is not safe for concurrent use.
type Generator struct {
	M   *model.Transformer
	B   tensor.Backend
	Tok Decoder

	tape  *autograd.Tape
	cache *model.Cache
}

// New returns a Generator.
func New(m *model.Transformer, b tensor.Backend, tok Decoder) *Generator {
	t := autograd.NewTape(b)
	t.NoGrad = true
	return &Generator{M: m, B: b, Tok: tok, tape: t}
}

// Generate runs req. Prompts of different lengths are left-padded; a
// sequence's tokens never attend to its padding, so batched generation
// gives each sequence what generating it alone would.
func (g *Generator) Generate(ctx context.Context, req Request) (Result, error) {
	r, err := g.Begin(req)
	if err != nil {
		return Result{}, err
	}
	for {
		if err := ctx.Err(); err != nil {
			return r.res, err
		}
		done, err := r.Step()
		if err != nil {
			return r.res, err
		}
		if done {
			return r.Finish(), nil
		}
	}
}

// Run is a generation in progress, advanced one token at a time by Step
// (the browser build interleaves steps with its event loop).
type Run struct {
	g        *Generator
	req      Request
	start    time.Time
	res      Result
	done     []bool
	emitted  []int
	samplers []*Sampler
	contexts [][]int32
	row      []float32
	next     []int32
	stepPos  []int32
	stepSeg  []int32
	in       model.Inputs
	step     int
	maxNew   int
	stopped  bool
}

// Begin prepares req: checks it, sizes the cache and lays out the prompts.
func (g *Generator) Begin(req Request) (*Run, error) {
	if err := req.Sampling.Validate(); err != nil {
		return nil, err
	}
	nb := len(req.Prompts)
	if nb == 0 {
		return nil, errors.New("generate: no prompts")
	}
	maxP := 0
	for i, p := range req.Prompts {
		if len(p) == 0 {
			return nil, fmt.Errorf("generate: prompt %d is empty", i)
		}
		maxP = max(maxP, len(p))
	}
	ctxLen := g.M.Cfg.ContextLen()
	if maxP >= ctxLen {
		return nil, fmt.Errorf("generate: prompt of %d tokens does not fit the context of %d", maxP, ctxLen)
	}
	maxNew := req.MaxTokens
	if maxNew <= 0 {
		maxNew = 128
	}
	if maxP+maxNew > ctxLen {
		maxNew = ctxLen - maxP
	}
	capacity := maxP + maxNew
	if g.cache == nil || g.cache.B != nb || g.cache.Cap < capacity {
		a, onDevice := g.B.(tensor.Allocator)
		if g.cache != nil && onDevice {
			g.cache.Free(a)
		}
		g.cache = g.M.NewCache(nb, capacity)
		if onDevice {
			g.cache.Place(a) // the keys and values stay on the device
		}
	}
	g.cache.Reset()
	// Left-pad the prompts: pad tokens get segment 0 and position 0; real
	// tokens segment 1 and positions from 0.
	ids := make([]int32, nb*maxP)
	pos := make([]int32, nb*maxP)
	seg := make([]int32, nb*maxP)
	for b, p := range req.Prompts {
		pad := maxP - len(p)
		for i, id := range p {
			ids[b*maxP+pad+i] = id
			pos[b*maxP+pad+i] = int32(i)
			seg[b*maxP+pad+i] = 1
		}
	}
	r := &Run{g: g, req: req, start: time.Now(), maxNew: maxNew,
		res:  Result{IDs: make([][]int32, nb), Text: make([]string, nb), Finish: make([]string, nb)},
		done: make([]bool, nb), emitted: make([]int, nb), samplers: make([]*Sampler, nb), contexts: make([][]int32, nb),
		row: make([]float32, g.M.Cfg.VocabSize), next: make([]int32, nb), stepPos: make([]int32, nb), stepSeg: make([]int32, nb)}
	for b := range r.samplers {
		r.samplers[b] = NewSampler(req.Sampling, req.Seed+uint64(b)*0x9e3779b97f4a7c15)
		r.contexts[b] = append([]int32(nil), req.Prompts[b]...)
		r.stepSeg[b] = 1
	}
	r.in = model.Inputs{B: nb, T: maxP, IDs: ids, Pos: pos, Seg: seg, Cache: g.cache}
	return r, nil
}

// Step generates one token for every unfinished sequence and reports
// whether the run is over.
func (r *Run) Step() (bool, error) {
	if r.stopped || r.step >= r.maxNew {
		return true, nil
	}
	g, req, nb := r.g, r.req, len(r.req.Prompts)
	V := g.M.Cfg.VocabSize
	g.tape.Reset()
	h, err := g.M.Hidden(g.tape, r.in)
	if err != nil {
		return true, err
	}
	last := lastRows(g.tape, h, nb, r.in.T)
	logits := g.M.Logits(g.tape, last).Value // (nb, V)
	live := 0
	for b := 0; b < nb; b++ {
		if r.done[b] {
			r.next[b] = 0
			continue
		}
		copy(r.row, logits.F32[b*V:(b+1)*V])
		id := r.samplers[b].Sample(r.row, r.contexts[b])
		r.next[b] = id
		if isStop(id, req.StopIDs) {
			r.done[b], r.res.Finish[b] = true, "stop"
			continue
		}
		r.res.IDs[b] = append(r.res.IDs[b], id)
		r.contexts[b] = append(r.contexts[b], id)
		r.res.Tokens++
		live++
		if g.Tok != nil {
			text := g.Tok.Decode(r.res.IDs[b])
			if cut, ok := cutStop(text, req.StopStrings); ok {
				r.res.Text[b], r.done[b], r.res.Finish[b] = cut, true, "stop"
			} else {
				r.res.Text[b] = text
			}
			if req.OnText != nil {
				safe := streamable(r.res.Text[b], req.StopStrings, r.done[b])
				if safe > r.emitted[b] {
					if !req.OnText(b, r.res.Text[b][r.emitted[b]:safe]) {
						r.stopped = true
						return true, context.Canceled
					}
					r.emitted[b] = safe
				}
			}
		}
	}
	r.step++
	if live == 0 || allDone(r.done) {
		return true, nil
	}
	for b := 0; b < nb; b++ {
		r.stepPos[b] = int32(len(r.contexts[b]) - 1)
	}
	r.in = model.Inputs{B: nb, T: 1, IDs: r.next, Pos: r.stepPos, Seg: r.stepSeg, Cache: g.cache}
	return r.step >= r.maxNew, nil
}

// Stop ends the run early; Finish then reports what was made.
func (r *Run) Stop() { r.stopped = true }

// Finish completes the result: finish reasons, the rest of the streamed
// text, and the elapsed time.
func (r *Run) Finish() Result {
	for b := range r.res.Finish {
		if r.res.Finish[b] == "" {
			r.res.Finish[b] = "length"
		}
		if r.req.OnText != nil && r.g.Tok != nil && r.emitted[b] < len(r.res.Text[b]) {
			r.req.OnText(b, r.res.Text[b][r.emitted[b]:])
			r.emitted[b] = len(r.res.Text[b])
		}
	}
	r.res.Elapsed = time.Since(r.start)
	return r.res
}

// lastRows picks the hidden state of each sequence's last position.
func lastRows(t *autograd.Tape, h *autograd.Var, nb, T int) *autograd.Var {
	if T == 1 {
		return h
	}
	C := h.Value.Cols()
	out := t.Alloc(nb, C)
	for b := 0; b < nb; b++ {
		copy(out.F32[b*C:(b+1)*C], h.Value.F32[(b*T+T-1)*C:(b*T+T)*C])
	}
	return t.Const(out)
}

func isStop(id int32, stops []int32) bool {
	for _, s := range stops {
		if id == s {
			return true
		}
	}
	return false
}

func allDone(d []bool) bool {
	for _, x := range d {
		if !x {
			return false
		}
	}
	return true
}

// cutStop cuts text before the first stop string it contains.
func cutStop(text string, stops []string) (string, bool) {
	best := -1
	for _, s := range stops {
		if s == "" {
			continue
		}
		if i := strings.Index(text, s); i >= 0 && (best < 0 || i < best) {
			best = i
		}
	}
	if best < 0 {
		return text, false
	}
	return text[:best], true
}

// streamable returns how many bytes of text can be shown: complete UTF-8,
// and not a tail that might grow into a stop string.
func streamable(text string, stops []string, final bool) int {
	n := len(text)
	if final {
		return n
	}
	// Hold back an incomplete or replacement-terminated rune.
	for n > 0 {
		r, size := utf8.DecodeLastRuneInString(text[:n])
		if r == utf8.RuneError && size <= 1 {
			n--
			continue
		}
		if r == utf8.RuneError {
			n -= size // U+FFFD from a partial byte sequence
			continue
		}
		break
	}
	for _, s := range stops {
		for k := min(len(s)-1, n); k > 0; k-- {
			if strings.HasSuffix(text[:n], s[:k]) {
				n -= k
				break
			}
		}
	}
	return max(n, 0)
}
