package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// wordModel is a tokenizer.json model other than BPE: WordPiece, WordLevel
// or Unigram. It encodes one pre-tokenized piece; the vocabulary tables it
// shares with the rest of the pipeline (token strings, ids, the unknown
// token, "<0xXX>" byte tokens) stay in the bpeModel beside it, which then
// has no merges.
type wordModel interface {
	encode(ids []int32, s string) []int32
}

// wordPiece is BERT's model: greedy longest-match-first from the left,
// continuations looked up with the "##" prefix; a word with a part that
// matches nothing, or longer than maxChars runes, is the unknown token.
//
// Example: "unaffable" -> "un", "##aff", "##able".
type wordPiece struct {
	m        *bpeModel
	prefix   string
	maxChars int
}

func (w *wordPiece) encode(ids []int32, s string) []int32 {
	if utf8.RuneCountInString(s) > w.maxChars {
		return append(ids, w.m.unk)
	}
	n0 := len(ids)
	var buf []byte // prefix + candidate, looked up without allocating
	for start := 0; start < len(s); {
		found := false
		for end := len(s); end > start; end = lastRuneStart(s, end) {
			var id int32
			var ok bool
			if start == 0 {
				id, ok = w.m.vocab[s[:end]]
			} else {
				buf = append(append(buf[:0], w.prefix...), s[start:end]...)
				id, ok = w.m.vocab[string(buf)]
			}
			if ok {
				ids = append(ids, id)
				start, found = end, true
				break
			}
		}
		if !found {
			return append(ids[:n0], w.m.unk)
		}
	}
	return ids
}

// lastRuneStart returns the start of the rune that ends at s[:end].
func lastRuneStart(s string, end int) int {
	_, n := utf8.DecodeLastRuneInString(s[:end])
	return end - n
}

// wordLevel maps each piece to its id, or to the unknown token.
type wordLevel struct{ m *bpeModel }

func (w *wordLevel) encode(ids []int32, s string) []int32 {
	if id, ok := w.m.vocab[s]; ok {
		return append(ids, id)
	}
	return append(ids, w.m.unk)
}

// unigram is SentencePiece's unigram language model: the segmentation of
// the piece with the highest total log-probability (score), found by a
// forward Viterbi pass over byte offsets. A character no piece covers is
// the unknown token with a score of the lowest score minus 10; runs of
// unknowns are fused into one. Ties go to the path found first (the
// earliest start), as HF tokenizers' optimized encoder does.
type unigram struct {
	m        *bpeModel
	scores   []float64 // by id
	maxLen   int       // longest piece in bytes
	unkScore float64
}

func (u *unigram) encode(ids []int32, s string) []int32 {
	type node struct {
		score float64
		start int
		id    int32
		set   bool
	}
	best := make([]node, len(s)+1)
	best[0].set = true
	for start := 0; start < len(s); {
		_, mb := utf8.DecodeRuneInString(s[start:])
		base := best[start].score
		single := false
		for end := start + 1; end <= len(s) && end-start <= u.maxLen; end++ {
			if end < len(s) && !utf8.RuneStart(s[end]) {
				continue
			}
			id, ok := u.m.vocab[s[start:end]]
			if !ok {
				continue
			}
			if sc := base + u.scores[id]; !best[end].set || sc > best[end].score {
				best[end] = node{sc, start, id, true}
			}
			single = single || end-start == mb
		}
		if !single {
			if sc := base + u.unkScore; !best[start+mb].set || sc > best[start+mb].score {
				best[start+mb] = node{sc, start, u.m.unk, true}
			}
		}
		start += mb
	}
	// Walk back, then emit in order; unknown runs are fused (as text, then
	// looked up: the fused text may be a byte-fallback case).
	type tok struct {
		start, end int
		id         int32
	}
	var rev []tok
	for end := len(s); end > 0; {
		n := best[end]
		if n.id == u.m.unk && len(rev) > 0 && rev[len(rev)-1].id == u.m.unk {
			rev[len(rev)-1].start = n.start
		} else {
			rev = append(rev, tok{n.start, end, n.id})
		}
		end = n.start
	}
	for k := len(rev) - 1; k >= 0; k-- {
		t := rev[k]
		if t.id != u.m.unk {
			ids = append(ids, t.id)
			continue
		}
		text := s[t.start:t.end]
		if id, ok := u.m.vocab[text]; ok {
			ids = append(ids, id)
			continue
		}
		if u.m.byteFallback && hasByteTokens(u.m, text) {
			for i := 0; i < len(text); i++ {
				ids = append(ids, u.m.byteTok[text[i]])
			}
			continue
		}
		ids = append(ids, u.m.unk)
	}
	return ids
}

// vocabModel builds the shared tables of a model from its token -> id map.
func vocabModel(vocab map[string]int32, unkToken *string) (*bpeModel, error) {
	m, err := newBPEModel(vocab, nil)
	if err != nil {
		return nil, err
	}
	if unkToken != nil && *unkToken != "" {
		id, ok := vocab[*unkToken]
		if !ok {
			return nil, fmt.Errorf("unk_token %q is not in the vocabulary", *unkToken)
		}
		m.unk = id
	}
	return m, nil
}

type wordModelJSON struct {
	Type                    string          `json:"type"`
	UnkToken                *string         `json:"unk_token"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	MaxInputCharsPerWord    *int            `json:"max_input_chars_per_word"`
	Vocab                   json.RawMessage `json:"vocab"`
	UnkID                   *int            `json:"unk_id"`
	ByteFallback            bool            `json:"byte_fallback"`
}

// buildWordModel builds a WordPiece, WordLevel or Unigram model.
func buildWordModel(typ string, raw json.RawMessage) (*bpeModel, wordModel, error) {
	var mj wordModelJSON
	if err := json.Unmarshal(raw, &mj); err != nil {
		return nil, nil, err
	}
	switch typ {
	case "WordPiece", "WordLevel":
		var vocab map[string]int32
		if err := json.Unmarshal(mj.Vocab, &vocab); err != nil {
			return nil, nil, fmt.Errorf("%s vocab: %w", typ, err)
		}
		m, err := vocabModel(vocab, mj.UnkToken)
		if err != nil {
			return nil, nil, err
		}
		if m.unk < 0 {
			return nil, nil, fmt.Errorf("%s without an unk_token", typ)
		}
		if typ == "WordLevel" {
			return m, &wordLevel{m}, nil
		}
		w := &wordPiece{m: m, prefix: "##", maxChars: 100}
		if mj.ContinuingSubwordPrefix != nil {
			w.prefix = *mj.ContinuingSubwordPrefix
		}
		if mj.MaxInputCharsPerWord != nil {
			w.maxChars = *mj.MaxInputCharsPerWord
		}
		return m, w, nil
	case "Unigram":
		var list [][2]json.RawMessage
		if err := json.Unmarshal(mj.Vocab, &list); err != nil {
			return nil, nil, fmt.Errorf("Unigram vocab: want [[piece, score], ...]: %w", err)
		}
		if len(list) == 0 {
			return nil, nil, errors.New("Unigram vocab is empty")
		}
		vocab := make(map[string]int32, len(list))
		u := &unigram{scores: make([]float64, len(list))}
		minScore := math.Inf(1)
		for i, e := range list {
			var p string
			if err := json.Unmarshal(e[0], &p); err != nil {
				return nil, nil, fmt.Errorf("Unigram vocab[%d]: piece: %w", i, err)
			}
			if err := json.Unmarshal(e[1], &u.scores[i]); err != nil {
				return nil, nil, fmt.Errorf("Unigram vocab[%d]: score: %w", i, err)
			}
			if _, dup := vocab[p]; !dup {
				vocab[p] = int32(i)
			}
			u.maxLen = max(u.maxLen, len(p))
			minScore = min(minScore, u.scores[i])
		}
		m, err := newBPEModel(vocab, nil)
		if err != nil {
			return nil, nil, err
		}
		m.pieces = m.pieces[:0]
		for _, e := range list { // every id, duplicates included
			var p string
			json.Unmarshal(e[0], &p)
			m.pieces = append(m.pieces, p)
		}
		if mj.UnkID == nil {
			return nil, nil, errors.New("Unigram without an unk_id is not supported")
		}
		if *mj.UnkID < 0 || *mj.UnkID >= len(list) {
			return nil, nil, fmt.Errorf("Unigram unk_id %d is outside the vocabulary of %d", *mj.UnkID, len(list))
		}
		m.unk, m.fuseUnk, m.byteFallback = int32(*mj.UnkID), true, mj.ByteFallback
		u.m, u.unkScore = m, minScore-10
		return m, u, nil
	}
	return nil, nil, fmt.Errorf("model type %q is not supported (BPE, WordPiece, WordLevel, Unigram)", typ)
}

// hasByteTokens reports whether every byte of s has its "<0xXX>" token.
func hasByteTokens(m *bpeModel, s string) bool {
	for i := 0; i < len(s); i++ {
		if m.byteTok[s[i]] < 0 {
			return false
		}
	}
	return true
}
