package demo

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"

	"llmlab/core/atomicfile"
)

// Sizes of the embedded demo data.
const (
	StoryBytes = 3 << 20
	NumTrain   = 2000
	NumEval    = 200
)

// The file names under assets/data.
const (
	StoriesFile       = "stories.txt.gz"
	InstructTrainFile = "instruct_train.jsonl"
	InstructEvalFile  = "instruct_eval.jsonl"
	PrefsTrainFile    = "prefs_train.jsonl"
	PrefsEvalFile     = "prefs_eval.jsonl"
	KTOTrainFile      = "kto_train.jsonl"
)

// Files returns the bytes of every demo data file for seed, by file name:
// the stories gzipped (deterministically: no name or time in the header),
// the rest as JSONL.
func Files(seed uint64) (map[string][]byte, error) {
	out := map[string][]byte{}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if err := WriteStories(zw, seed, StoryBytes); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	out[StoriesFile] = gz.Bytes()

	train, eval := Instruct(seed, NumTrain, NumEval)
	for name, write := range map[string]func(*bytes.Buffer) error{
		InstructTrainFile: func(b *bytes.Buffer) error { return WriteInstruct(b, train) },
		InstructEvalFile:  func(b *bytes.Buffer) error { return WriteInstruct(b, eval) },
		PrefsTrainFile:    func(b *bytes.Buffer) error { return WritePrefs(b, Prefs(seed, train)) },
		PrefsEvalFile:     func(b *bytes.Buffer) error { return WritePrefs(b, Prefs(seed+1, eval)) },
		KTOTrainFile:      func(b *bytes.Buffer) error { return WriteKTO(b, Prefs(seed, train)) },
	} {
		var b bytes.Buffer
		if err := write(&b); err != nil {
			return nil, fmt.Errorf("demo: %s: %w", name, err)
		}
		out[name] = b.Bytes()
	}
	return out, nil
}

// WriteFiles writes Files(seed) into dir, each atomically.
func WriteFiles(dir string, seed uint64) error {
	files, err := Files(seed)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, b := range files {
		if err := WriteFileAtomic(filepath.Join(dir, name), b); err != nil {
			return err
		}
	}
	return nil
}

// WriteFileAtomic writes b to path through a synced temp file and a rename.
func WriteFileAtomic(path string, b []byte) error {
	if err := atomicfile.WriteFile(path, b, atomicfile.Mode); err != nil {
		return fmt.Errorf("demo: writing %s: %w", path, err)
	}
	return nil
}
