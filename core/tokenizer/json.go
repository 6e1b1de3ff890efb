package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// The tokenizer.json document, as far as llmlab reads it. Components are
// decoded in two steps: the "type" field first, then the fields of that
// type; an unknown type is an error naming it.

type fileJSON struct {
	Version       string          `json:"version"`
	AddedTokens   []addedJSON     `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	Model         json.RawMessage `json:"model"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	// truncation and padding are batch settings: llmlab's data and
	// generation code apply their own, so they are not read.
}

type addedJSON struct {
	ID         int32  `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type typed struct {
	Type string `json:"type"`
}

// patternJSON is {"String": "..."} or {"Regex": "..."}.
type patternJSON struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

type modelJSON struct {
	Type                    string          `json:"type"`
	Dropout                 *float64        `json:"dropout"`
	UnkToken                *string         `json:"unk_token"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	FuseUnk                 bool            `json:"fuse_unk"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges"`
	Vocab                   json.RawMessage `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
}

// FromJSON builds a Tokenizer from a tokenizer.json document.
func FromJSON(data []byte) (*Tokenizer, error) {
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	t := &Tokenizer{blt: newByteLevelTables(), bos: -1, eos: -1, pad: -1, doc: data}
	var err error
	if t.model, t.word, err = buildModel(f.Model); err != nil {
		return nil, fmt.Errorf("tokenizer.json: model: %w", err)
	}
	if t.norm, err = buildNormalizer(f.Normalizer); err != nil {
		return nil, fmt.Errorf("tokenizer.json: normalizer: %w", err)
	}
	if t.pre, t.byteLevel, err = buildPreTokenizer(f.PreTokenizer); err != nil {
		return nil, fmt.Errorf("tokenizer.json: pre_tokenizer: %w", err)
	}
	if t.dec, err = buildDecoder(f.Decoder, t.blt); err != nil {
		return nil, fmt.Errorf("tokenizer.json: decoder: %w", err)
	}
	toks := make([]addedToken, len(f.AddedTokens))
	for i, a := range f.AddedTokens {
		if a.Content == "" || a.ID < 0 {
			return nil, fmt.Errorf("tokenizer.json: added_tokens[%d]: empty content or negative id %d", i, a.ID)
		}
		toks[i] = addedToken{a.ID, a.Content, a.SingleWord, a.LStrip, a.RStrip, a.Normalized, a.Special}
	}
	t.added.build(toks, t.norm)
	if t.prefix, t.suffix, err = buildPostProcessor(f.PostProcessor, t); err != nil {
		return nil, fmt.Errorf("tokenizer.json: post_processor: %w", err)
	}
	t.finish()
	return t, nil
}

// finish fills the derived tables and the size once the parts are built.
func (t *Tokenizer) finish() {
	m := t.model
	for b := 0; b < 256; b++ {
		t.byteSym[b] = -1
		if id, ok := m.vocab[t.blt.str[b]]; ok {
			t.byteSym[b] = id
		}
		m.byteTok[b] = -1
		if id, ok := m.vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
			m.byteTok[b] = id
		}
	}
	if t.byteLevel && m.ignoreMerges {
		t.rawVocab = make(map[string]int32, len(m.vocab))
		for s, id := range m.vocab {
			if b, ok := t.blt.decodeStrict(s); ok {
				t.rawVocab[string(b)] = id
			}
		}
	}
	t.vocabSize = len(m.pieces)
	for _, a := range t.added.toks {
		t.vocabSize = max(t.vocabSize, int(a.id)+1)
	}
	t.guessSpecials()
}

// decodeStrict maps a byte-level token to bytes, failing on a rune outside
// the alphabet.
func (tab *byteLevelTables) decodeStrict(s string) ([]byte, bool) {
	var b []byte
	for _, r := range s {
		c, ok := tab.toByte[r]
		if !ok {
			return nil, false
		}
		b = append(b, c)
	}
	return b, true
}

// guessSpecials sets BOS/EOS/PAD from the post-processor and well-known
// token names; tokenizer_config.json, when present, overrides them.
func (t *Tokenizer) guessSpecials() {
	find := func(names ...string) int32 {
		for _, n := range names {
			if id, ok := t.TokenID(n); ok {
				return id
			}
		}
		return -1
	}
	t.bos = find("<|begin_of_text|>", "<s>", "<bos>", "<|endoftext|>")
	t.eos = find("<|end_of_text|>", "</s>", "<eos>", "<|endoftext|>")
	t.pad = find("<pad>", "<|pad|>", "[PAD]", "<|padding|>")
	if len(t.prefix) > 0 {
		t.bos = t.prefix[0]
	}
	if len(t.suffix) > 0 {
		t.eos = t.suffix[len(t.suffix)-1]
	}
}

func isNull(raw json.RawMessage) bool {
	return len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null"
}

func typeOf(raw json.RawMessage) (string, error) {
	var ty typed
	if err := json.Unmarshal(raw, &ty); err != nil {
		return "", err
	}
	return ty.Type, nil
}

func buildModel(raw json.RawMessage) (*bpeModel, wordModel, error) {
	if isNull(raw) {
		return nil, nil, errors.New("missing")
	}
	var mj modelJSON
	if err := json.Unmarshal(raw, &mj); err != nil {
		return nil, nil, err
	}
	if mj.Type == "" && mj.Merges != nil {
		mj.Type = "BPE" // files from tokenizers < 0.9 omit the type
	}
	if mj.Type != "BPE" {
		return buildWordModel(mj.Type, raw)
	}
	m, err := buildBPE(mj)
	return m, nil, err
}

func buildBPE(mj modelJSON) (*bpeModel, error) {
	if mj.Dropout != nil && *mj.Dropout != 0 {
		return nil, fmt.Errorf("BPE dropout %g is not supported", *mj.Dropout)
	}
	if mj.ContinuingSubwordPrefix != nil && *mj.ContinuingSubwordPrefix != "" {
		return nil, fmt.Errorf("BPE continuing_subword_prefix %q is not supported", *mj.ContinuingSubwordPrefix)
	}
	if mj.EndOfWordSuffix != nil && *mj.EndOfWordSuffix != "" {
		return nil, fmt.Errorf("BPE end_of_word_suffix %q is not supported", *mj.EndOfWordSuffix)
	}
	var vocab map[string]int32
	if !isNull(mj.Vocab) {
		if err := json.Unmarshal(mj.Vocab, &vocab); err != nil {
			return nil, fmt.Errorf("BPE vocab: %w", err)
		}
	}
	merges, err := parseMerges(mj.Merges)
	if err != nil {
		return nil, err
	}
	m, err := newBPEModel(vocab, merges)
	if err != nil {
		return nil, err
	}
	m.fuseUnk, m.byteFallback, m.ignoreMerges = mj.FuseUnk, mj.ByteFallback, mj.IgnoreMerges
	if mj.UnkToken != nil {
		id, ok := m.vocab[*mj.UnkToken]
		if !ok {
			return nil, fmt.Errorf("unk_token %q is not in the vocabulary", *mj.UnkToken)
		}
		m.unk = id
	}
	return m, nil
}

// parseMerges reads merges in either form: ["a b", ...] (tokenizers < 0.20,
// and GPT-2's merges.txt) or [["a", "b"], ...].
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		out := make([][2]string, len(strs))
		for i, s := range strs {
			a, b, ok := strings.Cut(s, " ")
			if !ok || a == "" || b == "" || strings.Contains(b, " ") {
				return nil, fmt.Errorf("merges[%d] = %q: want two tokens separated by one space", i, s)
			}
			out[i] = [2]string{a, b}
		}
		return out, nil
	}
	var pairs [][]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, fmt.Errorf("merges: neither a list of strings nor a list of pairs: %w", err)
	}
	out := make([][2]string, len(pairs))
	for i, p := range pairs {
		if len(p) != 2 {
			return nil, fmt.Errorf("merges[%d] has %d entries, want 2", i, len(p))
		}
		out[i] = [2]string{p[0], p[1]}
	}
	return out, nil
}

// newBPEModel builds the model; the merged token of every merge must be in
// the vocabulary, as HF requires.
func newBPEModel(vocab map[string]int32, merges [][2]string) (*bpeModel, error) {
	m := &bpeModel{vocab: vocab, unk: -1, merges: make(map[uint64]uint64, len(merges))}
	maxID := int32(-1)
	for s, id := range vocab {
		if id < 0 {
			return nil, fmt.Errorf("vocab[%q] = %d: negative id", s, id)
		}
		maxID = max(maxID, id)
	}
	if int(maxID) >= 16*len(vocab)+1024 {
		return nil, fmt.Errorf("vocab: largest id %d is far beyond the %d entries", maxID, len(vocab))
	}
	m.pieces = make([]string, maxID+1)
	for s, id := range vocab {
		m.pieces[id] = s
	}
	for r, p := range merges {
		a, ok1 := vocab[p[0]]
		b, ok2 := vocab[p[1]]
		c, ok3 := vocab[p[0]+p[1]]
		if !ok1 || !ok2 || !ok3 {
			return nil, fmt.Errorf("merges[%d] (%q %q): token not in the vocabulary", r, p[0], p[1])
		}
		k := pairKey(a, b)
		if _, dup := m.merges[k]; !dup { // the first (lowest) rank wins
			m.merges[k] = uint64(r)<<32 | uint64(uint32(c))
		}
	}
	return m, nil
}

type normJSON struct {
	Type        string            `json:"type"`
	Normalizers []json.RawMessage `json:"normalizers"`
	Prepend     string            `json:"prepend"`
	Pattern     patternJSON       `json:"pattern"`
	Content     string            `json:"content"`
	StripLeft   bool              `json:"strip_left"`
	StripRight  bool              `json:"strip_right"`
	// BertNormalizer
	CleanText          *bool `json:"clean_text"`
	HandleChineseChars *bool `json:"handle_chinese_chars"`
	StripAccents       *bool `json:"strip_accents"`
	Lowercase          *bool `json:"lowercase"`
	// Precompiled
	PrecompiledCharsmap *string `json:"precompiled_charsmap"`
}

func buildNormalizer(raw json.RawMessage) (normalizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	var n normJSON
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, err
	}
	switch n.Type {
	case "NFC":
		return normForm{norm.NFC}, nil
	case "NFD":
		return normForm{norm.NFD}, nil
	case "NFKC":
		return normForm{norm.NFKC}, nil
	case "NFKD":
		return normForm{norm.NFKD}, nil
	case "Lowercase":
		return normLowercase{}, nil
	case "StripAccents":
		return normStripAccents{}, nil
	case "BertNormalizer":
		orTrue := func(b *bool) bool { return b == nil || *b }
		x := normBert{clean: orTrue(n.CleanText), chinese: orTrue(n.HandleChineseChars), lower: orTrue(n.Lowercase)}
		x.strip = x.lower // strip_accents null follows lowercase
		if n.StripAccents != nil {
			x.strip = *n.StripAccents
		}
		return x, nil
	case "Precompiled":
		if n.PrecompiledCharsmap == nil || *n.PrecompiledCharsmap == "" {
			return nil, nil // an empty charsmap is the identity
		}
		return newPrecompiled(*n.PrecompiledCharsmap)
	case "Prepend":
		return normPrepend{n.Prepend}, nil
	case "Strip":
		return normStrip{n.StripLeft, n.StripRight}, nil
	case "Replace":
		r := normReplace{content: n.Content}
		switch {
		case n.Pattern.String != nil:
			if *n.Pattern.String == "" {
				return nil, errors.New("Replace with an empty pattern")
			}
			r.literal = *n.Pattern.String
		case n.Pattern.Regex != nil:
			re, err := compilePattern("Replace", *n.Pattern.Regex)
			if err != nil {
				return nil, err
			}
			r.re = re
		default:
			return nil, errors.New("Replace without a pattern")
		}
		return r, nil
	case "Sequence":
		var seq normSequence
		for i, sub := range n.Normalizers {
			x, err := buildNormalizer(sub)
			if err != nil {
				return nil, fmt.Errorf("Sequence[%d]: %w", i, err)
			}
			if x != nil {
				seq = append(seq, x)
			}
		}
		return seq, nil
	}
	return nil, fmt.Errorf("normalizer type %q is not supported", n.Type)
}

type preJSON struct {
	Type             string            `json:"type"`
	PreTokenizers    []json.RawMessage `json:"pretokenizers"`
	AddPrefixSpace   *bool             `json:"add_prefix_space"`
	UseRegex         *bool             `json:"use_regex"`
	Pattern          patternJSON       `json:"pattern"`
	Behavior         string            `json:"behavior"`
	Invert           bool              `json:"invert"`
	Replacement      string            `json:"replacement"`
	PrependScheme    string            `json:"prepend_scheme"`
	Split            *bool             `json:"split"`
	IndividualDigits bool              `json:"individual_digits"`
}

// buildPreTokenizer returns the pre-tokenizer and whether it ends in a
// byte-level mapping.
func buildPreTokenizer(raw json.RawMessage) (preTokenizer, bool, error) {
	if isNull(raw) {
		return nil, false, nil
	}
	var p preJSON
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, false, err
	}
	switch p.Type {
	case "ByteLevel":
		x := &preByteLevel{addPrefixSpace: p.AddPrefixSpace != nil && *p.AddPrefixSpace}
		if p.UseRegex == nil || *p.UseRegex {
			x.split = &preSplit{known: splitGPT2, beh: behIsolated}
		}
		if !x.addPrefixSpace && x.split != nil {
			return x.split, true, nil
		}
		return x, true, nil
	case "Split":
		x := &preSplit{invert: p.Invert}
		b, ok := behaviors[p.Behavior]
		if !ok {
			return nil, false, fmt.Errorf("Split behavior %q is not supported", p.Behavior)
		}
		x.beh = b
		switch {
		case p.Pattern.String != nil:
			x.literal = *p.Pattern.String
		case p.Pattern.Regex != nil:
			if x.known = knownPattern(*p.Pattern.Regex); x.known == 0 {
				re, err := compilePattern("Split", *p.Pattern.Regex)
				if err != nil {
					return nil, false, err
				}
				x.re = re
			}
		default:
			return nil, false, errors.New("Split without a pattern")
		}
		return x, false, nil
	case "Metaspace":
		x := &preMetaspace{repl: p.Replacement, scheme: p.PrependScheme, split: p.Split == nil || *p.Split}
		if utf8.RuneCountInString(x.repl) != 1 {
			return nil, false, fmt.Errorf("Metaspace replacement %q is not one character", x.repl)
		}
		if x.scheme == "" { // files before tokenizers 0.15
			x.scheme = "never"
			if p.AddPrefixSpace == nil || *p.AddPrefixSpace {
				x.scheme = "always"
			}
		}
		if x.scheme != "always" && x.scheme != "first" && x.scheme != "never" {
			return nil, false, fmt.Errorf("Metaspace prepend_scheme %q is not supported", x.scheme)
		}
		return x, false, nil
	case "Digits":
		return &preDigits{individual: p.IndividualDigits}, false, nil
	case "BertPreTokenizer":
		return preBert{}, false, nil
	case "WhitespaceSplit":
		return preWhitespaceSplit{}, false, nil
	case "Whitespace":
		re, err := compilePattern("Whitespace", `\w+|[^\w\s]+`)
		if err != nil {
			return nil, false, err
		}
		return preRegexPieces{re}, false, nil
	case "Punctuation":
		b := behIsolated
		if p.Behavior != "" {
			var ok bool
			if b, ok = behaviors[p.Behavior]; !ok {
				return nil, false, fmt.Errorf("Punctuation behavior %q is not supported", p.Behavior)
			}
		}
		return prePunctuation{b}, false, nil
	case "Sequence":
		var seq preSequence
		byteLevel := false
		for i, sub := range p.PreTokenizers {
			x, bl, err := buildPreTokenizer(sub)
			if err != nil {
				return nil, false, fmt.Errorf("Sequence[%d]: %w", i, err)
			}
			if byteLevel {
				return nil, false, fmt.Errorf("Sequence[%d]: a pre-tokenizer after ByteLevel is not supported", i)
			}
			byteLevel = bl
			if b, ok := x.(*preByteLevel); ok && !b.addPrefixSpace && b.split == nil {
				continue // only maps bytes, which the model does
			}
			if x != nil {
				seq = append(seq, x)
			}
		}
		if len(seq) == 1 {
			return seq[0], byteLevel, nil
		}
		return seq, byteLevel, nil
	}
	return nil, false, fmt.Errorf("pre-tokenizer type %q is not supported", p.Type)
}

type decJSON struct {
	Type           string            `json:"type"`
	Decoders       []json.RawMessage `json:"decoders"`
	Replacement    string            `json:"replacement"`
	PrependScheme  string            `json:"prepend_scheme"`
	AddPrefixSpace *bool             `json:"add_prefix_space"`
	Pattern        patternJSON       `json:"pattern"`
	Content        json.RawMessage   `json:"content"`
	Start          int               `json:"start"`
	Stop           int               `json:"stop"`
	Prefix         *string           `json:"prefix"`
	Cleanup        *bool             `json:"cleanup"`
}

func buildDecoder(raw json.RawMessage, tab *byteLevelTables) (decoder, error) {
	if isNull(raw) {
		return nil, nil
	}
	var d decJSON
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, err
	}
	switch d.Type {
	case "ByteLevel":
		return decByteLevel{tab}, nil
	case "ByteFallback":
		return decByteFallback{}, nil
	case "Fuse":
		return decFuse{}, nil
	case "WordPiece":
		x := decWordPiece{prefix: "##", cleanup: true}
		if d.Prefix != nil {
			x.prefix = *d.Prefix
		}
		if d.Cleanup != nil {
			x.cleanup = *d.Cleanup
		}
		return x, nil
	case "Strip":
		var c string
		if err := json.Unmarshal(d.Content, &c); err != nil || utf8.RuneCountInString(c) != 1 {
			return nil, fmt.Errorf("Strip content %s is not one character", d.Content)
		}
		r, _ := utf8.DecodeRuneInString(c)
		return decStrip{r, d.Start, d.Stop}, nil
	case "Replace":
		if d.Pattern.String == nil {
			return nil, errors.New("Replace decoder with a regex pattern is not supported")
		}
		var c string
		if err := json.Unmarshal(d.Content, &c); err != nil {
			return nil, fmt.Errorf("Replace content: %w", err)
		}
		return decReplace{*d.Pattern.String, c}, nil
	case "Metaspace":
		r, n := utf8.DecodeRuneInString(d.Replacement)
		if n == 0 || n != len(d.Replacement) {
			return nil, fmt.Errorf("Metaspace replacement %q is not one character", d.Replacement)
		}
		drop := d.PrependScheme != "never"
		if d.PrependScheme == "" {
			drop = d.AddPrefixSpace == nil || *d.AddPrefixSpace
		}
		return decMetaspace{r, drop}, nil
	case "Sequence":
		var seq decSequence
		for i, sub := range d.Decoders {
			x, err := buildDecoder(sub, tab)
			if err != nil {
				return nil, fmt.Errorf("Sequence[%d]: %w", i, err)
			}
			if x != nil {
				seq = append(seq, x)
			}
		}
		return seq, nil
	}
	return nil, fmt.Errorf("decoder type %q is not supported", d.Type)
}

type postJSON struct {
	Type          string            `json:"type"`
	Processors    []json.RawMessage `json:"processors"`
	Single        []json.RawMessage `json:"single"`
	SpecialTokens map[string]struct {
		ID  string  `json:"id"`
		IDs []int32 `json:"ids"`
	} `json:"special_tokens"`
	Sep []json.RawMessage `json:"sep"`
	Cls []json.RawMessage `json:"cls"`
}

// buildPostProcessor returns the ids the post-processor puts before and
// after a single sequence.
func buildPostProcessor(raw json.RawMessage, t *Tokenizer) (prefix, suffix []int32, err error) {
	if isNull(raw) {
		return nil, nil, nil
	}
	var p postJSON
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, nil, err
	}
	switch p.Type {
	case "ByteLevel": // offsets only
		return nil, nil, nil
	case "TemplateProcessing":
		seen := false
		for i, item := range p.Single {
			var it struct {
				SpecialToken *struct{ ID string } `json:"SpecialToken"`
				Sequence     *struct{ ID string } `json:"Sequence"`
			}
			if err := json.Unmarshal(item, &it); err != nil {
				return nil, nil, fmt.Errorf("single[%d]: %w", i, err)
			}
			switch {
			case it.Sequence != nil:
				if seen {
					return nil, nil, errors.New("single template has two sequences")
				}
				seen = true
			case it.SpecialToken != nil:
				st, ok := p.SpecialTokens[it.SpecialToken.ID]
				if !ok {
					return nil, nil, fmt.Errorf("single[%d]: special token %q is not in special_tokens", i, it.SpecialToken.ID)
				}
				if seen {
					suffix = append(suffix, st.IDs...)
				} else {
					prefix = append(prefix, st.IDs...)
				}
			default:
				return nil, nil, fmt.Errorf("single[%d]: neither SpecialToken nor Sequence", i)
			}
		}
		if !seen {
			return nil, nil, errors.New("single template has no sequence")
		}
		return prefix, suffix, nil
	case "RobertaProcessing", "BertProcessing":
		id := func(name string, v []json.RawMessage) (int32, error) {
			var x int32
			if len(v) != 2 || json.Unmarshal(v[1], &x) != nil {
				return 0, fmt.Errorf("%s %s: want [token, id]", p.Type, name)
			}
			return x, nil
		}
		cls, err := id("cls", p.Cls)
		if err != nil {
			return nil, nil, err
		}
		sep, err := id("sep", p.Sep)
		if err != nil {
			return nil, nil, err
		}
		return []int32{cls}, []int32{sep}, nil
	case "Sequence":
		for i, sub := range p.Processors {
			pre, suf, err := buildPostProcessor(sub, t)
			if err != nil {
				return nil, nil, fmt.Errorf("Sequence[%d]: %w", i, err)
			}
			prefix = append(pre, prefix...)
			suffix = append(suffix, suf...)
		}
		return prefix, suffix, nil
	}
	return nil, nil, fmt.Errorf("post-processor type %q is not supported", p.Type)
}
