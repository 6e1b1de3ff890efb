package checkpoint

import (
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// FileSum identifies one file of a checkpoint folder: its size and its
// CRC-32C. A run's state.json lists them, so that a resume can tell a
// whole checkpoint from one cut short or damaged on disk.
type FileSum struct {
	Size   int64  `json:"size"`
	CRC32C uint32 `json:"crc32c"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// SumFiles returns the sums of every regular file under dir, keyed by
// slash-separated relative path.
func SumFiles(dir string) (map[string]FileSum, error) {
	sums := map[string]FileSum{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		s, err := SumFile(path)
		if err != nil {
			return err
		}
		sums[filepath.ToSlash(rel)] = s
		return nil
	})
	return sums, err
}

// SumFile returns one file's size and CRC-32C.
func SumFile(path string) (FileSum, error) {
	f, err := os.Open(path)
	if err != nil {
		return FileSum{}, err
	}
	defer f.Close()
	h := crc32.New(castagnoli)
	n, err := io.Copy(h, f)
	if err != nil {
		return FileSum{}, err
	}
	return FileSum{Size: n, CRC32C: h.Sum32()}, nil
}

// VerifySums checks every file listed in want (relative to dir), in name
// order, and names the first that is missing or differs.
func VerifySums(dir string, want map[string]FileSum) error {
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		got, err := SumFile(filepath.Join(dir, filepath.FromSlash(n)))
		if err != nil {
			return err
		}
		w := want[n]
		if got.Size != w.Size {
			return fmt.Errorf("%s has %d bytes, state.json says %d", n, got.Size, w.Size)
		}
		if got.CRC32C != w.CRC32C {
			return fmt.Errorf("%s has checksum %08x, state.json says %08x", n, got.CRC32C, w.CRC32C)
		}
	}
	return nil
}
