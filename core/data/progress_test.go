package data

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"llmlab/core/data/datatest"
)

// TestTextProgressPastTotal: the bar is drawn for any done/total, including text
// bytes past the size of a compressed file.
func TestTextProgressPastTotal(t *testing.T) {
	for _, c := range []struct {
		done, total int64
		want        string
	}{
		{0, 100, "[....................]   0%"},
		{50, 100, "[##########..........]  50%"},
		{100, 100, "[####################] 100%"},
		{350, 100, "[####################] 100%"}, // gzip: text longer than the file
		{5, 0, "[####################] 100%"},
	} {
		var b bytes.Buffer
		TextProgress(&b, "encoding", 0)(c.done, c.total)
		if !strings.Contains(b.String(), c.want) {
			t.Errorf("TextProgress(%d, %d) drew %q, want %q in it", c.done, c.total, b.String(), c.want)
		}
	}
}

// TestEncodeCorpusGzip: a gzipped text file is encoded as its text.
func TestEncodeCorpusGzip(t *testing.T) {
	text := strings.Repeat("Tom had a red ball.\n\n", 50)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(text))
	zw.Close()
	dir := t.TempDir()
	plain, packed := filepath.Join(dir, "a.txt"), filepath.Join(dir, "a.txt.gz")
	if err := os.WriteFile(plain, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(packed, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	enc := datatest.ByteEncoder{NoBOS: true}
	shard := func(f string) ([]int32, CorpusStats) {
		out := filepath.Join(t.TempDir(), "train.tok")
		st, err := EncodeCorpus(context.Background(), enc, []string{f}, out, "", CorpusOpts{Vocab: enc.VocabSize(), DocSep: "\n\n", StrictUTF8: true})
		if err != nil {
			t.Fatal(err)
		}
		return readShard(t, out), st
	}
	want, wst := shard(plain)
	got, gst := shard(packed)
	if !equal(got, want) || gst.Docs != wst.Docs || gst.Docs != 50 {
		t.Errorf("gzipped corpus gave %d tokens in %d docs, plain %d in %d", len(got), gst.Docs, len(want), wst.Docs)
	}
}
