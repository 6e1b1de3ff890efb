// Package demo generates llmlab's own demo data, deterministically from a
// seed: short simple stories for pretraining a few-million-parameter model,
// an instruction set whose answers can be checked exactly, and preference
// pairs over the same prompts for reward models, DPO and KTO.
//
// Everything comes from small hand-written grammars expanded by a seeded
// RNG that is defined here (not math/rand), so a seed gives the same bytes
// on every platform and Go release; the files under assets/data are the
// output for DefaultSeed and a test checks that they still are.
//
// Grammar strings use two notations: "[a|b|c]" picks one alternative
// (alternatives may nest), and "{name}" substitutes a variable; "{Name}"
// with a capital first letter substitutes the variable capitalised.
package demo

import (
	"math/bits"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultSeed is the seed of the embedded demo data.
const DefaultSeed = 1

// rng is SplitMix64 with Lemire's bounded draw, fully specified here.
type rng struct{ s uint64 }

func newRNG(seed, stream uint64) *rng {
	r := &rng{seed*0x9e3779b97f4a7c15 ^ stream*0xd1b54a32d192ed03}
	r.next()
	return r
}

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (r *rng) intn(n int) int {
	un := uint64(n)
	hi, lo := bits.Mul64(r.next(), un)
	if lo < un {
		thresh := -un % un
		for lo < thresh {
			hi, lo = bits.Mul64(r.next(), un)
		}
	}
	return int(hi)
}

// chance returns true with probability p/100.
func (r *rng) chance(p int) bool { return r.intn(100) < p }

func pick[T any](r *rng, xs []T) T { return xs[r.intn(len(xs))] }

func (r *rng) shuffle(n int, swap func(i, j int)) {
	for i := n - 1; i > 0; i-- {
		swap(i, r.intn(i+1))
	}
}

// expand picks alternatives in "[a|b]" groups (nested allowed) and then
// substitutes "{var}" from vars.
func expand(r *rng, s string, vars map[string]string) string {
	return subst(choose(r, s), vars)
}

func choose(r *rng, s string) string {
	if !strings.ContainsRune(s, '[') {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '[' {
			b.WriteByte(s[i])
			continue
		}
		// Find the matching ']' and the top-level '|' separators.
		depth, start := 0, i+1
		var alts []string
		j := i
		for ; j < len(s); j++ {
			switch s[j] {
			case '[':
				depth++
			case ']':
				depth--
			case '|':
				if depth == 1 {
					alts = append(alts, s[start:j])
					start = j + 1
				}
			}
			if depth == 0 {
				break
			}
		}
		alts = append(alts, s[start:j])
		b.WriteString(choose(r, pick(r, alts)))
		i = j
	}
	return b.String()
}

func subst(s string, vars map[string]string) string {
	if !strings.ContainsRune(s, '{') {
		return s
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		key := s[i+1 : i+j]
		if v, ok := vars[key]; ok {
			b.WriteString(v)
		} else if v, ok := vars[lowerFirst(key)]; ok {
			b.WriteString(capitalise(v))
		} else {
			b.WriteString("{" + key + "}") // a grammar bug shows up in tests
		}
		s = s[i+j+1:]
	}
}

func capitalise(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}

func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToLower(r)) + s[n:]
}
