//go:build !unix

package checkpoint

import "os"

// mapFile reads the whole file where memory mapping is unavailable.
func mapFile(path string) ([]byte, func() error, error) {
	b, err := os.ReadFile(path)
	return b, nil, err
}
