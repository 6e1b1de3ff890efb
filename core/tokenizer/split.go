package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// The split patterns of GPT-2 and Llama 3 / Qwen2 use a lookahead
// (`\s+(?!\S)`) that Go's regexp lacks, so each is written out by hand here
// as a matcher that returns the end of the match starting at i. Every rune
// belongs to one class (letter \p{L}, number \p{N}, whitespace \s in the
// Unicode White_Space sense, or other), and the alternatives of these
// patterns are tried in order exactly as a backtracking engine would.
//
// GPT-2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// Llama 3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//          ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// Qwen2:   the same with \p{N} instead of \p{N}{1,3}.
//
// Example (GPT-2): "Hi  there's\n" -> "Hi", " ", " there", "'s", "\n".

const (
	patGPT2   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	patLlama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	patQwen2  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

type charClass uint8

const (
	clsOther charClass = iota
	clsLetter
	clsNumber
	clsSpace
)

// asciiClass is the class of each ASCII byte.
var asciiClass = func() (t [128]charClass) {
	for c := 0; c < 128; c++ {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			t[c] = clsLetter
		case c >= '0' && c <= '9':
			t[c] = clsNumber
		case c == ' ', c >= '\t' && c <= '\r':
			t[c] = clsSpace
		}
	}
	return t
}()

// classAt returns the class of the rune at s[i] and its size in bytes. s
// must be valid UTF-8.
func classAt(s string, i int) (charClass, int) {
	c := s[i]
	if c < utf8.RuneSelf {
		return asciiClass[c], 1
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	switch {
	case unicode.IsLetter(r):
		return clsLetter, n
	case unicode.IsNumber(r):
		return clsNumber, n
	case unicode.IsSpace(r): // White_Space, as Oniguruma's \s
		return clsSpace, n
	}
	return clsOther, n
}

// run returns the end of the run of class cl that starts at i, stopping
// after max runes when max > 0.
func run(s string, i int, cl charClass, max int) int {
	count := 0
	for i < len(s) {
		c, n := classAt(s, i)
		if c != cl {
			break
		}
		i += n
		count++
		if count == max {
			break
		}
	}
	return i
}

// contraction returns the length of 's 't 're 've 'm 'll 'd at s[i:] (i
// points at the apostrophe), or 0.
func contraction(s string, i int, fold bool) int {
	if i+1 >= len(s) || s[i] != '\'' {
		return 0
	}
	lower := func(c byte) byte {
		if fold && c >= 'A' && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return c
	}
	switch lower(s[i+1]) {
	case 's', 't', 'm', 'd':
		return 2
	case 'r', 'v', 'l':
		if i+2 < len(s) {
			c1, c2 := lower(s[i+1]), lower(s[i+2])
			if (c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l') {
				return 3
			}
		}
	}
	return 0
}

// spaceRun scans the whitespace run at i and returns its end, the start of
// its last rune, and the index just after its last \r or \n (-1 if none).
func spaceRun(s string, i int) (end, lastStart, afterNL int) {
	afterNL = -1
	lastStart = i
	for i < len(s) {
		c, n := classAt(s, i)
		if c != clsSpace {
			break
		}
		if s[i] == '\n' || s[i] == '\r' {
			afterNL = i + 1
		}
		lastStart = i
		i += n
	}
	return i, lastStart, afterNL
}

// matchGPT2 returns the end of GPT-2's match at s[i:].
func matchGPT2(s string, i int) int {
	if n := contraction(s, i, false); n > 0 {
		return i + n
	}
	k := i
	if s[i] == ' ' && i+1 < len(s) {
		if c, _ := classAt(s, i+1); c != clsSpace {
			k = i + 1
		}
	}
	if c, _ := classAt(s, k); c != clsSpace {
		return run(s, k, c, 0) // ` ?\p{L}+`, ` ?\p{N}+` or ` ?[^\s\p{L}\p{N}]+`
	}
	end, lastStart, _ := spaceRun(s, i)
	if end == len(s) || lastStart == i {
		return end // `\s+(?!\S)` at the end of the text, or `\s+`
	}
	return lastStart // `\s+(?!\S)`: leave the last space to the next word
}

// matchLlama3 returns the end of the Llama 3 (maxDigits 3) or Qwen2
// (maxDigits 1) match at s[i:].
func matchLlama3(s string, i int, maxDigits int) int {
	if n := contraction(s, i, true); n > 0 {
		return i + n
	}
	c, n := classAt(s, i)
	switch c {
	case clsLetter:
		return run(s, i, clsLetter, 0)
	case clsNumber:
		return run(s, i, clsNumber, maxDigits)
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+ with the optional rune present.
	if s[i] != '\r' && s[i] != '\n' && i+n < len(s) {
		if c2, _ := classAt(s, i+n); c2 == clsLetter {
			return run(s, i+n, clsLetter, 0)
		}
	}
	// ` ?[^\s\p{L}\p{N}]+[\r\n]*`
	k := i
	if s[i] == ' ' && i+1 < len(s) {
		if c2, _ := classAt(s, i+1); c2 == clsOther {
			k = i + 1
		}
	}
	if c2, _ := classAt(s, k); c2 == clsOther {
		j := run(s, k, clsOther, 0)
		for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
			j++
		}
		return j
	}
	// Whitespace: `\s*[\r\n]+`, then `\s+(?!\S)`, then `\s+`.
	end, lastStart, afterNL := spaceRun(s, i)
	if afterNL >= 0 {
		return afterNL
	}
	if end == len(s) || lastStart == i {
		return end
	}
	return lastStart
}

// splitPattern identifies a hand-written split pattern.
type splitPattern uint8

const (
	splitGPT2 splitPattern = iota + 1
	splitLlama3
	splitQwen2
)

func knownPattern(p string) splitPattern {
	switch p {
	case patGPT2:
		return splitGPT2
	case patLlama3:
		return splitLlama3
	case patQwen2:
		return splitQwen2
	}
	return 0
}

func (p splitPattern) String() string {
	switch p {
	case splitGPT2:
		return "GPT-2"
	case splitLlama3:
		return "Llama 3"
	case splitQwen2:
		return "Qwen2"
	}
	return "unknown"
}

// appendSplits appends the end offsets of the matches of p over s, which
// cover s completely.
func (p splitPattern) appendSplits(ends []int, s string) []int {
	for i := 0; i < len(s); {
		switch p {
		case splitGPT2:
			i = matchGPT2(s, i)
		case splitLlama3:
			i = matchLlama3(s, i, 3)
		default:
			i = matchLlama3(s, i, 1)
		}
		ends = append(ends, i)
	}
	return ends
}
