package tokenizer

import (
	"fmt"
	"regexp"
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
	re      *regexp.Regexp
	content string
}

func (n normReplace) normalize(s string) string {
	if n.re != nil {
		return n.re.ReplaceAllLiteralString(s, n.content)
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

// safeRegexp compiles an HF (Oniguruma) pattern with Go's regexp when the
// two engines agree on it: no lookaround, no backreferences and none of the
// Perl classes (\s \w \d \b) whose Go meaning is ASCII-only. Anything else
// is an error that names the pattern.
func safeRegexp(what, pat string) (*regexp.Regexp, error) {
	for _, bad := range []string{`\s`, `\S`, `\w`, `\W`, `\d`, `\D`, `\b`, `\B`, `(?=`, `(?!`, `(?<`, `\h`, `\R`, `\X`, `\G`, `\A`, `\Z`} {
		if strings.Contains(pat, bad) {
			return nil, fmt.Errorf("%s: regular expression %q uses %s, which Go's regexp does not match the same way (unsupported)", what, pat, bad)
		}
	}
	re, err := regexp.Compile(pat)
	if err != nil {
		return nil, fmt.Errorf("%s: unsupported regular expression %q: %w", what, pat, err)
	}
	return re, nil
}
