// Package checkpoint reads and writes tensors in the safetensors format and
// Hugging Face model folders, trusting nothing a header says, and writes
// every file atomically (temp file, fsync, rename, fsync of the folder) so
// a crash never leaves a half-written checkpoint behind.
package checkpoint

import (
	"os"
	"path/filepath"
)

// AtomicFile is a file that appears at its path only on Commit.
type AtomicFile struct {
	*os.File
	path string
}

// CreateAtomic starts writing path through a temporary file beside it.
func CreateAtomic(path string) (*AtomicFile, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, err
	}
	return &AtomicFile{File: f, path: path}, nil
}

// Commit flushes the data to disk and moves the file into place.
func (a *AtomicFile) Commit() error {
	if err := a.File.Sync(); err != nil {
		a.Abort()
		return err
	}
	if err := a.File.Close(); err != nil {
		os.Remove(a.File.Name())
		return err
	}
	if err := os.Rename(a.File.Name(), a.path); err != nil {
		os.Remove(a.File.Name())
		return err
	}
	return syncDir(filepath.Dir(a.path))
}

// Abort discards the temporary file.
func (a *AtomicFile) Abort() {
	a.File.Close()
	os.Remove(a.File.Name())
}

// WriteFileAtomic writes data to path atomically.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := CreateAtomic(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Abort()
		return err
	}
	return f.Commit()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !os.IsPermission(err) {
		// Some file systems cannot sync a directory; the rename stands.
		return nil
	}
	return nil
}
