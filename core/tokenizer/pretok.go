package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// piece is a span of normalized text on its way to the model. first marks a
// piece that starts the original text (Metaspace's "first" scheme needs it).
type piece struct {
	s     string
	first bool
}

// preTokenizer cuts a piece into smaller ones (HF "pre_tokenizer").
type preTokenizer interface {
	apply(dst []piece, p piece) []piece
}

// behavior says what a split does with the matches (HF
// SplitDelimiterBehavior).
type behavior uint8

const (
	behRemoved behavior = iota
	behIsolated
	behMergedWithPrevious
	behMergedWithNext
	behContiguous
)

var behaviors = map[string]behavior{
	"Removed": behRemoved, "Isolated": behIsolated, "MergedWithPrevious": behMergedWithPrevious,
	"MergedWithNext": behMergedWithNext, "Contiguous": behContiguous,
}

type span struct {
	start, end int
	match      bool
}

// applyBehavior turns match offsets over p into pieces as HF does: the text
// is cut into alternating gaps and matches, then matches are removed, kept,
// or glued to a neighbour. Empty pieces are dropped.
func applyBehavior(dst []piece, p piece, matches [][2]int, b behavior, invert bool) []piece {
	spans := make([]span, 0, 2*len(matches)+1)
	prev := 0
	for _, m := range matches {
		if m[0] == m[1] {
			continue
		}
		if m[0] > prev {
			spans = append(spans, span{prev, m[0], invert})
		}
		spans = append(spans, span{m[0], m[1], !invert})
		prev = m[1]
	}
	if prev < len(p.s) {
		spans = append(spans, span{prev, len(p.s), invert})
	}
	var out []span
	switch b {
	case behRemoved:
		for _, s := range spans {
			if !s.match {
				out = append(out, s)
			}
		}
	case behIsolated:
		out = spans
	case behMergedWithPrevious:
		prevMatch := false
		for _, s := range spans {
			if s.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].end = s.end
			} else {
				out = append(out, s)
			}
			prevMatch = s.match
		}
	case behMergedWithNext:
		prevMatch := false
		for k := len(spans) - 1; k >= 0; k-- {
			s := spans[k]
			if s.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].start = s.start
			} else {
				out = append(out, s)
			}
			prevMatch = s.match
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	case behContiguous:
		prevMatch := false
		for i, s := range spans {
			if i > 0 && s.match == prevMatch && s.match {
				out[len(out)-1].end = s.end
			} else {
				out = append(out, s)
			}
			prevMatch = s.match
		}
	}
	for _, s := range out {
		if s.end > s.start {
			dst = append(dst, piece{p.s[s.start:s.end], p.first && s.start == 0})
		}
	}
	return dst
}

// preSplit is HF's Split (and the regex stage of ByteLevel) with a
// hand-written pattern, a Go regexp, or a literal string.
type preSplit struct {
	known   splitPattern
	re      *pattern
	literal string
	beh     behavior
	invert  bool
}

func (x *preSplit) apply(dst []piece, p piece) []piece {
	if x.known != 0 && x.beh == behIsolated && !x.invert {
		// Fast path: the hand-written patterns cover the text, so the
		// matches are the pieces.
		start := 0
		for i := 0; i < len(p.s); {
			switch x.known {
			case splitGPT2:
				i = matchGPT2(p.s, i)
			case splitLlama3:
				i = matchLlama3(p.s, i, 3)
			default:
				i = matchLlama3(p.s, i, 1)
			}
			dst = append(dst, piece{p.s[start:i], p.first && start == 0})
			start = i
		}
		return dst
	}
	var matches [][2]int
	switch {
	case x.known != 0:
		start := 0
		for _, end := range x.known.appendSplits(nil, p.s) {
			matches = append(matches, [2]int{start, end})
			start = end
		}
	case x.re != nil:
		matches = x.re.findAll(p.s)
	default:
		if x.literal != "" {
			for i := 0; ; {
				k := strings.Index(p.s[i:], x.literal)
				if k < 0 {
					break
				}
				matches = append(matches, [2]int{i + k, i + k + len(x.literal)})
				i += k + len(x.literal)
			}
		}
	}
	return applyBehavior(dst, p, matches, x.beh, x.invert)
}

// preByteLevel is HF's ByteLevel pre-tokenizer. The mapping of bytes to the
// byte-level alphabet is left to the model (Tokenizer.byteLevel), which
// works on bytes directly; here only the optional prefix space and the
// GPT-2 split happen.
type preByteLevel struct {
	addPrefixSpace bool
	split          *preSplit // nil when use_regex is false
}

func (x *preByteLevel) apply(dst []piece, p piece) []piece {
	if x.addPrefixSpace && !strings.HasPrefix(p.s, " ") {
		p.s = " " + p.s
	}
	if x.split == nil {
		return append(dst, p)
	}
	return x.split.apply(dst, p)
}

// preMetaspace is HF's Metaspace: spaces become the replacement rune
// (normally '▁'), which is prepended per the scheme, and the text is cut
// before each replacement.
type preMetaspace struct {
	repl   string
	scheme string // "always", "first", "never"
	split  bool
}

func (x *preMetaspace) apply(dst []piece, p piece) []piece {
	p.s = strings.ReplaceAll(p.s, " ", x.repl)
	if !strings.HasPrefix(p.s, x.repl) && (x.scheme == "always" || x.scheme == "first" && p.first) {
		p.s = x.repl + p.s
	}
	if !x.split {
		return append(dst, p)
	}
	return (&preSplit{literal: x.repl, beh: behMergedWithNext}).apply(dst, p)
}

// preDigits is HF's Digits: runs of ASCII... (HF uses char::is_numeric).
type preDigits struct{ individual bool }

func (x *preDigits) apply(dst []piece, p piece) []piece {
	var matches [][2]int
	for i := 0; i < len(p.s); {
		c, n := classAt(p.s, i)
		if c != clsNumber {
			i += n
			continue
		}
		j := i + n
		if !x.individual {
			j = run(p.s, i, clsNumber, 0)
		}
		matches = append(matches, [2]int{i, j})
		i = j
	}
	beh := behContiguous
	if x.individual {
		beh = behIsolated
	}
	return applyBehavior(dst, p, matches, beh, false)
}

type preSequence []preTokenizer

func (x preSequence) apply(dst []piece, p piece) []piece {
	cur := []piece{p}
	for _, pt := range x {
		var next []piece
		for _, q := range cur {
			next = pt.apply(next, q)
		}
		cur = next
	}
	return append(dst, cur...)
}

var _ = utf8.RuneError
