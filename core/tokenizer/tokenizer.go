// Package tokenizer turns text into token ids and back, byte for byte as the
// reference implementations do: HF tokenizers for tokenizer.json files,
// OpenAI's GPT-2 encoder for vocab.json + merges.txt, and SentencePiece for
// tokenizer.model files.
//
// Every format is loaded into one pipeline, the one HF tokenizers defines:
// added (special) tokens are cut out of the text first; each remaining
// segment is normalized, pre-tokenized into pieces, and each piece is
// encoded by the model (byte-pair encoding, or tokenizer.json's WordPiece,
// WordLevel and Unigram models, wordmodels.go); a post-processor may add
// BOS/EOS. Decoding maps ids to
// token strings and runs them through the decoders. Components are small
// types behind three interfaces (normalizer, preTokenizer, decoder); a
// component the loader does not know is an error that names it, never an
// approximation.
//
// The BPE model works on token ids, not strings: a byte-level piece starts
// as the ids of its bytes and merges look up (left, right) id pairs, so the
// hot loop allocates nothing. The split patterns of GPT-2, Llama 3 and Qwen2
// need a lookahead that Go's regexp lacks and are written by hand (split.go);
// other patterns that need one (DeepSeek V3's) run on a backtracking engine
// (regex.go).
// The trainer (train.go) counts words once, then keeps pair counts up to
// date incrementally with a priority queue, so a merge costs time
// proportional to the words it touches, not to the corpus.
package tokenizer

import (
	"sort"
	"strings"
	"sync"
)

// Tokenizer encodes and decodes text. It is safe for concurrent use.
type Tokenizer struct {
	model *bpeModel
	word  wordModel // WordPiece, WordLevel or Unigram; nil: model is BPE
	added addedVocab

	norm      normalizer       // nil: none
	pre       preTokenizer     // nil: the segment is one piece
	byteLevel bool             // pieces are bytes mapped through GPT-2's alphabet (ByteLevel pre-tokenizer)
	byteSym   [256]int32       // byte -> id of its byte-level token, -1 if the vocabulary lacks it
	rawVocab  map[string]int32 // byte-level only, with ignoreMerges: raw bytes -> id

	prefix, suffix []int32 // post-processor: ids around the sequence
	dec            decoder // nil: join tokens with spaces (HF's default)
	blt            *byteLevelTables

	vocabSize     int
	bos, eos, pad int32
	chatTemplate  string
	doc           []byte // the tokenizer.json document, for Save
	config        []byte // tokenizer_config.json as loaded, for Save; nil: write a fresh one

	scratch sync.Pool // *encodeScratch
}

type encodeScratch struct {
	syms   []int32
	ranks  []uint64
	pieces []piece
}

// Encode returns the token ids of text. Added and special tokens written in
// the text are always matched; addSpecial applies the post-processor (BOS
// and EOS as the file says). Invalid UTF-8 is replaced with U+FFFD first.
func (t *Tokenizer) Encode(text string, addSpecial bool) []int32 {
	text = validUTF8(text)
	ids := make([]int32, 0, len(text)/3+4)
	if addSpecial {
		ids = append(ids, t.prefix...)
	}
	sc, _ := t.scratch.Get().(*encodeScratch)
	if sc == nil {
		sc = &encodeScratch{}
	}
	ids = t.added.split(ids, text, false, true, func(ids []int32, seg string, first bool) []int32 {
		if t.norm != nil {
			seg = t.norm.normalize(seg)
		}
		return t.added.split(ids, seg, true, first, func(ids []int32, seg string, first bool) []int32 {
			return t.encodeSegment(ids, seg, first, sc)
		})
	})
	t.scratch.Put(sc)
	if addSpecial {
		ids = append(ids, t.suffix...)
	}
	return ids
}

// encodeSegment pre-tokenizes one normalized segment and encodes its pieces.
func (t *Tokenizer) encodeSegment(ids []int32, seg string, first bool, sc *encodeScratch) []int32 {
	if seg == "" {
		return ids
	}
	p := piece{seg, first}
	if t.pre == nil {
		return t.encodePiece(ids, p.s, sc)
	}
	if ps, ok := t.pre.(*preSplit); ok && ps.known != 0 && ps.beh == behIsolated && !ps.invert {
		// The common case (GPT-2 style), without building a piece list.
		for i := 0; i < len(seg); {
			j := ps.known.next(seg, i)
			ids = t.encodePiece(ids, seg[i:j], sc)
			i = j
		}
		return ids
	}
	sc.pieces = t.pre.apply(sc.pieces[:0], p)
	for _, q := range sc.pieces {
		ids = t.encodePiece(ids, q.s, sc)
	}
	return ids
}

// next returns the end of the match at s[i:].
func (p splitPattern) next(s string, i int) int {
	switch p {
	case splitGPT2:
		return matchGPT2(s, i)
	case splitLlama3:
		return matchLlama3(s, i, 3)
	}
	return matchLlama3(s, i, 1)
}

// encodePiece runs the BPE model on one pre-tokenized piece.
func (t *Tokenizer) encodePiece(ids []int32, s string, sc *encodeScratch) []int32 {
	if t.word != nil {
		return t.word.encode(ids, s)
	}
	m := t.model
	if m.ignoreMerges {
		if t.byteLevel {
			if id, ok := t.rawVocab[s]; ok {
				return append(ids, id)
			}
		} else if id, ok := m.vocab[s]; ok {
			return append(ids, id)
		}
	}
	syms := sc.syms[:0]
	if t.byteLevel {
		for i := 0; i < len(s); i++ {
			if id := t.byteSym[s[i]]; id >= 0 {
				syms = append(syms, id)
			} else {
				syms = t.fallback(syms, t.blt.str[s[i]], s[i:i+1])
			}
		}
	} else {
		for i := 0; i < len(s); {
			n := runeLen(s, i)
			if id, ok := m.vocab[s[i:i+n]]; ok {
				syms = append(syms, id)
			} else {
				syms = t.fallback(syms, s[i:i+n], s[i:i+n])
			}
			i += n
		}
	}
	sc.syms = syms
	return append(ids, m.merge(syms, &sc.ranks)...)
}

// fallback appends the symbols for a character the vocabulary lacks: its
// bytes as "<0xXX>" tokens with byte_fallback, else the unknown token (one
// for a run with fuse_unk), else nothing, as HF does.
func (t *Tokenizer) fallback(syms []int32, char, raw string) []int32 {
	m := t.model
	if m.byteFallback {
		ok := true
		for i := 0; i < len(raw); i++ {
			ok = ok && m.byteTok[raw[i]] >= 0
		}
		if ok {
			for i := 0; i < len(raw); i++ {
				syms = append(syms, m.byteTok[raw[i]])
			}
			return syms
		}
	}
	if m.unk >= 0 {
		if m.fuseUnk && len(syms) > 0 && syms[len(syms)-1] == m.unk {
			return syms
		}
		return append(syms, m.unk)
	}
	return syms
}

func runeLen(s string, i int) int {
	c := s[i]
	switch {
	case c < 0xC0:
		return 1
	case c < 0xE0:
		return min(2, len(s)-i)
	case c < 0xF0:
		return min(3, len(s)-i)
	}
	return min(4, len(s)-i)
}

// Decode returns the text of ids. Ids outside the vocabulary are skipped;
// special tokens are written out as their text.
func (t *Tokenizer) Decode(ids []int32) string {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		if s, ok := t.token(id); ok {
			toks = append(toks, s)
		}
	}
	if t.dec == nil {
		return strings.Join(toks, " ")
	}
	return strings.Join(t.dec.decodeChain(toks), "")
}

// token returns the string of id: an added token's content, else the
// model's vocabulary entry.
func (t *Tokenizer) token(id int32) (string, bool) {
	if tok, ok := t.added.byID[id]; ok {
		return tok.content, true
	}
	if id >= 0 && int(id) < len(t.model.pieces) && t.model.pieces[id] != "" {
		return t.model.pieces[id], true
	}
	return "", false
}

// Piece returns the vocabulary string of id ("" if there is none). For a
// byte-level vocabulary it is the string in GPT-2's alphabet ("Ġthe").
func (t *Tokenizer) Piece(id int32) string {
	s, _ := t.token(id)
	return s
}

// TokenID returns the id of a vocabulary string or added token.
func (t *Tokenizer) TokenID(s string) (int32, bool) {
	if id, ok := t.added.byContent[s]; ok {
		return id, true
	}
	id, ok := t.model.vocab[s]
	return id, ok
}

// VocabSize is one more than the largest id, added tokens included.
func (t *Tokenizer) VocabSize() int { return t.vocabSize }

// BOS returns the beginning-of-sequence id, -1 when there is none.
func (t *Tokenizer) BOS() int32 { return t.bos }

// EOS returns the end-of-sequence id, -1 when there is none.
func (t *Tokenizer) EOS() int32 { return t.eos }

// PAD returns the padding id, -1 when there is none.
func (t *Tokenizer) PAD() int32 { return t.pad }

// ChatTemplate returns the Jinja chat template of tokenizer_config.json, ""
// if none.
func (t *Tokenizer) ChatTemplate() string { return t.chatTemplate }

// IsSpecial reports whether id is a special added token (BOS, EOS, a chat
// marker...), the ones a caller may want to hide when printing.
func (t *Tokenizer) IsSpecial(id int32) bool {
	tok, ok := t.added.byID[id]
	return ok && tok.special
}

// addedToken is an entry of tokenizer.json's "added_tokens".
type addedToken struct {
	id         int32
	content    string
	singleWord bool
	lstrip     bool
	rstrip     bool
	normalized bool
	special    bool
}

// addedVocab matches added tokens in text: leftmost first, longest first at
// one position, as HF's Aho-Corasick in LeftmostLongest mode.
type addedVocab struct {
	toks      []addedToken
	byID      map[int32]*addedToken
	byContent map[string]int32
	// byFirst lists, for each first byte, the tokens of each pass
	// (0: matched on raw text, 1: on normalized text), longest first.
	byFirst [2][256][]*addedToken
	any     [2]bool
}

func (a *addedVocab) build(toks []addedToken, norm normalizer) {
	a.toks = toks
	a.byFirst, a.any = [2][256][]*addedToken{}, [2]bool{}
	a.byID = make(map[int32]*addedToken, len(toks))
	a.byContent = make(map[string]int32, len(toks))
	for i := range a.toks {
		tok := &a.toks[i]
		a.byID[tok.id] = tok
		a.byContent[tok.content] = tok.id
		pass, pattern := 0, tok.content
		if tok.normalized {
			pass = 1
			if norm != nil {
				pattern = norm.normalize(pattern)
			}
		}
		if pattern == "" {
			continue
		}
		cp := *tok
		cp.content = pattern
		a.byFirst[pass][pattern[0]] = append(a.byFirst[pass][pattern[0]], &cp)
		a.any[pass] = true
	}
	for p := range a.byFirst {
		for b := range a.byFirst[p] {
			l := a.byFirst[p][b]
			sort.SliceStable(l, func(i, j int) bool { return len(l[i].content) > len(l[j].content) })
		}
	}
}

// split cuts s at the added tokens of one pass, calling enc for the text in
// between (first: the segment starts the original text) and appending the
// tokens' ids.
func (a *addedVocab) split(ids []int32, s string, normalizedPass, first bool, enc func(ids []int32, seg string, first bool) []int32) []int32 {
	pass := 0
	if normalizedPass {
		pass = 1
	}
	if !a.any[pass] {
		return enc(ids, s, first)
	}
	tab := &a.byFirst[pass]
	segStart := 0
	for i := 0; i < len(s); i++ {
		cands := tab[s[i]]
		if len(cands) == 0 {
			continue
		}
		var tok *addedToken
		for _, c := range cands {
			if strings.HasPrefix(s[i:], c.content) && (!c.singleWord || singleWordOK(s, i, i+len(c.content))) {
				tok = c
				break
			}
		}
		if tok == nil {
			continue
		}
		start, end := i, i+len(tok.content)
		if tok.lstrip {
			start = segStart + len(strings.TrimRightFunc(s[segStart:start], isSpaceRune))
		}
		if tok.rstrip {
			end = len(s) - len(strings.TrimLeftFunc(s[end:], isSpaceRune))
		}
		if start > segStart {
			ids = enc(ids, s[segStart:start], first && segStart == 0)
		}
		ids = append(ids, tok.id)
		segStart = end
		i = end - 1
	}
	if segStart < len(s) {
		ids = enc(ids, s[segStart:], first && segStart == 0)
	}
	return ids
}

// singleWordOK reports whether s[start:end] is not glued to word characters.
func singleWordOK(s string, start, end int) bool {
	if start > 0 {
		r := lastRune(s[:start])
		if isWordRune(r) {
			return false
		}
	}
	if end < len(s) {
		r := firstRune(s[end:])
		if isWordRune(r) {
			return false
		}
	}
	return true
}
