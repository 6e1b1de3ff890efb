package data

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestShardRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		vocab, width int
	}{{256, 2}, {65536, 2}, {65537, 4}, {200000, 4}} {
		path := filepath.Join(t.TempDir(), "x.tok")
		toks := []int32{0, 1, int32(tc.vocab - 1), 7, int32(tc.vocab / 2)}
		if err := WriteShard(path, toks, tc.vocab); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(path)
		if want := int64(shardHeaderSize + len(toks)*tc.width); fi.Size() != want {
			t.Errorf("vocab %d: file %d bytes, want %d", tc.vocab, fi.Size(), want)
		}
		s, err := OpenShard(path)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]int32, s.Len())
		s.Read(got, 0)
		if d := cmp.Diff(toks, got); d != "" || s.Width() != tc.width || s.Vocab != tc.vocab || s.At(2) != toks[2] {
			t.Errorf("vocab %d: width %d, (-want +got):\n%s", tc.vocab, s.Width(), d)
		}
		if err := s.Validate(); err != nil {
			t.Error(err)
		}
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}
}

func TestShardWriterRejectsOutOfVocab(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.tok")
	err := WriteShard(path, []int32{1, 300}, 256)
	if err == nil || !strings.Contains(err.Error(), "token 300 at index 1 outside vocab 256") {
		t.Errorf("error %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Error("a failed write left a file behind")
	}
}

// The reader distrusts the header: each corruption is an error naming the
// file and the numbers.
func TestOpenShardBad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.tok")
	if err := WriteShard(good, []int32{1, 2, 3}, 1000); err != nil {
		t.Fatal(err)
	}
	orig, _ := os.ReadFile(good)
	tests := []struct {
		name string
		edit func(b []byte) []byte
		want string
	}{
		{"short", func(b []byte) []byte { return b[:10] }, "shorter than the 32-byte header"},
		{"magic", func(b []byte) []byte { b[0] = 'X'; return b }, "is not a token shard"},
		{"version", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[8:], 9); return b }, "version 9"},
		{"width", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[12:], 3); return b }, "token width 3"},
		{"truncated body", func(b []byte) []byte { return b[:len(b)-1] }, "header says 3 tokens × 2 bytes, but the file holds 5 bytes"},
		{"huge count", func(b []byte) []byte { binary.LittleEndian.PutUint64(b[16:], 1<<62); return b }, "but the file holds 6 bytes"},
		{"vocab too big for width", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[24:], 70000); return b }, "vocab 70000 does not fit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name+".tok")
			os.WriteFile(p, tc.edit(append([]byte(nil), orig...)), 0o644)
			_, err := OpenShard(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Errorf("error %v, want it to name %s and contain %q", err, p, tc.want)
			}
		})
	}
	p := filepath.Join(dir, "badtok.tok")
	b := append([]byte(nil), orig...)
	binary.LittleEndian.PutUint16(b[shardHeaderSize+2:], 5000)
	os.WriteFile(p, b, 0o644)
	s, err := OpenShard(p)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "token 5000 at index 1") {
		t.Errorf("Validate: %v", err)
	}
}
