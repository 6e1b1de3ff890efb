package data

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"unicode/utf8"
)

// CorpusOpts controls EncodeCorpus.
type CorpusOpts struct {
	Vocab int // vocabulary size: ids must be below it; picks the shard width
	// DocSep splits each file into documents ("" keeps a file whole). The
	// demo stories use "\n\n". Each document is encoded with the
	// tokenizer's special tokens (BOS where it uses one) and followed by EOS.
	DocSep string
	// StrictUTF8 makes invalid UTF-8 an error naming the file and byte
	// offset; by default each invalid run is replaced by U+FFFD and counted.
	StrictUTF8 bool
	EvalFrac   float64 // fraction of documents held out (by a hash of Seed and the document's index)
	Seed       uint64
	Workers    int                               // encoding goroutines; 0: GOMAXPROCS
	Progress   func(doneBytes, totalBytes int64) // called after each block; may be nil
}

// CorpusStats reports what EncodeCorpus did.
type CorpusStats struct {
	Files, Docs, EvalDocs int
	Bytes                 int64 // input bytes
	Tokens, EvalTokens    int64
	InvalidUTF8           int // invalid byte runs replaced
}

// UTF8Error reports invalid UTF-8 in a corpus file (with StrictUTF8).
type UTF8Error struct {
	File   string
	Offset int
}

func (e *UTF8Error) Error() string {
	return fmt.Sprintf("%s: invalid UTF-8 at byte %d (run without strict UTF-8 to replace it with U+FFFD)", e.File, e.Offset)
}

// blockBytes is about how much text one encoding job gets: big enough to
// amortise the handoff, small enough to balance cores and bound memory.
const blockBytes = 256 << 10

// EncodeCorpus encodes text files into a token shard at trainPath (and, if
// EvalFrac > 0, the held-out documents into evalPath), in parallel across
// cores, in file and document order. enc.Encode must be safe for
// concurrent use. An empty file, or a corpus with no tokens, is an error.
func EncodeCorpus(ctx context.Context, enc Encoder, files []string, trainPath, evalPath string, o CorpusOpts) (CorpusStats, error) {
	var st CorpusStats
	if len(files) == 0 {
		return st, errors.New("data: no corpus files")
	}
	var total int64
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return st, fmt.Errorf("data: %w", err)
		}
		if fi.Size() == 0 {
			return st, fmt.Errorf("data: corpus file %s is empty", f)
		}
		total += fi.Size()
	}
	workers := o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	train, err := NewShardWriter(trainPath, o.Vocab)
	if err != nil {
		return st, err
	}
	var eval *ShardWriter
	if o.EvalFrac > 0 {
		if eval, err = NewShardWriter(evalPath, o.Vocab); err != nil {
			train.Abort()
			return st, err
		}
	}
	abort := func(err error) (CorpusStats, error) {
		train.Abort()
		if eval != nil {
			eval.Abort()
		}
		return st, err
	}
	docIndex := 0
	for _, path := range files {
		b, err := readCorpusFile(path)
		if err != nil {
			return abort(err)
		}
		text, bad, off := validUTF8(b)
		if bad > 0 && o.StrictUTF8 {
			return abort(&UTF8Error{path, off})
		}
		st.InvalidUTF8 += bad
		st.Files++
		docs := splitDocs(text, o.DocSep)
		// Blocks of consecutive documents, encoded a wave at a time.
		type block struct {
			docs []string
			base int // global index of docs[0]
			out  [][]int32
		}
		var blocks []*block
		cur := &block{base: docIndex}
		size := 0
		for _, d := range docs {
			cur.docs = append(cur.docs, d)
			size += len(d)
			if size >= blockBytes {
				blocks = append(blocks, cur)
				cur = &block{base: cur.base + len(cur.docs)}
				size = 0
			}
		}
		if len(cur.docs) > 0 {
			blocks = append(blocks, cur)
		}
		docIndex += len(docs)
		bytesBefore := st.Bytes
		for w0 := 0; w0 < len(blocks); w0 += 4 * workers {
			if err := ctx.Err(); err != nil {
				return abort(err)
			}
			wave := blocks[w0:min(len(blocks), w0+4*workers)]
			var wg sync.WaitGroup
			next := make(chan *block, len(wave))
			for _, bl := range wave {
				next <- bl
			}
			close(next)
			for range min(workers, len(wave)) {
				wg.Go(func() {
					for bl := range next {
						bl.out = make([][]int32, len(bl.docs))
						for i, d := range bl.docs {
							ids := enc.Encode(d, true)
							if eos := enc.EOS(); eos >= 0 {
								ids = append(ids, eos)
							}
							bl.out[i] = ids
						}
					}
				})
			}
			wg.Wait()
			for _, bl := range wave {
				for i, ids := range bl.out {
					w := train
					if heldOut(o.Seed, bl.base+i, o.EvalFrac) {
						w = eval
						st.EvalDocs++
						st.EvalTokens += int64(len(ids))
					} else {
						st.Tokens += int64(len(ids))
					}
					st.Docs++
					if err := w.Write(ids); err != nil {
						return abort(fmt.Errorf("%w (encoding %s)", err, path))
					}
					st.Bytes += int64(len(bl.docs[i]))
				}
				bl.out = nil
			}
			if o.Progress != nil {
				o.Progress(st.Bytes, total)
			}
		}
		st.Bytes = bytesBefore + int64(len(b))
	}
	if st.Tokens == 0 {
		return abort(fmt.Errorf("data: corpus (%d files, first %s) holds no training tokens", len(files), files[0]))
	}
	if o.Progress != nil {
		o.Progress(total, total)
	}
	if err := train.Close(); err != nil {
		if eval != nil {
			eval.Abort()
		}
		return st, err
	}
	if eval != nil {
		if err := eval.Close(); err != nil {
			return st, err
		}
	}
	return st, nil
}

// validUTF8 returns b as a string with each run of invalid bytes replaced
// by U+FFFD, the number of runs, and the offset of the first.
func validUTF8(b []byte) (string, int, int) {
	if utf8.Valid(b) {
		return string(b), 0, -1
	}
	var sb strings.Builder
	sb.Grow(len(b))
	runs, first := 0, -1
	inBad := false
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			if !inBad {
				runs++
				if first < 0 {
					first = i
				}
				sb.WriteRune(utf8.RuneError)
				inBad = true
			}
		} else {
			sb.Write(b[i : i+n])
			inBad = false
		}
		i += n
	}
	return sb.String(), runs, first
}

// splitDocs splits text on sep, trimming each document and dropping empty
// ones (a file kept whole is not trimmed).
func splitDocs(text, sep string) []string {
	var parts []string
	if sep == "" {
		parts = []string{text}
	} else {
		parts = strings.Split(text, sep)
	}
	out := parts[:0]
	for _, p := range parts {
		if sep != "" {
			p = strings.TrimSpace(p)
		}
		if strings.TrimSpace(p) != "" {
			out = append(out, p)
		}
	}
	return out
}

// readCorpusFile reads a text file, decompressing it when it is gzipped
// (by its magic bytes, whatever its name), as the demo stories are.
func readCorpusFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		return b, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("data: %s: %w", path, err)
	}
	text, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("data: %s: gzip: %w", path, err)
	}
	return text, nil
}
