//go:build unix

package checkpoint

import (
	"os"
	"syscall"
)

// mapFile memory-maps path read-only.
func mapFile(path string) ([]byte, func() error, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	size := st.Size()
	if size == 0 {
		return []byte{}, nil, nil
	}
	if int64(int(size)) != size {
		return nil, nil, &FormatError{File: path, Msg: "file too large to map"}
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		// Fall back to reading (e.g. file systems without mmap).
		b, rerr := os.ReadFile(path)
		return b, nil, rerr
	}
	return data, func() error { return syscall.Munmap(data) }, nil
}
