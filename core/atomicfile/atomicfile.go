// Package atomicfile writes files that appear whole or not at all: the data
// goes to a temporary file beside the target, is synced, and is renamed over
// the target, then the folder is synced. A reader (or a crash) sees the old
// file or the new one, never a part.
//
// The temporary file is created with the mode the caller asks for (0644 for
// everything llmlab writes), filtered by the process umask like any other
// file the user creates. os.CreateTemp is not used: it makes 0600 files, and
// a rename keeps that mode, which left model folders readable by their
// owner alone.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// Mode is the mode llmlab gives the files it writes, before the umask.
const Mode fs.FileMode = 0o644

// File is a file that appears at its path only on Commit.
type File struct {
	*os.File
	path string
}

// Create starts writing path through a temporary file in the same folder,
// created with mode perm (the umask applies).
func Create(path string, perm fs.FileMode) (*File, error) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	for range 100 {
		tmp := filepath.Join(dir, fmt.Sprintf(".%s.tmp-%08x", base, rand.Uint32()))
		f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return &File{File: f, path: path}, nil
	}
	return nil, fmt.Errorf("creating a temporary file for %s: too many name collisions", path)
}

// Commit flushes the data to disk and moves the file into place.
func (a *File) Commit() error {
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
	SyncDir(filepath.Dir(a.path))
	return nil
}

// Abort discards the temporary file.
func (a *File) Abort() {
	a.File.Close()
	os.Remove(a.File.Name())
}

// WriteFile writes data to path atomically with mode perm (the umask
// applies).
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return err
	}
	return f.Commit()
}

// SyncDir makes a rename in dir durable. Some file systems cannot sync a
// folder; the rename stands there all the same, so errors are ignored.
func SyncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
