package tokenizer

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"unicode/utf8"
)

// SentencePiece tokenizer.model files are a protobuf ModelProto. Only the
// fields that decide encoding are read:
//
//	ModelProto     1 pieces (repeated SentencePiece), 2 trainer_spec, 3 normalizer_spec
//	SentencePiece  1 piece, 2 score (float), 3 type (1 normal, 2 unknown, 3 control,
//	               4 user defined, 5 unused, 6 byte)
//	TrainerSpec    3 model_type (2 = BPE), 24 treat_whitespace_as_suffix,
//	               35 byte_fallback, 41 bos_id, 42 eos_id, 43 pad_id
//	NormalizerSpec 1 name, 2 precompiled_charsmap, 3 add_dummy_prefix,
//	               4 remove_extra_whitespaces, 5 escape_whitespaces
//
// The model becomes the tokenizer.json that HF's Llama converter writes
// (Prepend and Replace normalizers, BPE with byte_fallback, the
// Replace/ByteFallback/Fuse/Strip decoders), with one difference kept from
// SentencePiece: every way of forming a piece from two pieces merges at the
// piece's score, so equal scores go leftmost first as in bpe_model.cc.

const spaceMark = "\u2581" // '▁'

type spPiece struct {
	piece string
	score float32
	typ   int
}

type spModel struct {
	pieces                        []spPiece
	modelType                     int
	byteFallback, suffixSpace     bool
	bos, eos, pad                 int32
	normName                      string
	charsmap                      []byte // precompiled normalization rules, empty for identity
	dummyPrefix, removeExtra, esc bool
}

// protoField is one field of a protobuf message.
type protoField struct {
	num  int
	wire int
	v    uint64 // varint, fixed32 or fixed64 value
	b    []byte // length-delimited bytes
}

// protoFields splits a message into its fields, checking every length.
func protoFields(b []byte) ([]protoField, error) {
	var out []protoField
	for off := 0; off < len(b); {
		key, n := binary.Uvarint(b[off:])
		if n <= 0 {
			return nil, fmt.Errorf("bad field key at byte %d", off)
		}
		off += n
		f := protoField{num: int(key >> 3), wire: int(key & 7)}
		switch f.wire {
		case 0:
			f.v, n = binary.Uvarint(b[off:])
			if n <= 0 {
				return nil, fmt.Errorf("field %d: bad varint at byte %d", f.num, off)
			}
			off += n
		case 1:
			if len(b)-off < 8 {
				return nil, fmt.Errorf("field %d: truncated fixed64 at byte %d", f.num, off)
			}
			f.v = binary.LittleEndian.Uint64(b[off:])
			off += 8
		case 5:
			if len(b)-off < 4 {
				return nil, fmt.Errorf("field %d: truncated fixed32 at byte %d", f.num, off)
			}
			f.v = uint64(binary.LittleEndian.Uint32(b[off:]))
			off += 4
		case 2:
			l, n := binary.Uvarint(b[off:])
			if n <= 0 || l > uint64(len(b)-off-n) {
				return nil, fmt.Errorf("field %d: length %d at byte %d runs past the %d-byte message", f.num, l, off, len(b))
			}
			off += n
			f.b = b[off : off+int(l)]
			off += int(l)
		default:
			return nil, fmt.Errorf("field %d: unsupported wire type %d at byte %d", f.num, f.wire, off)
		}
		out = append(out, f)
	}
	return out, nil
}

func parseSentencePiece(data []byte) (*spModel, error) {
	m := &spModel{modelType: 1, bos: 1, eos: 2, pad: -1, dummyPrefix: true, removeExtra: true, esc: true}
	fields, err := protoFields(data)
	if err != nil {
		return nil, err
	}
	for _, f := range fields {
		switch {
		case f.num == 1 && f.wire == 2:
			p := spPiece{typ: 1}
			sub, err := protoFields(f.b)
			if err != nil {
				return nil, fmt.Errorf("piece %d: %w", len(m.pieces), err)
			}
			for _, g := range sub {
				switch g.num {
				case 1:
					p.piece = string(g.b)
				case 2:
					p.score = math.Float32frombits(uint32(g.v))
				case 3:
					p.typ = int(g.v)
				}
			}
			m.pieces = append(m.pieces, p)
		case f.num == 2 && f.wire == 2:
			sub, err := protoFields(f.b)
			if err != nil {
				return nil, fmt.Errorf("trainer_spec: %w", err)
			}
			for _, g := range sub {
				switch g.num {
				case 3:
					m.modelType = int(g.v)
				case 24:
					m.suffixSpace = g.v != 0
				case 35:
					m.byteFallback = g.v != 0
				case 41:
					m.bos = int32(g.v)
				case 42:
					m.eos = int32(g.v)
				case 43:
					m.pad = int32(g.v)
				}
			}
		case f.num == 3 && f.wire == 2:
			sub, err := protoFields(f.b)
			if err != nil {
				return nil, fmt.Errorf("normalizer_spec: %w", err)
			}
			for _, g := range sub {
				switch g.num {
				case 1:
					m.normName = string(g.b)
				case 2:
					m.charsmap = g.b
				case 3:
					m.dummyPrefix = g.v != 0
				case 4:
					m.removeExtra = g.v != 0
				case 5:
					m.esc = g.v != 0
				}
			}
		}
	}
	return m, nil
}

// LoadSentencePiece reads a SentencePiece tokenizer.model: BPE with
// identity normalization (Llama 2, Mistral), or Unigram with any
// normalization rules (T5, ALBERT: spiece.model). Suffix whitespace is an
// error.
func LoadSentencePiece(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := FromSentencePiece(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// FromSentencePiece builds a Tokenizer from the bytes of a tokenizer.model.
func FromSentencePiece(data []byte) (*Tokenizer, error) {
	m, err := parseSentencePiece(data)
	if err != nil {
		return nil, err
	}
	if m.modelType == 1 {
		return fromSentencePieceUnigram(m)
	}
	if m.modelType != 2 {
		return nil, fmt.Errorf("SentencePiece model type %d is not supported (only Unigram, 1, and BPE, 2)", m.modelType)
	}
	if m.normName != "identity" || len(m.charsmap) > 0 {
		return nil, fmt.Errorf("SentencePiece normalization %q is not supported (only identity)", m.normName)
	}
	if m.suffixSpace {
		return nil, errors.New("SentencePiece treat_whitespace_as_suffix is not supported")
	}
	if len(m.pieces) == 0 {
		return nil, errors.New("SentencePiece model has no pieces")
	}
	vocab := make(map[string]int32, len(m.pieces))
	type added struct {
		ID         int32  `json:"id"`
		Content    string `json:"content"`
		SingleWord bool   `json:"single_word"`
		LStrip     bool   `json:"lstrip"`
		RStrip     bool   `json:"rstrip"`
		Normalized bool   `json:"normalized"`
		Special    bool   `json:"special"`
	}
	var adds []added
	var unk *string
	userDefined := false
	for i, p := range m.pieces {
		if _, dup := vocab[p.piece]; dup {
			return nil, fmt.Errorf("piece %d %q appears twice", i, p.piece)
		}
		vocab[p.piece] = int32(i)
		switch p.typ {
		case 2:
			s := p.piece
			unk = &s
			adds = append(adds, added{ID: int32(i), Content: p.piece, Special: true})
		case 3:
			adds = append(adds, added{ID: int32(i), Content: p.piece, Special: true})
		case 4:
			// User-defined symbols are cut out of the normalized text,
			// so a space before one stays a "▁" piece.
			adds = append(adds, added{ID: int32(i), Content: p.piece, Normalized: true})
			userDefined = true
		}
	}
	// Every split of a normal piece into two pieces is a merge at the
	// piece's rank (pieces ordered by score, then id).
	order := make([]int, 0, len(m.pieces))
	for i, p := range m.pieces {
		if p.typ == 1 && utf8.RuneCountInString(p.piece) > 1 {
			order = append(order, i)
		}
	}
	sort.SliceStable(order, func(a, b int) bool { return m.pieces[order[a]].score > m.pieces[order[b]].score })
	var merges [][2]string
	var ranks []int
	for r, i := range order {
		s := m.pieces[i].piece
		for k := range s {
			if k == 0 {
				continue
			}
			l, rt := s[:k], s[k:]
			if _, ok := vocab[l]; !ok {
				continue
			}
			if _, ok := vocab[rt]; !ok {
				continue
			}
			merges = append(merges, [2]string{l, rt})
			ranks = append(ranks, r)
		}
	}
	mergeStrs := make([]string, len(merges))
	for i, p := range merges {
		if strings.Contains(p[0], " ") || strings.Contains(p[1], " ") {
			return nil, fmt.Errorf("piece %q contains a space", p[0]+p[1])
		}
		mergeStrs[i] = p[0] + " " + p[1]
	}
	var norms []any
	if m.removeExtra {
		norms = append(norms,
			map[string]any{"type": "Replace", "pattern": map[string]string{"Regex": " {2,}"}, "content": " "},
			map[string]any{"type": "Replace", "pattern": map[string]string{"Regex": "^ | $"}, "content": ""})
	}
	if m.dummyPrefix {
		norms = append(norms, map[string]any{"type": "Prepend", "prepend": spaceMark})
	}
	if m.esc {
		norms = append(norms, map[string]any{"type": "Replace", "pattern": map[string]string{"String": " "}, "content": spaceMark})
	}
	decs := []any{
		map[string]any{"type": "Replace", "pattern": map[string]string{"String": spaceMark}, "content": " "},
		map[string]any{"type": "ByteFallback"},
		map[string]any{"type": "Fuse"},
	}
	if m.dummyPrefix {
		decs = append(decs, map[string]any{"type": "Strip", "content": " ", "start": 1, "stop": 0})
	}
	var post any
	if m.bos >= 0 && int(m.bos) < len(m.pieces) {
		b := m.pieces[m.bos].piece
		post = map[string]any{
			"type":   "TemplateProcessing",
			"single": []any{map[string]any{"SpecialToken": map[string]any{"id": b, "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}},
			"pair": []any{map[string]any{"SpecialToken": map[string]any{"id": b, "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
				map[string]any{"SpecialToken": map[string]any{"id": b, "type_id": 1}}, map[string]any{"Sequence": map[string]any{"id": "B", "type_id": 1}}},
			"special_tokens": map[string]any{b: map[string]any{"id": b, "ids": []int32{m.bos}, "tokens": []string{b}}},
		}
	}
	doc := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil,
		"added_tokens":   adds,
		"normalizer":     map[string]any{"type": "Sequence", "normalizers": norms},
		"pre_tokenizer":  nil,
		"post_processor": post,
		"decoder":        map[string]any{"type": "Sequence", "decoders": decs},
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": unk, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": true, "byte_fallback": m.byteFallback, "ignore_merges": false,
			"vocab": orderedVocab(vocab), "merges": mergeStrs,
		},
	}
	js, err := marshalJSON(doc)
	if err != nil {
		return nil, err
	}
	t, err := FromJSON(js)
	if err != nil {
		return nil, err
	}
	// SentencePiece ranks: every split of a piece shares its rank.
	for i, p := range merges {
		k := pairKey(vocab[p[0]], vocab[p[1]])
		if v := t.model.merges[k]; int(v>>32) == i {
			t.model.merges[k] = uint64(ranks[i])<<32 | uint64(uint32(v))
		}
	}
	if userDefined {
		// SentencePiece matches a user-defined symbol as written in the
		// normalized text; HF would normalize the symbol too (prepending
		// "▁" to it), so the table is rebuilt without the normalizer.
		t.added.build(t.added.toks, nil)
	}
	t.bos, t.eos, t.pad = -1, -1, -1
	for _, x := range []struct {
		id  int32
		dst *int32
	}{{m.bos, &t.bos}, {m.eos, &t.eos}, {m.pad, &t.pad}} {
		if x.id >= 0 && int(x.id) < len(m.pieces) {
			*x.dst = x.id
		}
	}
	return t, nil
}

// marshalJSON writes v without escaping <, > and & (HF files keep them).
func marshalJSON(v any) ([]byte, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

// fromSentencePieceUnigram builds the tokenizer.json HF's converter writes
// for a Unigram model (T5, ALBERT): the model's precompiled normalization
// rules, whitespace cut and each word prefixed with "▁" (SentencePiece's
// remove_extra_whitespaces and add_dummy_prefix), the Unigram model with
// the pieces' scores, and the Metaspace decoder.
func fromSentencePieceUnigram(m *spModel) (*Tokenizer, error) {
	if m.suffixSpace {
		return nil, errors.New("SentencePiece treat_whitespace_as_suffix is not supported")
	}
	if !m.removeExtra || !m.esc {
		return nil, errors.New("SentencePiece Unigram without remove_extra_whitespaces and escape_whitespaces is not supported")
	}
	if len(m.pieces) == 0 {
		return nil, errors.New("SentencePiece model has no pieces")
	}
	type added struct {
		ID         int32  `json:"id"`
		Content    string `json:"content"`
		SingleWord bool   `json:"single_word"`
		LStrip     bool   `json:"lstrip"`
		RStrip     bool   `json:"rstrip"`
		Normalized bool   `json:"normalized"`
		Special    bool   `json:"special"`
	}
	var adds []added
	unk := -1
	vocab := make([][2]any, len(m.pieces))
	for i, p := range m.pieces {
		vocab[i] = [2]any{p.piece, float64(p.score)}
		switch p.typ {
		case 2:
			unk = i
			adds = append(adds, added{ID: int32(i), Content: p.piece, Special: true})
		case 3:
			adds = append(adds, added{ID: int32(i), Content: p.piece, Special: true})
		case 4:
			adds = append(adds, added{ID: int32(i), Content: p.piece})
		}
	}
	if unk < 0 {
		return nil, errors.New("SentencePiece Unigram model has no unknown piece")
	}
	var normalizer any
	if len(m.charsmap) > 0 {
		normalizer = map[string]any{"type": "Precompiled", "precompiled_charsmap": base64.StdEncoding.EncodeToString(m.charsmap)}
	}
	metaspace := func() map[string]any {
		return map[string]any{"type": "Metaspace", "replacement": spaceMark, "add_prefix_space": m.dummyPrefix}
	}
	doc := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil,
		"added_tokens":   adds,
		"normalizer":     normalizer,
		"pre_tokenizer":  map[string]any{"type": "Sequence", "pretokenizers": []any{map[string]any{"type": "WhitespaceSplit"}, metaspace()}},
		"post_processor": nil,
		"decoder":        metaspace(),
		"model":          map[string]any{"type": "Unigram", "unk_id": unk, "vocab": vocab, "byte_fallback": m.byteFallback},
	}
	js, err := marshalJSON(doc)
	if err != nil {
		return nil, err
	}
	t, err := FromJSON(js)
	if err != nil {
		return nil, err
	}
	t.bos, t.eos, t.pad = -1, -1, -1
	for _, x := range []struct {
		id  int32
		dst *int32
	}{{m.bos, &t.bos}, {m.eos, &t.eos}, {m.pad, &t.pad}} {
		if x.id >= 0 && int(x.id) < len(m.pieces) {
			*x.dst = x.id
		}
	}
	return t, nil
}
