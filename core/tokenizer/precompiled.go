package tokenizer

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/rivo/uniseg"
)

// normPrecompiled is HF's Precompiled normalizer: SentencePiece's
// normalization rules (nmt_nfkc and the like) compiled into the model file
// as a "precompiled charsmap": a little-endian uint32 giving the size in
// bytes of a double-array trie (darts-clone units), the trie, then a blob
// of NUL-terminated replacement strings that the trie's values point into.
//
// HF applies it per grapheme cluster: a cluster shorter than 6 bytes is
// looked up whole (the trie's first, shortest, prefix match gives the
// replacement); otherwise, or with no match, each rune of it is looked up
// on its own and kept when nothing matches.
type normPrecompiled struct {
	trie    []uint32
	repl    []byte
	replStr string // repl as a string, so replacements are substrings
}

func newPrecompiled(b64 string) (*normPrecompiled, error) {
	data, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("Precompiled precompiled_charsmap: %w", err)
	}
	if len(data) < 4 {
		return nil, errors.New("Precompiled precompiled_charsmap: shorter than its header")
	}
	n := uint64(binary.LittleEndian.Uint32(data))
	if n%4 != 0 || n > uint64(len(data)-4) || n == 0 {
		return nil, fmt.Errorf("Precompiled precompiled_charsmap: trie size %d does not fit the %d bytes", n, len(data)-4)
	}
	p := &normPrecompiled{trie: make([]uint32, n/4), repl: data[4+n:], replStr: string(data[4+n:])}
	for i := range p.trie {
		p.trie[i] = binary.LittleEndian.Uint32(data[4+4*i:])
	}
	return p, nil
}

// firstPrefix returns the value of the shortest key that is a prefix of
// key (darts-clone's common prefix search, first result), or -1. A NUL
// byte ends the key. Indexes are checked: a corrupt trie finds nothing.
func (p *normPrecompiled) firstPrefix(key string) int {
	unit := func(i uint32) (uint32, bool) {
		if int(i) >= len(p.trie) {
			return 0, false
		}
		return p.trie[i], true
	}
	offset := func(u uint32) uint32 { return (u >> 10) << ((u & (1 << 9)) >> 6) }
	pos := uint32(0)
	u, ok := unit(pos)
	if !ok {
		return -1
	}
	pos ^= offset(u)
	for i := 0; i < len(key); i++ {
		c := uint32(key[i])
		if c == 0 {
			break
		}
		pos ^= c
		if u, ok = unit(pos); !ok || u&((1<<31)|0xFF) != c {
			return -1
		}
		pos ^= offset(u)
		if (u>>8)&1 == 1 {
			v, ok := unit(pos)
			if !ok {
				return -1
			}
			return int(v & ((1 << 31) - 1))
		}
	}
	return -1
}

// transform returns the replacement of chunk, if the trie has one.
func (p *normPrecompiled) transform(chunk string) (string, bool) {
	v := p.firstPrefix(chunk)
	if v < 0 || v >= len(p.repl) {
		return "", false
	}
	end := v
	for end < len(p.repl) && p.repl[end] != 0 {
		end++
	}
	return p.replStr[v:end], true
}

func (p *normPrecompiled) normalize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	state := -1
	for rest := s; rest != ""; {
		var cl string
		cl, rest, _, state = uniseg.FirstGraphemeClusterInString(rest, state)
		if len(cl) < 6 {
			if r, ok := p.transform(cl); ok {
				b.WriteString(r)
				continue
			}
		}
		for i := 0; i < len(cl); {
			part := cl[i : i+runeLen(cl, i)]
			if x, ok := p.transform(part); ok {
				b.WriteString(x)
			} else {
				b.WriteString(part)
			}
			i += len(part)
		}
	}
	return b.String()
}
