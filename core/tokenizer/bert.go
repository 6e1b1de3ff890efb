package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// BERT's normalizer, pre-tokenizers and decoder, and the other small
// components WordPiece, WordLevel and Unigram files use.

// normBert is HF's BertNormalizer: clean_text drops NUL, U+FFFD and
// control characters and turns whitespace into spaces;
// handle_chinese_chars puts spaces around CJK ideographs; strip_accents
// (which defaults to lowercase) removes combining marks after NFD;
// lowercase lowercases.
type normBert struct {
	clean, chinese, strip, lower bool
}

func (n normBert) normalize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case n.clean && (r == 0 || r == 0xFFFD || isBertControl(r)):
			continue
		case n.clean && isBertSpace(r):
			b.WriteByte(' ')
		case n.chinese && isCJK(r):
			b.WriteByte(' ')
			b.WriteRune(r)
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	s = b.String()
	if n.strip {
		s = stripAccents(norm.NFD.String(s))
	}
	if n.lower {
		s = strings.ToLower(s)
	}
	return s
}

// isBertSpace is \t, \n, \r and Unicode White_Space.
func isBertSpace(r rune) bool { return unicode.IsSpace(r) }

// isBertControl is Unicode "Other" (Cc, Cf, Co, Cs, unassigned) except
// \t, \n and \r, which count as whitespace.
func isBertControl(r rune) bool {
	switch r {
	case '\t', '\n', '\r':
		return false
	}
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs) || !isAssigned(r)
}

func isAssigned(r rune) bool {
	return unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z, unicode.C)
}

// isCJK is the CJK Unified Ideographs blocks BERT pads with spaces.
func isCJK(r rune) bool {
	return r >= 0x4E00 && r <= 0x9FFF || r >= 0x3400 && r <= 0x4DBF || r >= 0x20000 && r <= 0x2A6DF ||
		r >= 0x2A700 && r <= 0x2B73F || r >= 0x2B740 && r <= 0x2B81F || r >= 0x2B920 && r <= 0x2CEAF ||
		r >= 0xF900 && r <= 0xFAFF || r >= 0x2F800 && r <= 0x2FA1F
}

// stripAccents removes nonspacing marks (Mn), as BertNormalizer does after
// NFD.
func stripAccents(s string) string { return removeMarks(s, unicode.Mn) }

func removeMarks(s string, marks *unicode.RangeTable) string {
	return strings.Map(func(r rune) rune {
		if unicode.Is(marks, r) {
			return -1
		}
		return r
	}, s)
}

// normStripAccents is HF's StripAccents normalizer (run after NFD): it
// removes every combining mark, enclosing ones (U+20E3) included.
type normStripAccents struct{}

func (normStripAccents) normalize(s string) string { return removeMarks(s, unicode.M) }

// isBertPunct is ASCII punctuation or Unicode P.
func isBertPunct(r rune) bool {
	if r < 0x80 {
		return r >= '!' && r <= '/' || r >= ':' && r <= '@' || r >= '[' && r <= '`' || r >= '{' && r <= '~'
	}
	return unicode.IsPunct(r)
}

// charSplit splits at the runes f accepts, with a split behavior.
func charSplit(dst []piece, p piece, f func(rune) bool, b behavior) []piece {
	var matches [][2]int
	for i, r := range p.s {
		if f(r) {
			matches = append(matches, [2]int{i, i + utf8.RuneLen(r)})
		}
	}
	return applyBehavior(dst, p, matches, b, false)
}

// preWhitespaceSplit splits on whitespace, which it drops.
type preWhitespaceSplit struct{}

func (preWhitespaceSplit) apply(dst []piece, p piece) []piece {
	return charSplit(dst, p, unicode.IsSpace, behRemoved)
}

// prePunctuation splits around each punctuation character.
type prePunctuation struct{ beh behavior }

func (x prePunctuation) apply(dst []piece, p piece) []piece {
	return charSplit(dst, p, isBertPunct, x.beh)
}

// preBert is BertPreTokenizer: whitespace removed, then each punctuation
// character its own piece.
type preBert struct{}

func (preBert) apply(dst []piece, p piece) []piece {
	var tmp []piece
	tmp = charSplit(tmp, p, unicode.IsSpace, behRemoved)
	for _, q := range tmp {
		dst = charSplit(dst, q, isBertPunct, behIsolated)
	}
	return dst
}

// preRegexPieces keeps the matches of a pattern and drops the rest (HF's
// Whitespace pre-tokenizer: \w+|[^\w\s]+).
type preRegexPieces struct{ re *pattern }

func (x preRegexPieces) apply(dst []piece, p piece) []piece {
	return applyBehavior(dst, p, x.re.findAll(p.s), behRemoved, true)
}

// decWordPiece joins WordPiece tokens: a continuation loses its prefix,
// any other token after the first gets a space before it; cleanup undoes
// the spaces tokenization put before punctuation and in contractions.
type decWordPiece struct {
	prefix  string
	cleanup bool
}

func (d decWordPiece) decodeChain(toks []string) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		if i > 0 {
			if strings.HasPrefix(t, d.prefix) {
				t = t[len(d.prefix):]
			} else {
				t = " " + t
			}
		}
		if d.cleanup {
			t = cleanupSpaces(t)
		}
		out[i] = t
	}
	return out
}

// cleanupSpaces is HF's clean_up_tokenization.
func cleanupSpaces(s string) string {
	for _, p := range [][2]string{{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
		{" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}} {
		s = strings.ReplaceAll(s, p[0], p[1])
	}
	return s
}
