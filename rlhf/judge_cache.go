package rlhf

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
)

// VerdictCache remembers a judge's answer to each question it was asked,
// in an append-only JSONL file, so that a run that crashes or is stopped
// loses none of the answers it paid for: each answer is written (one
// complete line, one write call) the moment it arrives, and the file is
// read back when the cache is opened. A last line cut short by a crash is
// dropped and cut off the file, so later appends start on a clean line;
// damage anywhere else is an error, not something to paper over.
//
// The key covers everything that decides the answer: the judge's model
// name, the rubric, the prompt, the reference answer if any, and the two
// answers in the order shown (see CacheKeyRef). Each order is one entry, so a crash between the two orders of
// a comparison still keeps the first.
type VerdictCache struct {
	Path    string
	Dropped int // truncated lines dropped when the file was opened

	mu sync.Mutex
	f  *os.File
	m  map[string]CacheEntry
}

// CacheEntry is one line of the cache file.
type CacheEntry struct {
	Key    string  `json:"key"`
	Reply  string  `json:"reply"`   // the judge's reply text
	PFirst float64 `json:"p_first"` // the judge's probability that the first answer shown is better
	Model  string  `json:"model,omitempty"`
}

// cacheFormat is hashed into every key: a change to the question's wording
// must not be answered from an old cache.
const cacheFormat = "llmlab-judge-v1"

// cacheFormatRef replaces cacheFormat in the keys of questions with a
// reference answer, which hash one field more.
const cacheFormatRef = "llmlab-judge-v1+reference"

// CacheKey is the hex SHA-256 of the length-prefixed fields (so that no
// two different field lists hash the same bytes). It is CacheKeyRef with
// no reference.
func CacheKey(modelName, rubric, prompt, first, second string) string {
	return hashFields(cacheFormat, modelName, rubric, prompt, first, second)
}

// CacheKeyRef is the key of a question with a reference answer. With an
// empty (or white space) reference it is CacheKey's, so caches written
// before references existed still answer; otherwise the reference and a
// different format tag are hashed in, so no question with a reference
// shares a key with one without, or with another reference.
func CacheKeyRef(modelName, rubric, prompt, reference, first, second string) string {
	if strings.TrimSpace(reference) == "" {
		return CacheKey(modelName, rubric, prompt, first, second)
	}
	return hashFields(cacheFormatRef, modelName, rubric, prompt, reference, first, second)
}

func hashFields(fields ...string) string {
	h := sha256.New()
	var n [8]byte
	for _, s := range fields {
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// OpenVerdictCache opens (or creates) the cache file at path and loads it.
func OpenVerdictCache(path string) (*VerdictCache, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("judge cache: %w", err)
	}
	c := &VerdictCache{Path: path, f: f, m: map[string]CacheEntry{}}
	good, err := c.load()
	if err != nil {
		f.Close()
		return nil, err
	}
	// Drop a torn tail and append from the end of the last whole line.
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, fmt.Errorf("judge cache: %s: %w", path, err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("judge cache: %s: %w", path, err)
	}
	return c, nil
}

// load reads every line and returns the offset just past the last good one.
func (c *VerdictCache) load() (int64, error) {
	br := bufio.NewReaderSize(c.f, 1<<16)
	var off int64
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if err != nil && err != io.EOF {
			return 0, fmt.Errorf("judge cache: %s:%d: %w", c.Path, line, err)
		}
		complete := err == nil
		if t := bytes.TrimSpace(b); len(t) > 0 {
			var e CacheEntry
			if jerr := json.Unmarshal(t, &e); jerr != nil || e.Key == "" {
				if !complete { // the last line, cut short by a crash
					c.Dropped++
					return off, nil
				}
				if jerr == nil {
					jerr = errors.New(`no "key"`)
				}
				return 0, fmt.Errorf("judge cache: %s:%d: %w (delete the file to start afresh)", c.Path, line, jerr)
			}
			if !complete { // a whole entry without its newline: keep it, end the line
				c.m[e.Key] = e
				if _, werr := c.f.WriteAt([]byte("\n"), off+int64(len(b))); werr != nil {
					return 0, fmt.Errorf("judge cache: %s: %w", c.Path, werr)
				}
				return off + int64(len(b)) + 1, nil
			}
			c.m[e.Key] = e
		}
		off += int64(len(b))
		if !complete {
			return off, nil
		}
	}
}

// Len is the number of entries.
func (c *VerdictCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// Get returns the entry for key.
func (c *VerdictCache) Get(key string) (CacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	return e, ok
}

// Put records e in memory and appends it to the file in one write. The
// write reaches the operating system at once (an *os.File has no user
// space buffer), so it survives the process dying; Close syncs it to disk.
func (c *VerdictCache) Put(e CacheEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f == nil {
		return fmt.Errorf("judge cache: %s is closed", c.Path)
	}
	if _, err := c.f.Write(b); err != nil {
		return fmt.Errorf("judge cache: %s: %w", c.Path, err)
	}
	c.m[e.Key] = e
	return nil
}

// Close syncs and closes the file.
func (c *VerdictCache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f == nil {
		return nil
	}
	err := c.f.Sync()
	if cerr := c.f.Close(); err == nil {
		err = cerr
	}
	c.f = nil
	return err
}
