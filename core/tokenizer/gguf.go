package tokenizer

import (
	"encoding/binary"
	"fmt"
	"math"

	"llmlab/core/checkpoint"
)

// Tokenizers from GGUF metadata (tokenizer.ggml.*). llama.cpp keeps two
// kinds: "gpt2" (byte-level BPE: tokens in GPT-2's byte alphabet, merges,
// and a pre-tokenizer named by tokenizer.ggml.pre) and "llama"
// (SentencePiece BPE: tokens with scores and types). Each becomes what the
// HF folder of the same model would hold: the first a tokenizer.json, the
// second a SentencePiece model, built here and read by the usual loaders.

// GGUFVocab is the tokenizer part of a GGUF file's metadata.
type GGUFVocab struct {
	Model          string    // tokenizer.ggml.model: "gpt2" or "llama"
	Pre            string    // tokenizer.ggml.pre (gpt2): "gpt-2", "llama-bpe", "qwen2", ...
	Tokens         []string  // tokenizer.ggml.tokens
	Types          []int32   // tokenizer.ggml.token_type: 1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte
	Scores         []float32 // tokenizer.ggml.scores (llama)
	Merges         []string  // tokenizer.ggml.merges (gpt2), "a b"
	BOS, EOS, PAD  int32     // -1: none
	AddBOS         bool      // tokenizer.ggml.add_bos_token
	AddSpacePrefix bool      // tokenizer.ggml.add_space_prefix (llama; default true)
	ChatTemplate   string    // tokenizer.chat_template
}

// ReadGGUFVocab reads the tokenizer metadata of an open GGUF file.
func ReadGGUFVocab(g *checkpoint.GGUF) (GGUFVocab, error) {
	v := GGUFVocab{BOS: -1, EOS: -1, PAD: -1, AddSpacePrefix: true}
	var ok bool
	if v.Model, ok = g.String("tokenizer.ggml.model"); !ok {
		return v, fmt.Errorf("%s: no tokenizer.ggml.model in the metadata", g.Path)
	}
	if v.Tokens, ok = g.Strings("tokenizer.ggml.tokens"); !ok {
		return v, fmt.Errorf("%s: no tokenizer.ggml.tokens string array in the metadata", g.Path)
	}
	v.Pre, _ = g.String("tokenizer.ggml.pre")
	v.Types, _ = g.Int32s("tokenizer.ggml.token_type")
	v.Scores, _ = g.Float32s("tokenizer.ggml.scores")
	v.Merges, _ = g.Strings("tokenizer.ggml.merges")
	for key, dst := range map[string]*int32{"bos": &v.BOS, "eos": &v.EOS, "padding": &v.PAD} {
		if id, ok := g.Uint("tokenizer.ggml." + key + "_token_id"); ok && id < uint64(len(v.Tokens)) {
			*dst = int32(id)
		}
	}
	v.AddBOS = v.Model == "llama" // llama.cpp's default for SentencePiece vocabularies
	if b, ok := g.Bool("tokenizer.ggml.add_bos_token"); ok {
		v.AddBOS = b
	}
	if b, ok := g.Bool("tokenizer.ggml.add_space_prefix"); ok {
		v.AddSpacePrefix = b
	}
	v.ChatTemplate, _ = g.String("tokenizer.chat_template")
	if len(v.Types) != 0 && len(v.Types) != len(v.Tokens) {
		return v, fmt.Errorf("%s: %d token types for %d tokens", g.Path, len(v.Types), len(v.Tokens))
	}
	if len(v.Scores) != 0 && len(v.Scores) != len(v.Tokens) {
		return v, fmt.Errorf("%s: %d token scores for %d tokens", g.Path, len(v.Scores), len(v.Tokens))
	}
	return v, nil
}

// LoadGGUF reads the tokenizer and chat template of a GGUF file.
func LoadGGUF(path string) (*Tokenizer, error) {
	g, err := checkpoint.OpenGGUF(path)
	if err != nil {
		return nil, err
	}
	defer g.Close()
	return FromGGUF(g)
}

// FromGGUF reads the tokenizer and chat template of an open GGUF file (a
// mapped file, or an image held in memory in the browser build).
func FromGGUF(g *checkpoint.GGUF) (*Tokenizer, error) {
	v, err := ReadGGUFVocab(g)
	if err != nil {
		return nil, err
	}
	t, err := FromGGUFVocab(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", g.Path, err)
	}
	return t, nil
}

// ggufPre maps llama.cpp's pre-tokenizer names to the split pattern of
// the HF tokenizer they come from ("" : GPT-2's, inside ByteLevel).
var ggufPre = map[string]string{
	"default": "", "gpt-2": "", "gpt2": "", "": "", "phi-2": "", "starcoder": "", "refact": "", "olmo": "",
	"llama-bpe": patLlama3, "llama3": patLlama3, "smaug-bpe": patLlama3, "dbrx": patLlama3, "falcon3": patLlama3,
	"qwen2": patQwen2, "deepseek-r1-qwen": patQwen2,
}

// FromGGUFVocab builds the tokenizer a GGUF vocabulary describes.
func FromGGUFVocab(v GGUFVocab) (*Tokenizer, error) {
	typ := func(i int) int32 {
		if i < len(v.Types) {
			return v.Types[i]
		}
		return 1
	}
	var t *Tokenizer
	switch v.Model {
	case "gpt2":
		pat, ok := ggufPre[v.Pre]
		if !ok {
			return nil, fmt.Errorf("tokenizer.ggml.pre %q is not supported (llmlab reads gpt-2, llama-bpe, qwen2 and their aliases)", v.Pre)
		}
		vocab := make(map[string]int32, len(v.Tokens))
		var adds []map[string]any
		for i, s := range v.Tokens {
			if _, dup := vocab[s]; dup || s == "" {
				continue
			}
			vocab[s] = int32(i)
			if ty := typ(i); ty == 3 || ty == 4 {
				adds = append(adds, map[string]any{"id": i, "content": s, "single_word": false, "lstrip": false,
					"rstrip": false, "normalized": ty == 4, "special": ty == 3})
			}
		}
		pre := any(map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true})
		if pat != "" {
			pre = map[string]any{"type": "Sequence", "pretokenizers": []any{
				map[string]any{"type": "Split", "pattern": map[string]any{"Regex": pat}, "behavior": "Isolated", "invert": false},
				map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
			}}
		}
		post := any(map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true})
		if v.AddBOS && v.BOS >= 0 {
			b := v.Tokens[v.BOS]
			post = map[string]any{
				"type":           "TemplateProcessing",
				"single":         []any{map[string]any{"SpecialToken": map[string]any{"id": b, "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}},
				"pair":           []any{map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "B", "type_id": 1}}},
				"special_tokens": map[string]any{b: map[string]any{"id": b, "ids": []int32{v.BOS}, "tokens": []string{b}}},
			}
		}
		// llama.cpp, like HF's Llama 3 files, takes a word that is a whole
		// token as it is, merges or not.
		ignoreMerges := pat == patLlama3
		merges := v.Merges
		if merges == nil {
			merges = []string{}
		}
		doc := map[string]any{
			"version": "1.0", "truncation": nil, "padding": nil, "added_tokens": adds, "normalizer": nil,
			"pre_tokenizer": pre, "post_processor": post,
			"decoder": map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
			"model": map[string]any{
				"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "",
				"end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": ignoreMerges,
				"vocab": orderedVocab(vocab), "merges": merges,
			},
		}
		js, err := marshalJSON(doc)
		if err != nil {
			return nil, err
		}
		if t, err = FromJSON(js); err != nil {
			return nil, err
		}
	case "llama":
		if len(v.Scores) != len(v.Tokens) {
			return nil, fmt.Errorf("a SentencePiece (llama) vocabulary needs tokenizer.ggml.scores for its %d tokens", len(v.Tokens))
		}
		var err error
		if t, err = FromSentencePiece(spProto(v, typ)); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("tokenizer.ggml.model %q is not supported (llmlab reads gpt2 and llama)", v.Model)
	}
	t.SetSpecial(v.BOS, v.EOS, v.PAD)
	t.SetChatTemplate(v.ChatTemplate)
	return t, nil
}

// spProto writes the SentencePiece ModelProto of a llama vocabulary: the
// fields parseSentencePiece reads.
func spProto(v GGUFVocab, typ func(int) int32) []byte {
	var out []byte
	varint := func(b []byte, x uint64) []byte { return binary.AppendUvarint(b, x) }
	field := func(b []byte, num int, wire int) []byte { return varint(b, uint64(num<<3|wire)) }
	bytesField := func(b []byte, num int, data []byte) []byte {
		b = field(b, num, 2)
		b = varint(b, uint64(len(data)))
		return append(b, data...)
	}
	intField := func(b []byte, num int, x int64) []byte { return varint(field(b, num, 0), uint64(x)) }
	byteFallback := false
	for i, s := range v.Tokens {
		var p []byte
		p = bytesField(p, 1, []byte(s))
		p = field(p, 2, 5)
		p = binary.LittleEndian.AppendUint32(p, math.Float32bits(v.Scores[i]))
		p = intField(p, 3, int64(typ(i)))
		out = bytesField(out, 1, p)
		byteFallback = byteFallback || typ(i) == 6
	}
	var ts []byte
	ts = intField(ts, 3, 2) // BPE
	if byteFallback {
		ts = intField(ts, 35, 1)
	}
	ts = intField(ts, 41, int64(v.BOS))
	ts = intField(ts, 42, int64(v.EOS))
	ts = intField(ts, 43, int64(v.PAD))
	out = bytesField(out, 2, ts)
	var ns []byte
	ns = bytesField(ns, 1, []byte("identity"))
	dummy := int64(0)
	if v.AddSpacePrefix {
		dummy = 1
	}
	ns = intField(ns, 3, dummy)
	ns = intField(ns, 4, 0)
	ns = intField(ns, 5, 1)
	return bytesField(out, 3, ns)
}
