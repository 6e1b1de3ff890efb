package tokenizer

import (
	"strconv"
	"strings"
)

// decoder turns the token strings of a Decode back into text, as HF's
// decoders do: each stage maps a list of strings to a list of strings, and
// the final list is concatenated.
type decoder interface {
	decodeChain(toks []string) []string
}

// decByteLevel maps the byte-level alphabet back to bytes; invalid UTF-8 in
// the result becomes U+FFFD.
type decByteLevel struct{ tab *byteLevelTables }

func (d decByteLevel) decodeChain(toks []string) []string {
	var b []byte
	for _, t := range toks {
		b = d.tab.decodeToken(b, t)
	}
	return []string{string(appendValidUTF8(nil, b))}
}

// decByteFallback turns runs of "<0xXX>" tokens into their bytes: valid
// UTF-8 as text, otherwise one U+FFFD per byte token.
type decByteFallback struct{}

func byteToken(t string) (byte, bool) {
	if len(t) != 6 || !strings.HasPrefix(t, "<0x") || t[5] != '>' {
		return 0, false
	}
	v, err := strconv.ParseUint(t[3:5], 16, 8)
	return byte(v), err == nil
}

func (decByteFallback) decodeChain(toks []string) []string {
	out := make([]string, 0, len(toks))
	var run []byte
	nrun := 0
	flush := func() {
		if nrun == 0 {
			return
		}
		if s := string(run); isValidUTF8(s) {
			out = append(out, s)
		} else {
			for range nrun {
				out = append(out, "\uFFFD")
			}
		}
		run, nrun = run[:0], 0
	}
	for _, t := range toks {
		if b, ok := byteToken(t); ok {
			run = append(run, b)
			nrun++
			continue
		}
		flush()
		out = append(out, t)
	}
	flush()
	return out
}

type decFuse struct{}

func (decFuse) decodeChain(toks []string) []string { return []string{strings.Join(toks, "")} }

// decStrip removes up to start leading and stop trailing copies of content
// from each token.
type decStrip struct {
	content     rune
	start, stop int
}

func (d decStrip) decodeChain(toks []string) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		r := []rune(t)
		lo, hi := 0, len(r)
		for k := 0; k < d.start && k < len(r) && r[k] == d.content; k++ {
			lo = k + 1
		}
		for k := 0; k < d.stop && len(r)-k-1 >= 0 && r[len(r)-k-1] == d.content; k++ {
			hi = len(r) - k - 1
		}
		if lo > hi {
			lo = hi
		}
		out[i] = string(r[lo:hi])
	}
	return out
}

// decReplace replaces a literal in each token.
type decReplace struct{ old, new string }

func (d decReplace) decodeChain(toks []string) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		out[i] = strings.ReplaceAll(t, d.old, d.new)
	}
	return out
}

// decMetaspace turns the replacement rune back into spaces, dropping it from
// the first token when the encoder prepends one.
type decMetaspace struct {
	repl        rune
	dropInFirst bool
}

func (d decMetaspace) decodeChain(toks []string) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		var b strings.Builder
		for _, c := range t {
			if c == d.repl {
				if i == 0 && d.dropInFirst {
					continue
				}
				c = ' '
			}
			b.WriteRune(c)
		}
		out[i] = b.String()
	}
	return out
}

type decSequence []decoder

func (d decSequence) decodeChain(toks []string) []string {
	for _, x := range d {
		toks = x.decodeChain(toks)
	}
	return toks
}
