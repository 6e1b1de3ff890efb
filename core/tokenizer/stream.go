package tokenizer

import "strings"

// StreamDecoder decodes ids one at a time for printing as they are
// generated. A token may end in the middle of a UTF-8 character (byte-level
// and byte-fallback vocabularies split emoji and CJK across tokens), so the
// decoder holds back text until the character is complete.
//
// It keeps a short window of ids and decodes the window whole, so decoders
// that look at neighbouring tokens (ByteFallback runs, Metaspace's leading
// space, Strip) give exactly what Decode gives for the whole sequence: the
// concatenation of every Push and the final Flush equals Decode(all ids)
// whenever that decodes to valid text.
//
// Example: the GPT-2 ids of "😀" are [47249, 222]; Push(47249) returns "",
// Push(222) returns "😀".
type StreamDecoder struct {
	t       *Tokenizer
	ids     []int32 // the window: ids[:read] are context already printed
	read    int
	printed string // Decode(ids[:read]) at the time the window was cut
}

// NewStreamDecoder returns a decoder for a fresh sequence.
func NewStreamDecoder(t *Tokenizer) *StreamDecoder { return &StreamDecoder{t: t} }

// Push adds one id and returns the text that is now complete ("" while a
// character is still incomplete).
func (d *StreamDecoder) Push(id int32) string {
	d.ids = append(d.ids, id)
	text := d.t.Decode(d.ids)
	if !strings.HasPrefix(text, d.printed) {
		// A decoder rewrote earlier text (it should not): print the whole
		// window afresh rather than lose any of it.
		d.printed = ""
	}
	if strings.HasSuffix(text, "\uFFFD") && d.pendingBytes() {
		return ""
	}
	out := text[len(d.printed):]
	// Keep the last id as context for the next window.
	d.ids = append(d.ids[:0], d.ids[len(d.ids)-1])
	d.read = 1
	d.printed = d.t.Decode(d.ids) // may lack a space Strip removed: it was printed already
	return out
}

// pendingBytes reports whether the window ends inside a UTF-8 character
// that more tokens could complete: the raw bytes end in an incomplete
// sequence.
func (d *StreamDecoder) pendingBytes() bool {
	var raw []byte
	for _, id := range d.ids {
		raw = d.t.appendRawBytes(raw, id)
	}
	return incompleteTail(raw) > 0
}

// Flush returns whatever is held back (as U+FFFD for bytes that never
// completed a character) and resets the decoder.
func (d *StreamDecoder) Flush() string {
	text := d.t.Decode(d.ids)
	out := ""
	if strings.HasPrefix(text, d.printed) {
		out = text[len(d.printed):]
	} else if len(d.ids) > d.read {
		out = text
	}
	d.ids, d.read, d.printed = d.ids[:0], 0, ""
	return out
}

// appendRawBytes appends the bytes a token stands for, before any UTF-8
// repair: byte-level tokens map through GPT-2's alphabet, "<0xXX>" tokens
// are their byte, anything else is its text.
func (t *Tokenizer) appendRawBytes(dst []byte, id int32) []byte {
	s, ok := t.token(id)
	if !ok {
		return dst
	}
	if _, added := t.added.byID[id]; !added {
		if b, ok := byteToken(s); ok && t.model.byteFallback {
			return append(dst, b)
		}
		if t.byteLevel {
			return t.blt.decodeToken(dst, s)
		}
	}
	return append(dst, s...)
}
