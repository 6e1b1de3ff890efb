//go:build !(linux || darwin || freebsd)

package data

import (
	"io"
	"os"
)

// mapFile reads f into memory where mmap is not available (js/wasm,
// Windows): the same API, without the sharing.
func mapFile(f *os.File, size int64) ([]byte, func() error, error) {
	b := make([]byte, size)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, nil, err
	}
	return b, func() error { return nil }, nil
}
