package tokenizer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// FromGPT2Files builds GPT-2's tokenizer from the contents of its
// vocab.json (encoder.json) and merges.txt (vocab.bpe). The names in errors
// are the conventional file names; LoadGPT2 reads them from disk.
func FromGPT2Files(vocabJSON, merges []byte) (*Tokenizer, error) {
	return fromGPT2("vocab.json", "merges.txt", vocabJSON, merges)
}

func fromGPT2(vocabName, mergesName string, vdata, mdata []byte) (*Tokenizer, error) {
	var vocab map[string]int32
	if err := json.Unmarshal(vdata, &vocab); err != nil {
		return nil, fmt.Errorf("%s: %w", vocabName, err)
	}
	var merges []string
	sc := bufio.NewScanner(bytes.NewReader(mdata))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimRight(sc.Text(), "\r")
		if s == "" || line == 1 && strings.HasPrefix(s, "#version") {
			continue
		}
		if a, b, ok := strings.Cut(s, " "); !ok || a == "" || b == "" || strings.Contains(b, " ") {
			return nil, fmt.Errorf("%s:%d: %q is not two tokens separated by one space", mergesName, line, s)
		}
		merges = append(merges, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", mergesName, err)
	}
	doc, err := byteLevelDoc(vocab, merges, []string{"<|endoftext|>"})
	if err != nil {
		return nil, err
	}
	t, err := FromJSON(doc)
	if err != nil {
		return nil, fmt.Errorf("%s, %s: %w", vocabName, mergesName, err)
	}
	return t, nil
}

// ApplyConfig applies a tokenizer_config.json document (special tokens and
// the chat template), as Load does when the file sits beside the tokenizer.
func (t *Tokenizer) ApplyConfig(data []byte) error { return t.applyConfig(data) }

// SetSpecial sets the BOS, EOS and PAD ids (-1: none) that Save writes to
// tokenizer_config.json.
func (t *Tokenizer) SetSpecial(bos, eos, pad int32) {
	t.bos, t.eos, t.pad = bos, eos, pad
	t.config = nil
}

// JSON returns the tokenizer.json document the tokenizer was built from.
func (t *Tokenizer) JSON() []byte { return t.doc }

// Vocabulary returns every token string in id order (the model's strings,
// in GPT-2's byte alphabet for a byte-level vocabulary, and the contents of
// added tokens) and whether each is a special (control) token. Ids with no
// token are "".
func (t *Tokenizer) Vocabulary() ([]string, []bool) {
	toks := make([]string, t.vocabSize)
	special := make([]bool, t.vocabSize)
	for id := range toks {
		toks[id] = t.Piece(int32(id))
		special[id] = t.IsSpecial(int32(id))
	}
	return toks, special
}

// MergeList returns the merges in rank order as "left right" strings.
func (t *Tokenizer) MergeList() []string {
	type merge struct {
		rank uint32
		a, b int32
	}
	ms := make([]merge, 0, len(t.model.merges))
	for k, v := range t.model.merges {
		ms = append(ms, merge{uint32(v >> 32), int32(uint32(k >> 32)), int32(uint32(k))})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].rank < ms[j].rank })
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = t.model.pieces[m.a] + " " + t.model.pieces[m.b]
	}
	return out
}
