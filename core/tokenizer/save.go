package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"unicode/utf8"

	"llmlab/core/checkpoint"
)

// document renders the tokenizer as a tokenizer.json document.
func (tk *Tokenizer) document() map[string]any {
	type merge struct {
		rank int32
		a, b int32
	}
	ms := make([]merge, 0, len(tk.ranks))
	for p, r := range tk.ranks {
		ms = append(ms, merge{r, p[0], p[1]})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].rank < ms[j].rank })
	merges := make([][2]string, len(ms))
	for i, m := range ms {
		merges[i] = [2]string{tk.pieces[m.a], tk.pieces[m.b]}
	}
	added := make([]map[string]any, 0, len(tk.special))
	specials := append([]addedToken(nil), tk.special...)
	sort.Slice(specials, func(i, j int) bool { return specials[i].ID < specials[j].ID })
	for _, a := range specials {
		added = append(added, map[string]any{
			"id": a.ID, "content": a.Content, "single_word": false, "lstrip": false,
			"rstrip": false, "normalized": false, "special": a.Special,
		})
	}
	byteLevel := func() map[string]any {
		return map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
	}
	var post any = byteLevel()
	if tk.addBOS || tk.addEOS {
		var single []any
		special := map[string]any{}
		if tk.addBOS {
			single = append(single, map[string]any{"SpecialToken": map[string]any{"id": tk.pieces[tk.bos], "type_id": 0}})
			special[tk.pieces[tk.bos]] = map[string]any{"id": tk.pieces[tk.bos], "ids": []int32{tk.bos}, "tokens": []string{tk.pieces[tk.bos]}}
		}
		single = append(single, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}})
		if tk.addEOS {
			single = append(single, map[string]any{"SpecialToken": map[string]any{"id": tk.pieces[tk.eos], "type_id": 0}})
			special[tk.pieces[tk.eos]] = map[string]any{"id": tk.pieces[tk.eos], "ids": []int32{tk.eos}, "tokens": []string{tk.pieces[tk.eos]}}
		}
		post = map[string]any{"type": "TemplateProcessing", "single": single, "pair": single, "special_tokens": special}
	}
	vocab := make(map[string]int32, len(tk.vocab))
	for s, id := range tk.vocab {
		vocab[s] = id
	}
	return map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil,
		"added_tokens":   added,
		"normalizer":     nil,
		"pre_tokenizer":  byteLevel(),
		"post_processor": post,
		"decoder":        byteLevel(),
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
			"vocab": vocab, "merges": merges,
		},
	}
}

// JSON returns the tokenizer.json document.
func (tk *Tokenizer) JSON() ([]byte, error) { return json.MarshalIndent(tk.document(), "", " ") }

// Save writes dir/tokenizer.json and dir/tokenizer_config.json.
func (tk *Tokenizer) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := tk.JSON()
	if err != nil {
		return err
	}
	if err := checkpoint.WriteFileAtomic(filepath.Join(dir, "tokenizer.json"), js, 0o644); err != nil {
		return err
	}
	cfg := map[string]any{"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 1 << 20, "clean_up_tokenization_spaces": false}
	for key, id := range map[string]int32{"bos_token": tk.bos, "eos_token": tk.eos, "pad_token": tk.pad} {
		if id >= 0 {
			cfg[key] = tk.pieces[id]
		} else {
			cfg[key] = nil
		}
	}
	if tk.chatTemplate != "" {
		cfg["chat_template"] = tk.chatTemplate
	}
	cj, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return checkpoint.WriteFileAtomic(filepath.Join(dir, "tokenizer_config.json"), append(cj, '\n'), 0o644)
}

// ByteLevelJSON is a byte-level BPE tokenizer.json with no merges: the 256
// byte tokens, then "<|endoftext|>" as id 256 (BOS and EOS).
func ByteLevelJSON() []byte {
	b2r, _ := byteTables()
	vocab := map[string]int{}
	for b := 0; b < 256; b++ {
		vocab[string(b2r[b])] = b
	}
	bl := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
	doc := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil,
		"added_tokens": []any{map[string]any{"id": 256, "content": "<|endoftext|>", "single_word": false,
			"lstrip": false, "rstrip": false, "normalized": false, "special": true}},
		"normalizer": nil, "pre_tokenizer": bl, "post_processor": bl, "decoder": bl,
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": []string{}},
	}
	js, _ := json.Marshal(doc)
	return js
}

// StreamDecoder turns ids into text as they arrive, holding back bytes
// until they form complete UTF-8.
type StreamDecoder struct {
	tk      *Tokenizer
	pending []byte
}

// NewStreamDecoder returns a decoder for t.
func NewStreamDecoder(t *Tokenizer) *StreamDecoder { return &StreamDecoder{tk: t} }

// Push adds one id and returns the text that is now complete.
func (d *StreamDecoder) Push(id int32) string {
	d.pending = d.tk.decodeBytes(d.pending, []int32{id})
	n := completePrefix(d.pending)
	out := string(d.pending[:n])
	d.pending = append(d.pending[:0], d.pending[n:]...)
	return out
}

// Flush returns what is held back (invalid bytes as U+FFFD).
func (d *StreamDecoder) Flush() string {
	out := string(d.pending)
	d.pending = d.pending[:0]
	return toValid(out)
}

// completePrefix is the length of b without a trailing incomplete rune
// (invalid bytes in the middle pass through as they are).
func completePrefix(b []byte) int {
	for k := 1; k <= 3 && k <= len(b); k++ {
		c := b[len(b)-k]
		if c < 0x80 {
			return len(b)
		}
		if c >= 0xC0 { // a lead byte: is its rune complete?
			need := 2
			if c >= 0xE0 {
				need = 3
			}
			if c >= 0xF0 {
				need = 4
			}
			if k < need {
				return len(b) - k
			}
			return len(b)
		}
	}
	return len(b)
}

func toValid(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	out := make([]rune, 0, len(s))
	for _, r := range s {
		out = append(out, r)
	}
	return string(out)
}

// Vocabulary returns every token string in id order (byte-level strings
// for the BPE vocabulary, contents for added tokens) and whether each is
// a special (control) token.
func (tk *Tokenizer) Vocabulary() ([]string, []bool) {
	return append([]string(nil), tk.pieces...), append([]bool(nil), tk.isSpec...)
}

// MergeList returns the merges in rank order as "a b" strings.
func (tk *Tokenizer) MergeList() []string {
	out := make([]string, len(tk.ranks))
	for p, r := range tk.ranks {
		out[r] = tk.pieces[p[0]] + " " + tk.pieces[p[1]]
	}
	return out
}
