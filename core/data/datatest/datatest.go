// Package datatest provides a trivial tokenizer for tests of code that
// consumes core/data: one token per byte, plus the special tokens of the
// built-in chat templates matched in text.
package datatest

import "strings"

// Specials are the marker strings ByteEncoder turns into single tokens,
// with ids 256, 257, ... in this order. "<s>" is BOS and "</s>" EOS.
var specials = []string{
	"<s>", "</s>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|start_header_id|>",
	"<|end_header_id|>", "<|eot_id|>", "<bos>", "<start_of_turn>", "<end_of_turn>",
	"<|system|>", "<|user|>", "<|assistant|>", "<|endoftext|>",
}

// ByteEncoder encodes each byte as its value, and each special marker as
// one token id ≥ 256. It is safe for concurrent use.
type ByteEncoder struct {
	NoBOS bool // BOS() returns -1 and Encode never adds one (GPT-2 style)
	NoEOS bool // EOS() returns -1
}

// VocabSize is the number of ids ByteEncoder can produce.
func (ByteEncoder) VocabSize() int { return 256 + len(specials) }

// TokenID returns the id of a special marker.
func (ByteEncoder) TokenID(s string) (int32, bool) {
	for i, sp := range specials {
		if sp == s {
			return int32(256 + i), true
		}
	}
	return 0, false
}

func (e ByteEncoder) BOS() int32 {
	if e.NoBOS {
		return -1
	}
	return 256
}

func (e ByteEncoder) EOS() int32 {
	if e.NoEOS {
		return -1
	}
	return 257
}

// Encode returns the ids of text, with BOS first when addSpecial.
func (e ByteEncoder) Encode(text string, addSpecial bool) []int32 {
	var ids []int32
	if addSpecial && e.BOS() >= 0 {
		ids = append(ids, e.BOS())
	}
outer:
	for i := 0; i < len(text); {
		if text[i] == '<' {
			for k, sp := range specials {
				if strings.HasPrefix(text[i:], sp) {
					ids = append(ids, int32(256+k))
					i += len(sp)
					continue outer
				}
			}
		}
		ids = append(ids, int32(text[i]))
		i++
	}
	return ids
}

// Decode inverts Encode.
func (ByteEncoder) Decode(ids []int32) string {
	var b strings.Builder
	for _, id := range ids {
		if id < 256 {
			b.WriteByte(byte(id))
		} else if int(id-256) < len(specials) {
			b.WriteString(specials[id-256])
		}
	}
	return b.String()
}
