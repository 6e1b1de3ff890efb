package data

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"

	"llmlab/core/atomicfile"
)

// A token shard file is a 32-byte little-endian header then the tokens:
//
//	offset 0   magic   "LLMLABTK" (8 bytes)
//	offset 8   version uint32 (1)
//	offset 12  width   uint32 (2: uint16 tokens, 4: uint32 tokens)
//	offset 16  count   uint64 (tokens)
//	offset 24  vocab   uint32 (vocabulary size the ids were made for)
//	offset 28  reserved uint32 (0)
//	offset 32  count × width bytes of token ids
//
// uint16 is used whenever the vocabulary fits (≤ 65536), halving the file.
const (
	shardMagic      = "LLMLABTK"
	shardVersion    = 1
	shardHeaderSize = 32
)

// ShardWidth returns the bytes per token a shard for vocab uses.
func ShardWidth(vocab int) int {
	if vocab <= 1<<16 {
		return 2
	}
	return 4
}

// ShardWriter streams tokens into a shard file. The file appears at its
// path only on Close (written to a temp file, synced, renamed), so a
// crash never leaves a truncated shard behind.
type ShardWriter struct {
	path  string
	f     *atomicfile.File
	w     *bufio.Writer
	width int
	vocab int
	count uint64
	buf   []byte
}

// NewShardWriter starts a shard for ids below vocab.
func NewShardWriter(path string, vocab int) (*ShardWriter, error) {
	if vocab <= 0 || uint64(vocab) > 1<<32 {
		return nil, fmt.Errorf("data: shard %s: vocab %d out of range", path, vocab)
	}
	f, err := atomicfile.Create(path, atomicfile.Mode)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	sw := &ShardWriter{path: path, f: f, w: bufio.NewWriterSize(f, 1<<20), width: ShardWidth(vocab), vocab: vocab}
	if _, err := sw.w.Write(make([]byte, shardHeaderSize)); err != nil { // patched on Close
		sw.Abort()
		return nil, fmt.Errorf("data: %w", err)
	}
	return sw, nil
}

// Write appends ids; each must be in [0, vocab).
func (sw *ShardWriter) Write(ids []int32) error {
	need := len(ids) * sw.width
	if cap(sw.buf) < need {
		sw.buf = make([]byte, need)
	}
	b := sw.buf[:need]
	for i, id := range ids {
		if id < 0 || int(id) >= sw.vocab {
			return fmt.Errorf("data: shard %s: token %d at index %d outside vocab %d", sw.path, id, sw.count+uint64(i), sw.vocab)
		}
		if sw.width == 2 {
			binary.LittleEndian.PutUint16(b[2*i:], uint16(id))
		} else {
			binary.LittleEndian.PutUint32(b[4*i:], uint32(id))
		}
	}
	if _, err := sw.w.Write(b); err != nil {
		return fmt.Errorf("data: shard %s: %w", sw.path, err)
	}
	sw.count += uint64(len(ids))
	return nil
}

// Count returns the tokens written so far.
func (sw *ShardWriter) Count() int64 { return int64(sw.count) }

// Close writes the header and moves the shard into place.
func (sw *ShardWriter) Close() error {
	err := sw.w.Flush()
	if err == nil {
		var h [shardHeaderSize]byte
		copy(h[:], shardMagic)
		binary.LittleEndian.PutUint32(h[8:], shardVersion)
		binary.LittleEndian.PutUint32(h[12:], uint32(sw.width))
		binary.LittleEndian.PutUint64(h[16:], sw.count)
		binary.LittleEndian.PutUint32(h[24:], uint32(sw.vocab))
		_, err = sw.f.WriteAt(h[:], 0)
	}
	if err != nil {
		sw.f.Abort()
	} else {
		err = sw.f.Commit()
	}
	if err != nil {
		return fmt.Errorf("data: shard %s: %w", sw.path, err)
	}
	return nil
}

// Abort discards the shard.
func (sw *ShardWriter) Abort() { sw.f.Abort() }

// WriteShard writes tokens to a shard file at path in one go.
func WriteShard(path string, tokens []int32, vocab int) error {
	sw, err := NewShardWriter(path, vocab)
	if err != nil {
		return err
	}
	if err := sw.Write(tokens); err != nil {
		sw.Abort()
		return err
	}
	return sw.Close()
}

// Shard is a read-only, memory-mapped token shard.
type Shard struct {
	Path  string
	Vocab int
	width int
	data  []byte // the token bytes (header excluded)
	unmap func() error
}

// OpenShard maps a shard file, checking its header against the file size.
func OpenShard(path string) (*Shard, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	size := st.Size()
	if size < shardHeaderSize {
		return nil, fmt.Errorf("data: shard %s: %d bytes, shorter than the %d-byte header", path, size, shardHeaderSize)
	}
	var h [shardHeaderSize]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		return nil, fmt.Errorf("data: shard %s: %w", path, err)
	}
	if string(h[:8]) != shardMagic {
		return nil, fmt.Errorf("data: %s is not a token shard (magic %q, want %q)", path, h[:8], shardMagic)
	}
	if v := binary.LittleEndian.Uint32(h[8:]); v != shardVersion {
		return nil, fmt.Errorf("data: shard %s: version %d, this build reads %d", path, v, shardVersion)
	}
	width := binary.LittleEndian.Uint32(h[12:])
	if width != 2 && width != 4 {
		return nil, fmt.Errorf("data: shard %s: token width %d bytes, want 2 or 4", path, width)
	}
	count := binary.LittleEndian.Uint64(h[16:])
	vocab := binary.LittleEndian.Uint32(h[24:])
	body := uint64(size - shardHeaderSize)
	if count > body/uint64(width) || count*uint64(width) != body {
		return nil, fmt.Errorf("data: shard %s: header says %d tokens × %d bytes, but the file holds %d bytes after the header", path, count, width, body)
	}
	if vocab == 0 || (width == 2 && vocab > 1<<16) {
		return nil, fmt.Errorf("data: shard %s: vocab %d does not fit token width %d", path, vocab, width)
	}
	b, unmap, err := mapFile(f, size)
	if err != nil {
		return nil, fmt.Errorf("data: shard %s: %w", path, err)
	}
	var data []byte
	if len(b) > 0 {
		data = b[shardHeaderSize:]
	}
	return &Shard{Path: path, Vocab: int(vocab), width: int(width), data: data, unmap: unmap}, nil
}

// Len returns the number of tokens.
func (s *Shard) Len() int { return len(s.data) / s.width }

// Width returns bytes per token (2 or 4).
func (s *Shard) Width() int { return s.width }

// At returns token i.
func (s *Shard) At(i int) int32 {
	if s.width == 2 {
		return int32(binary.LittleEndian.Uint16(s.data[2*i:]))
	}
	return int32(binary.LittleEndian.Uint32(s.data[4*i:]))
}

// Read copies tokens [off, off+len(dst)) into dst.
func (s *Shard) Read(dst []int32, off int) {
	if s.width == 2 {
		b := s.data[2*off : 2*(off+len(dst))]
		for i := range dst {
			dst[i] = int32(binary.LittleEndian.Uint16(b[2*i:]))
		}
		return
	}
	b := s.data[4*off : 4*(off+len(dst))]
	for i := range dst {
		dst[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
}

// Validate checks every token against the shard's vocab (a full scan).
func (s *Shard) Validate() error {
	for i, n := 0, s.Len(); i < n; i++ {
		if t := s.At(i); int(t) >= s.Vocab {
			return fmt.Errorf("data: shard %s: token %d at index %d outside vocab %d", s.Path, t, i, s.Vocab)
		}
	}
	return nil
}

// Close unmaps the shard.
func (s *Shard) Close() error {
	if s.unmap == nil {
		return nil
	}
	err := s.unmap()
	s.unmap, s.data = nil, nil
	return err
}
