package tokenizer

import (
	"strings"

	"golang.org/x/text/unicode/norm"
)

// normalizer rewrites a segment of text before pre-tokenization (HF
// "normalizer"). Only the kinds whose result is exactly HF's are built; the
// loader rejects the rest by name.
type normalizer interface {
	normalize(s string) string
}

type normForm struct{ f norm.Form }

func (n normForm) normalize(s string) string { return n.f.String(s) }

type normLowercase struct{}

func (normLowercase) normalize(s string) string { return strings.ToLower(s) }

// normPrepend prepends its string to a non-empty segment.
type normPrepend struct{ prefix string }

func (n normPrepend) normalize(s string) string {
	if s == "" {
		return s
	}
	return n.prefix + s
}

// normReplace replaces every match of a literal or a regular expression.
type normReplace struct {
	literal string
	re      *pattern
	content string
}

func (n normReplace) normalize(s string) string {
	if n.re != nil {
		return n.re.replaceAll(s, n.content)
	}
	return strings.ReplaceAll(s, n.literal, n.content)
}

// normStrip strips Unicode whitespace on either side.
type normStrip struct{ left, right bool }

func (n normStrip) normalize(s string) string {
	if n.left {
		s = strings.TrimLeftFunc(s, isSpaceRune)
	}
	if n.right {
		s = strings.TrimRightFunc(s, isSpaceRune)
	}
	return s
}

type normSequence []normalizer

func (n normSequence) normalize(s string) string {
	for _, x := range n {
		s = x.normalize(s)
	}
	return s
}
