package tokenizer

// GPT-2's byte-level alphabet maps each of the 256 byte values to a printable
// rune so that every vocabulary entry is a printable string: the bytes that
// are already printable and not a space (33..126, 161..172, 174..255) map to
// themselves, the other 68 map in order to U+0100, U+0101, ... So a space
// (0x20) is 'Ġ' (U+0120) and a newline (0x0A) is 'Ċ' (U+010A).

// byteLevelTables is the alphabet in both directions.
type byteLevelTables struct {
	toRune [256]rune     // byte -> rune
	toByte map[rune]byte // rune -> byte
	str    [256]string   // byte -> the rune as a string
}

func newByteLevelTables() *byteLevelTables {
	t := &byteLevelTables{toByte: make(map[rune]byte, 256)}
	n := 0
	for b := 0; b < 256; b++ {
		var r rune
		switch {
		case b >= 33 && b <= 126, b >= 161 && b <= 172, b >= 174 && b <= 255:
			r = rune(b)
		default:
			r = rune(256 + n)
			n++
		}
		t.toRune[b] = r
		t.toByte[r] = byte(b)
		t.str[b] = string(r)
	}
	return t
}

// byteLevelEncode maps the bytes of s to the byte-level alphabet.
// Example: "hi there\n" -> "hiĠthereĊ".
func (t *byteLevelTables) encode(s string) string {
	out := make([]rune, 0, len(s))
	for i := 0; i < len(s); i++ {
		out = append(out, t.toRune[s[i]])
	}
	return string(out)
}

// decodeToken maps a token back to bytes. Like HF's ByteLevel decoder, a
// token with any rune outside the alphabet (an added token such as "<|im_end|>"
// written in plain text is inside it; "日本" is not) is passed through as its
// own UTF-8 bytes.
func (t *byteLevelTables) decodeToken(dst []byte, tok string) []byte {
	start := len(dst)
	for _, r := range tok {
		b, ok := t.toByte[r]
		if !ok {
			return append(dst[:start], tok...)
		}
		dst = append(dst, b)
	}
	return dst
}
