package tokenizer

import (
	"strings"
	"testing"
)

// TestStreamDecoder checks that printing token by token gives Decode's text
// and never prints half a character.
func TestStreamDecoder(t *testing.T) {
	tok := loadGPT2(t)
	for _, text := range readTexts(t) {
		ids := tok.Encode(text, false)
		d := NewStreamDecoder(tok)
		var b strings.Builder
		for _, id := range ids {
			s := d.Push(id)
			if strings.Contains(s, "\uFFFD") {
				t.Errorf("%q: Push printed a replacement character in %q", text, s)
			}
			b.WriteString(s)
		}
		b.WriteString(d.Flush())
		if b.String() != text {
			t.Errorf("streamed %q, want %q", b.String(), text)
		}
	}
	// An emoji split across two byte-level tokens.
	d := NewStreamDecoder(tok)
	ids := tok.Encode("😀", false)
	if len(ids) < 2 {
		t.Fatalf("want 😀 in several tokens, got %v", ids)
	}
	for _, id := range ids[:len(ids)-1] {
		if s := d.Push(id); s != "" {
			t.Errorf("Push of a partial character printed %q", s)
		}
	}
	if s := d.Push(ids[len(ids)-1]); s != "😀" {
		t.Errorf("last Push = %q, want 😀", s)
	}
	// A character that never completes comes out at Flush.
	d = NewStreamDecoder(tok)
	d.Push(ids[0])
	if s := d.Flush(); s != "\uFFFD" {
		t.Errorf("Flush = %q, want U+FFFD", s)
	}
}
