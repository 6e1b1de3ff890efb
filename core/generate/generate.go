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
	batch *Batch // the last Run's batch, reused when it fits
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
			return r.result(), err
		}
		done, err := r.Step()
		if err != nil {
			return r.result(), err
		}
		if done {
			return r.Finish(), nil
		}
	}
}

// Run is a generation in progress, advanced one token at a time by Step
// (the browser build interleaves steps with its event loop). It is a
// Batch that all of the request's prompts join at once.
type Run struct {
	g       *Generator
	req     Request
	start   time.Time
	batch   *Batch
	reqs    []SeqRequest
	seqs    []*Seq
	started bool
	stopped bool
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
	if g.batch == nil || g.batch.slots != nb || g.batch.capacity < capacity {
		if g.batch != nil {
			g.batch.Close()
			g.batch = nil
		}
		b, err := g.NewBatch(nb, capacity)
		if err != nil {
			return nil, err
		}
		g.batch = b
	}
	g.batch.reset()
	r := &Run{g: g, req: req, start: time.Now(), batch: g.batch, reqs: make([]SeqRequest, nb)}
	for b, p := range req.Prompts {
		r.reqs[b] = SeqRequest{Prompt: p, MaxTokens: maxNew, Sampling: req.Sampling,
			Seed: req.Seed + uint64(b)*0x9e3779b97f4a7c15, StopIDs: req.StopIDs, StopStrings: req.StopStrings}
		if req.OnText != nil {
			r.reqs[b].OnText = func(text string) bool { return req.OnText(b, text) }
		}
	}
	return r, nil
}

// Step generates one token for every unfinished sequence (the first Step
// also reads the prompts) and reports whether the run is over.
func (r *Run) Step() (bool, error) {
	if r.stopped {
		return true, nil
	}
	var err error
	if !r.started {
		r.started = true
		r.seqs, err = r.batch.Join(r.reqs...)
	} else {
		err = r.batch.Step()
	}
	if err != nil {
		r.stopped = true
		return true, err
	}
	for _, s := range r.seqs {
		if s.Cancelled() {
			r.stopped = true
			r.batch.reset()
			return true, context.Canceled
		}
	}
	return r.batch.Running() == 0, nil
}

// Stop ends the run early; Finish then reports what was made.
func (r *Run) Stop() { r.stopped = true }

// result is what the run has made so far.
func (r *Run) result() Result {
	nb := len(r.req.Prompts)
	res := Result{IDs: make([][]int32, nb), Text: make([]string, nb), Finish: make([]string, nb)}
	for b, s := range r.seqs {
		res.IDs[b], res.Text[b], res.Finish[b] = s.ids, s.text, s.finish
		if s.finish == "" || s.finish == "cancelled" {
			res.Finish[b] = ""
		}
		res.Tokens += len(s.ids)
	}
	res.Elapsed = time.Since(r.start)
	return res
}

// Finish completes the result: finish reasons, the rest of the streamed
// text, and the elapsed time.
func (r *Run) Finish() Result {
	res := r.result()
	for b := range res.Finish {
		if res.Finish[b] == "" {
			res.Finish[b] = "length"
		}
		if b < len(r.seqs) {
			if s := r.seqs[b]; r.req.OnText != nil && r.g.Tok != nil && s.emitted < len(s.text) {
				r.req.OnText(b, s.text[s.emitted:])
				s.emitted = len(s.text)
			}
		}
	}
	r.batch.reset()
	return res
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
