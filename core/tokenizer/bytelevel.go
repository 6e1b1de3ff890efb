// Package tokenizer encodes text to token ids and back: byte-level BPE
// from Hugging Face tokenizer.json files (GPT-2 style), with special tokens
// matched before splitting, a streaming decoder for generation, and a fast
// BPE trainer that writes tokenizer.json files HF tokenizers load.
package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// byteToRune is GPT-2's bytes_to_unicode table: printable bytes map to
// themselves, the rest to code points from 256 up, so every byte string is
// a string of visible characters.
func byteTables() (b2r [256]rune, r2b map[rune]byte) {
	r2b = make(map[rune]byte, 256)
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			b2r[b] = rune(b)
		} else {
			b2r[b] = rune(256 + n)
			n++
		}
		r2b[b2r[b]] = byte(b)
	}
	return b2r, r2b
}

// splitGPT2 cuts text into the pieces of GPT-2's pre-tokenizer pattern
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// written out by hand because Go's regexp has no lookahead. Alternatives
// are tried in order at each position, as the regex engine does. For
// example "I'm  ok\n" gives "I", "'m", " ", " ok", "\n".
func splitGPT2(text string, yield func(piece string)) {
	i := 0
	for i < len(text) {
		j := matchGPT2(text, i)
		yield(text[i:j])
		i = j
	}
}

type class int

const (
	clsLetter class = iota
	clsNumber
	clsSpace
	clsOther
)

func classOf(r rune) class {
	switch {
	case unicode.IsLetter(r):
		return clsLetter
	case unicode.IsNumber(r):
		return clsNumber
	case unicode.IsSpace(r):
		return clsSpace
	}
	return clsOther
}

// runEnd returns the end of the run of runes of class c starting at i.
func runEnd(s string, i int, c class) int {
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if classOf(r) != c {
			break
		}
		i += n
	}
	return i
}

func matchGPT2(s string, i int) int {
	if s[i] == '\'' && i+1 < len(s) {
		switch s[i+1] {
		case 's', 't', 'm', 'd':
			return i + 2
		case 'r', 'v':
			if i+2 < len(s) && s[i+2] == 'e' {
				return i + 3
			}
		case 'l':
			if i+2 < len(s) && s[i+2] == 'l' {
				return i + 3
			}
		}
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	c := classOf(r)
	if r == ' ' && i+1 < len(s) {
		r2, _ := utf8.DecodeRuneInString(s[i+1:])
		if c2 := classOf(r2); c2 != clsSpace {
			return runEnd(s, i+1, c2)
		}
	}
	if c != clsSpace {
		return runEnd(s, i, c)
	}
	j := runEnd(s, i, clsSpace)
	if j == len(s) {
		return j
	}
	// followed by non-space: \s+(?!\S) leaves the last space char
	_, last := utf8.DecodeLastRuneInString(s[i:j])
	if j-last > i {
		return j - last
	}
	return j // a single space char: \s+
}
