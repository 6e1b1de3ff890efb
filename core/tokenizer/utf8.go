package tokenizer

import (
	"slices"
	"unicode"
	"unicode/utf8"
)

func isSpaceRune(r rune) bool { return unicode.IsSpace(r) }

// validUTF8 returns s with each ill-formed subsequence replaced by U+FFFD,
// one replacement per maximal subpart as Unicode recommends (and as Rust's
// from_utf8_lossy and Python's errors="replace" do).
//
// Example: "a\xe2\x82z\xff" -> "a\uFFFDz\uFFFD".
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return string(appendValidUTF8(make([]byte, 0, len(s)+8), []byte(s)))
}

// appendValidUTF8 appends b to dst, replacing ill-formed subsequences.
func appendValidUTF8(dst, b []byte) []byte {
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			dst = append(dst, b[i])
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || n > 1 {
			dst = append(dst, b[i:i+n]...)
			i += n
			continue
		}
		dst = append(dst, "\uFFFD"...)
		i += maximalSubpart(b[i:])
	}
	return dst
}

// maximalSubpart is the length of the ill-formed sequence at the start of b:
// a lead byte followed by as many continuation bytes as remain valid for it.
func maximalSubpart(b []byte) int {
	c := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF) // range of the second byte
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1
	}
	n := 1
	for k := 0; k < need && n < len(b); k++ {
		x := b[n]
		if k == 0 && (x < lo || x > hi) || k > 0 && (x < 0x80 || x > 0xBF) {
			break
		}
		n++
	}
	return n
}

// incompleteTail reports how many bytes at the end of b begin a UTF-8
// sequence that more bytes could still complete.
func incompleteTail(b []byte) int {
	for k := 1; k <= 3 && k <= len(b); k++ {
		c := b[len(b)-k]
		if c < 0x80 {
			return 0
		}
		if c >= 0xC0 { // a lead byte: is it short of its length?
			need := 0
			switch {
			case c >= 0xC2 && c <= 0xDF:
				need = 2
			case c >= 0xE0 && c <= 0xEF:
				need = 3
			case c >= 0xF0 && c <= 0xF4:
				need = 4
			default:
				return 0
			}
			if k < need && maximalSubpart(b[len(b)-k:]) == k {
				return k
			}
			return 0
		}
	}
	return 0
}

func isValidUTF8(s string) bool { return utf8.ValidString(s) }

func firstRune(s string) rune { r, _ := utf8.DecodeRuneInString(s); return r }
func lastRune(s string) rune  { r, _ := utf8.DecodeLastRuneInString(s); return r }

// isWordRune is HF's word character for single_word tokens.
func isWordRune(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r) }

func sortByID(keys []string, v map[string]int32) {
	slices.SortFunc(keys, func(a, b string) int { return int(v[a]) - int(v[b]) })
}
