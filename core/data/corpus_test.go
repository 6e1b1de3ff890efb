package data

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"llmlab/core/data/datatest"
)

func writeFile(t *testing.T, name, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readShard(t *testing.T, p string) []int32 {
	t.Helper()
	s, err := OpenShard(p)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out := make([]int32, s.Len())
	s.Read(out, 0)
	return out
}

func TestEncodeCorpus(t *testing.T) {
	var docs []string
	for i := range 3000 {
		docs = append(docs, fmt.Sprintf("Story %d. Tom had a red ball.\nHe said \"hi\".", i))
	}
	f1 := writeFile(t, "a.txt", strings.Join(docs[:2000], "\n\n"))
	f2 := writeFile(t, "b.txt", strings.Join(docs[2000:], "\n\n")+"\n\n\n")
	enc := datatest.ByteEncoder{NoBOS: true}
	dir := t.TempDir()
	var calls int
	o := CorpusOpts{Vocab: enc.VocabSize(), DocSep: "\n\n", EvalFrac: 0.1, Seed: 5, Workers: 3,
		Progress: func(done, total int64) { calls++ }}
	st, err := EncodeCorpus(context.Background(), enc, []string{f1, f2}, filepath.Join(dir, "train.tok"), filepath.Join(dir, "eval.tok"), o)
	if err != nil {
		t.Fatal(err)
	}
	if st.Docs != 3000 || st.EvalDocs < 200 || st.EvalDocs > 400 || calls == 0 {
		t.Errorf("stats %+v, progress calls %d", st, calls)
	}
	// The same as encoding sequentially in order, split by heldOut.
	var wantTrain, wantEval []int32
	for i, d := range docs {
		ids := append(enc.Encode(d, true), enc.EOS())
		if heldOut(5, i, 0.1) {
			wantEval = append(wantEval, ids...)
		} else {
			wantTrain = append(wantTrain, ids...)
		}
	}
	if got := readShard(t, filepath.Join(dir, "train.tok")); !equal(got, wantTrain) || int64(len(got)) != st.Tokens {
		t.Errorf("train shard differs from sequential encoding (%d vs %d tokens)", len(got), len(wantTrain))
	}
	if got := readShard(t, filepath.Join(dir, "eval.tok")); !equal(got, wantEval) || int64(len(got)) != st.EvalTokens {
		t.Errorf("eval shard differs from sequential encoding")
	}
}

func equal(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestEncodeCorpusInvalidUTF8(t *testing.T) {
	f := writeFile(t, "bad.txt", "ok\xff\xfe then\xc3 more")
	enc := datatest.ByteEncoder{NoBOS: true, NoEOS: true}
	out := filepath.Join(t.TempDir(), "t.tok")
	st, err := EncodeCorpus(context.Background(), enc, []string{f}, out, "", CorpusOpts{Vocab: enc.VocabSize()})
	if err != nil {
		t.Fatal(err)
	}
	if st.InvalidUTF8 != 2 {
		t.Errorf("%d invalid runs, want 2", st.InvalidUTF8)
	}
	if got := enc.Decode(readShard(t, out)); got != "ok\uFFFD then\uFFFD more" {
		t.Errorf("decoded %q", got)
	}
	_, err = EncodeCorpus(context.Background(), enc, []string{f}, out, "", CorpusOpts{Vocab: enc.VocabSize(), StrictUTF8: true})
	var ue *UTF8Error
	if !errors.As(err, &ue) || ue.Offset != 2 || !strings.Contains(err.Error(), "bad.txt: invalid UTF-8 at byte 2") {
		t.Errorf("strict: %v", err)
	}
}

func TestEncodeCorpusBad(t *testing.T) {
	enc := datatest.ByteEncoder{}
	out := filepath.Join(t.TempDir(), "t.tok")
	o := CorpusOpts{Vocab: enc.VocabSize()}
	empty := writeFile(t, "empty.txt", "")
	if _, err := EncodeCorpus(context.Background(), enc, []string{empty}, out, "", o); err == nil || !strings.Contains(err.Error(), "empty.txt is empty") {
		t.Errorf("empty file: %v", err)
	}
	if _, err := EncodeCorpus(context.Background(), enc, []string{"/nonexistent/x.txt"}, out, "", o); err == nil {
		t.Error("missing file: no error")
	}
	blank := writeFile(t, "blank.txt", "\n\n\n\n")
	if _, err := EncodeCorpus(context.Background(), enc, []string{blank}, out, "", CorpusOpts{Vocab: enc.VocabSize(), DocSep: "\n\n"}); err == nil || !strings.Contains(err.Error(), "no training tokens") {
		t.Errorf("blank file: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f := writeFile(t, "a.txt", "abc")
	if _, err := EncodeCorpus(ctx, enc, []string{f}, out, "", o); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Error("failed encoding left a shard behind")
	}
}

func TestSplitIndices(t *testing.T) {
	tr, ev := SplitIndices(100, 0.1, 9)
	tr2, ev2 := SplitIndices(100, 0.1, 9)
	if len(ev) != 10 || len(tr) != 90 || !equalInts(ev, ev2) || !equalInts(tr, tr2) {
		t.Errorf("split %d/%d, not deterministic or wrong size", len(tr), len(ev))
	}
	_, ev3 := SplitIndices(100, 0.1, 10)
	if equalInts(ev, ev3) {
		t.Error("seed does not change the split")
	}
	if _, ev := SplitIndices(5, 0.01, 1); len(ev) != 1 {
		t.Errorf("small fraction holds out %d, want 1", len(ev))
	}
	if tr, ev := SplitIndices(1, 0.5, 1); len(tr) != 1 || len(ev) != 0 {
		t.Error("one item must stay in train")
	}
	ds := &Dataset{File: "f", Records: make([]Record, 20)}
	for i := range ds.Records {
		ds.Records[i].Line = i + 1
	}
	a, b := SplitDataset(ds, 0.25, 1)
	if len(a.Records) != 15 || len(b.Records) != 5 || a.Records[0].Line >= a.Records[1].Line {
		t.Error("SplitDataset sizes or order wrong")
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestTextProgress(t *testing.T) {
	var b strings.Builder
	p := TextProgress(&b, "encoding", time.Hour)
	p(0, 100)
	p(50, 100) // throttled
	p(100, 100)
	want := "\rencoding [....................]   0%  0.0/0.0 MB\rencoding [####################] 100%  0.0/0.0 MB\n"
	if b.String() != want {
		t.Errorf("got %q\nwant %q", b.String(), want)
	}
}
