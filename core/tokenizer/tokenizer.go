package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// Tokenizer is a byte-level BPE tokenizer. It is safe for concurrent use.
type Tokenizer struct {
	vocab   map[string]int32 // byte-level string -> id
	pieces  []string         // id -> byte-level string (or special content)
	ranks   map[[2]int32]int32
	merged  map[[2]int32]int32 // pair -> merged id
	special []addedToken       // matched in text before splitting, longest first
	isSpec  []bool
	b2r     [256]rune
	r2b     map[rune]byte
	byteID  [256]int32 // id of each single byte

	bos, eos, pad int32
	addBOS        bool
	addEOS        bool
	chatTemplate  string

	cache sync.Map // piece -> []int32
	doc   map[string]any
}

type addedToken struct {
	ID      int32  `json:"id"`
	Content string `json:"content"`
	Special bool   `json:"special"`
}

// UnsupportedError names a tokenizer.json component we do not implement.
type UnsupportedError struct{ What, Type string }

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("tokenizer: %s of type %q is not supported", e.What, e.Type)
}

type tokJSON struct {
	AddedTokens   []addedToken    `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         struct {
		Type         string           `json:"type"`
		Vocab        map[string]int32 `json:"vocab"`
		Merges       json.RawMessage  `json:"merges"`
		ByteFallback bool             `json:"byte_fallback"`
		UNK          *string          `json:"unk_token"`
	} `json:"model"`
}

func typeOf(raw json.RawMessage) (string, map[string]json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return "", nil, err
	}
	var t string
	_ = json.Unmarshal(m["type"], &t)
	return t, m, nil
}

// FromJSON builds a tokenizer from a tokenizer.json document.
func FromJSON(data []byte) (*Tokenizer, error) {
	var j tokJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	if j.Model.Type != "BPE" {
		return nil, &UnsupportedError{"model", j.Model.Type}
	}
	if j.Model.ByteFallback {
		return nil, &UnsupportedError{"model option", "byte_fallback"}
	}
	if t, _, err := typeOf(j.Normalizer); err != nil || t != "" {
		return nil, &UnsupportedError{"normalizer", t}
	}
	if t, m, err := typeOf(j.PreTokenizer); err != nil || t != "ByteLevel" {
		return nil, &UnsupportedError{"pre_tokenizer", t}
	} else if ap := string(m["add_prefix_space"]); ap == "true" {
		return nil, &UnsupportedError{"pre_tokenizer option", "ByteLevel add_prefix_space=true"}
	}
	if t, _, err := typeOf(j.Decoder); err != nil || (t != "ByteLevel" && t != "") {
		return nil, &UnsupportedError{"decoder", t}
	}
	tk := &Tokenizer{vocab: j.Model.Vocab, bos: -1, eos: -1, pad: -1}
	tk.b2r, tk.r2b = byteTables()
	n := int32(0)
	for _, id := range tk.vocab {
		n = max(n, id+1)
	}
	for _, a := range j.AddedTokens {
		n = max(n, a.ID+1)
	}
	tk.pieces = make([]string, n)
	tk.isSpec = make([]bool, n)
	for s, id := range tk.vocab {
		if id < 0 {
			return nil, fmt.Errorf("tokenizer.json: negative id %d for %q", id, s)
		}
		tk.pieces[id] = s
	}
	for b := 0; b < 256; b++ {
		id, ok := tk.vocab[string(tk.b2r[b])]
		if !ok {
			return nil, fmt.Errorf("tokenizer.json: byte-level vocabulary lacks byte %#02x", b)
		}
		tk.byteID[b] = id
	}
	merges, err := parseMerges(j.Model.Merges)
	if err != nil {
		return nil, err
	}
	tk.ranks = make(map[[2]int32]int32, len(merges))
	tk.merged = make(map[[2]int32]int32, len(merges))
	for r, m := range merges {
		a, ok1 := tk.vocab[m[0]]
		b, ok2 := tk.vocab[m[1]]
		c, ok3 := tk.vocab[m[0]+m[1]]
		if !ok1 || !ok2 || !ok3 {
			return nil, fmt.Errorf("tokenizer.json: merge %d (%q %q) uses tokens not in the vocabulary", r, m[0], m[1])
		}
		if _, dup := tk.ranks[[2]int32{a, b}]; !dup {
			tk.ranks[[2]int32{a, b}] = int32(r)
			tk.merged[[2]int32{a, b}] = c
		}
	}
	for _, a := range j.AddedTokens {
		tk.pieces[a.ID] = a.Content
		tk.isSpec[a.ID] = a.Special
		tk.special = append(tk.special, a)
	}
	sort.Slice(tk.special, func(a, b int) bool { return len(tk.special[a].Content) > len(tk.special[b].Content) })
	if err := tk.postProcessor(j.PostProcessor); err != nil {
		return nil, err
	}
	var doc map[string]any
	_ = json.Unmarshal(data, &doc)
	tk.doc = doc
	return tk, nil
}

func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		out := make([][2]string, len(strs))
		for i, s := range strs {
			a, b, ok := strings.Cut(s, " ")
			if !ok {
				return nil, fmt.Errorf("tokenizer.json: merge %d %q is not two tokens", i, s)
			}
			out[i] = [2]string{a, b}
		}
		return out, nil
	}
	var pairs [][2]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, fmt.Errorf("tokenizer.json: merges must be strings or pairs: %w", err)
	}
	return pairs, nil
}

// postProcessor reads BOS/EOS insertion from a TemplateProcessing
// post-processor; ByteLevel adds nothing.
func (tk *Tokenizer) postProcessor(raw json.RawMessage) error {
	t, m, err := typeOf(raw)
	if err != nil {
		return err
	}
	switch t {
	case "", "ByteLevel":
		return nil
	case "TemplateProcessing":
		var single []map[string]map[string]any
		if err := json.Unmarshal(m["single"], &single); err != nil {
			return fmt.Errorf("tokenizer.json: post_processor.single: %w", err)
		}
		seenSeq := false
		for _, item := range single {
			if sp, ok := item["SpecialToken"]; ok {
				name, _ := sp["id"].(string)
				id, ok := tk.TokenID(name)
				if !ok {
					return fmt.Errorf("tokenizer.json: post_processor uses unknown token %q", name)
				}
				if !seenSeq {
					tk.addBOS, tk.bos = true, id
				} else {
					tk.addEOS, tk.eos = true, id
				}
			} else if _, ok := item["Sequence"]; ok {
				seenSeq = true
			}
		}
		return nil
	}
	return &UnsupportedError{"post_processor", t}
}

// Load reads dir/tokenizer.json and, when present, dir/tokenizer_config.json
// (special tokens and the chat template).
func Load(dir string) (*Tokenizer, error) {
	path := filepath.Join(dir, "tokenizer.json")
	data, err := os.ReadFile(path)
	var tk *Tokenizer
	switch {
	case errors.Is(err, os.ErrNotExist):
		v, verr := os.ReadFile(filepath.Join(dir, "vocab.json"))
		m, merr := os.ReadFile(filepath.Join(dir, "merges.txt"))
		if verr != nil || merr != nil {
			if _, serr := os.Stat(filepath.Join(dir, "tokenizer.model")); serr == nil {
				return nil, fmt.Errorf("%s: SentencePiece tokenizer.model files are not read yet; convert to tokenizer.json", dir)
			}
			return nil, fmt.Errorf("%s: no tokenizer.json (or vocab.json + merges.txt); llmlab needs the model's tokenizer", dir)
		}
		if tk, err = FromGPT2Files(v, m); err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
	case err != nil:
		return nil, err
	default:
		tk, err = FromJSON(data)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfgPath := filepath.Join(dir, "tokenizer_config.json")
	if cdata, err := os.ReadFile(cfgPath); err == nil {
		if err := tk.applyConfig(cdata); err != nil {
			return nil, fmt.Errorf("%s: %w", cfgPath, err)
		}
	}
	return tk, nil
}

// ApplyConfig reads special tokens and the chat template from the bytes
// of a tokenizer_config.json.
func (tk *Tokenizer) ApplyConfig(data []byte) error { return tk.applyConfig(data) }

func (tk *Tokenizer) applyConfig(data []byte) error {
	var c map[string]json.RawMessage
	if err := json.Unmarshal(data, &c); err != nil {
		return err
	}
	tokenOf := func(key string) (int32, bool) {
		raw, ok := c[key]
		if !ok || string(raw) == "null" {
			return -1, false
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			var obj struct {
				Content string `json:"content"`
			}
			if json.Unmarshal(raw, &obj) != nil {
				return -1, false
			}
			s = obj.Content
		}
		return tk.TokenID(s)
	}
	if id, ok := tokenOf("bos_token"); ok {
		tk.bos = id
	}
	if id, ok := tokenOf("eos_token"); ok {
		tk.eos = id
	}
	if id, ok := tokenOf("pad_token"); ok {
		tk.pad = id
	}
	if raw, ok := c["chat_template"]; ok {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			tk.chatTemplate = s
		}
	}
	return nil
}

// VocabSize is the number of ids, added tokens included.
func (tk *Tokenizer) VocabSize() int { return len(tk.pieces) }

// BOS, EOS and PAD return the ids of those tokens, or -1.
func (tk *Tokenizer) BOS() int32 { return tk.bos }
func (tk *Tokenizer) EOS() int32 { return tk.eos }
func (tk *Tokenizer) PAD() int32 { return tk.pad }

// ChatTemplate is the Jinja chat template from tokenizer_config.json.
func (tk *Tokenizer) ChatTemplate() string { return tk.chatTemplate }

// SetChatTemplate sets the template written by Save.
func (tk *Tokenizer) SetChatTemplate(s string) { tk.chatTemplate = s }

// SetSpecial sets the BOS/EOS/PAD ids (-1: none).
func (tk *Tokenizer) SetSpecial(bos, eos, pad int32) { tk.bos, tk.eos, tk.pad = bos, eos, pad }

// Piece returns the vocabulary string of id ("" if out of range).
func (tk *Tokenizer) Piece(id int32) string {
	if id < 0 || int(id) >= len(tk.pieces) {
		return ""
	}
	return tk.pieces[id]
}

// TokenID looks up a vocabulary or added-token string.
func (tk *Tokenizer) TokenID(s string) (int32, bool) {
	for _, a := range tk.special {
		if a.Content == s {
			return a.ID, true
		}
	}
	id, ok := tk.vocab[s]
	return id, ok
}

// Encode turns text into ids. Added tokens written in the text are
// matched first; with addSpecial, BOS/EOS are added as the file says.
func (tk *Tokenizer) Encode(text string, addSpecial bool) []int32 {
	var out []int32
	if addSpecial && tk.addBOS {
		out = append(out, tk.bos)
	}
	for len(text) > 0 {
		at, which := -1, -1
		for k, a := range tk.special {
			if i := strings.Index(text, a.Content); i >= 0 && (at < 0 || i < at) {
				at, which = i, k
			}
		}
		if at < 0 {
			out = tk.encodeOrdinary(out, text)
			break
		}
		out = tk.encodeOrdinary(out, text[:at])
		out = append(out, tk.special[which].ID)
		text = text[at+len(tk.special[which].Content):]
	}
	if addSpecial && tk.addEOS {
		out = append(out, tk.eos)
	}
	return out
}

func (tk *Tokenizer) encodeOrdinary(out []int32, text string) []int32 {
	splitGPT2(text, func(piece string) {
		if v, ok := tk.cache.Load(piece); ok {
			out = append(out, v.([]int32)...)
			return
		}
		ids := tk.bpe(piece)
		if len(piece) < 64 {
			tk.cache.Store(piece, ids)
		}
		out = append(out, ids...)
	})
	return out
}

// bpe merges the bytes of one piece by rank, lowest first.
func (tk *Tokenizer) bpe(piece string) []int32 {
	syms := make([]int32, len(piece))
	for i := 0; i < len(piece); i++ {
		syms[i] = tk.byteID[piece[i]]
	}
	for len(syms) > 1 {
		best, at := int32(-1), -1
		for i := 0; i+1 < len(syms); i++ {
			if r, ok := tk.ranks[[2]int32{syms[i], syms[i+1]}]; ok && (best < 0 || r < best) {
				best, at = r, i
			}
		}
		if at < 0 {
			break
		}
		pair := [2]int32{syms[at], syms[at+1]}
		m := tk.merged[pair]
		w := 0
		for i := 0; i < len(syms); i++ {
			if i+1 < len(syms) && syms[i] == pair[0] && syms[i+1] == pair[1] {
				syms[w] = m
				i++
			} else {
				syms[w] = syms[i]
			}
			w++
		}
		syms = syms[:w]
	}
	return syms
}

// Decode turns ids back into text; bytes that are not valid UTF-8 become
// U+FFFD.
func (tk *Tokenizer) Decode(ids []int32) string {
	return strings.ToValidUTF8(string(tk.decodeBytes(nil, ids)), "\uFFFD")
}

func (tk *Tokenizer) decodeBytes(buf []byte, ids []int32) []byte {
	for _, id := range ids {
		if id < 0 || int(id) >= len(tk.pieces) {
			continue
		}
		p := tk.pieces[id]
		if tk.isSpec[id] {
			buf = append(buf, p...)
			continue
		}
		for _, r := range p {
			if b, ok := tk.r2b[r]; ok {
				buf = append(buf, b)
			} else {
				buf = append(buf, string(r)...)
			}
		}
	}
	return buf
}
