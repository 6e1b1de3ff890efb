package tokenizer

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/dlclark/regexp2/v2"
)

// pattern is a regular expression of a tokenizer.json (written for
// Oniguruma, the engine HF tokenizers uses). Go's regexp runs it when the
// two engines agree on its meaning; anything else (lookaround, \s \w \d,
// backreferences) runs on regexp2, a backtracking engine with .NET syntax,
// whose \s is Unicode White_Space and whose \p{..} classes are Unicode's,
// as Oniguruma's are. DeepSeek V3's and gpt-oss's split patterns take the
// second path; the split patterns of GPT-2, Llama 3 and Qwen2 never reach
// here (split.go has them by hand).
type pattern struct {
	src string
	re  *regexp.Regexp  // the linear-time engine, when it is safe
	bt  *regexp2.Regexp // else the backtracking one
}

// compilePattern compiles an HF pattern; what names the component in errors.
func compilePattern(what, src string) (*pattern, error) {
	if re, err := safeRegexp(what, src); err == nil {
		return &pattern{src: src, re: re}, nil
	}
	bt, err := regexp2.Compile(src)
	if err != nil {
		return nil, fmt.Errorf("%s: unsupported regular expression %q: %w", what, src, err)
	}
	return &pattern{src: src, bt: bt}, nil
}

// findAll returns the byte offsets of the successive non-overlapping
// matches in s, leftmost first.
func (p *pattern) findAll(s string) [][2]int {
	var idx [][]int
	if p.re != nil {
		idx = p.re.FindAllStringIndex(s, -1)
	} else {
		var err error
		// An error is a match timeout, which is not set: none happens.
		if idx, err = p.bt.FindAllStringIndex(s, -1); err != nil {
			panic(fmt.Sprintf("tokenizer: regexp2 on %q: %v", p.src, err))
		}
	}
	out := make([][2]int, len(idx))
	for i, m := range idx {
		out[i] = [2]int{m[0], m[1]}
	}
	return out
}

// replaceAll replaces every match with repl, taken literally.
func (p *pattern) replaceAll(s, repl string) string {
	if p.re != nil {
		return p.re.ReplaceAllLiteralString(s, repl)
	}
	ms := p.findAll(s)
	if len(ms) == 0 {
		return s
	}
	var b strings.Builder
	prev := 0
	for _, m := range ms {
		b.WriteString(s[prev:m[0]])
		b.WriteString(repl)
		prev = m[1]
	}
	b.WriteString(s[prev:])
	return b.String()
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
