// Package checkpoint reads and writes tensors in the safetensors format and
// Hugging Face model folders, trusting nothing a header says, and writes
// every file atomically (core/atomicfile: temp file, fsync, rename, fsync of
// the folder) so a crash never leaves a half-written checkpoint behind.
package checkpoint

import (
	"os"

	"llmlab/core/atomicfile"
)

// AtomicFile is a file that appears at its path only on Commit.
type AtomicFile = atomicfile.File

// CreateAtomic starts writing path through a temporary file beside it,
// with the usual mode (0644 under the umask).
func CreateAtomic(path string) (*AtomicFile, error) { return atomicfile.Create(path, atomicfile.Mode) }

// WriteFileAtomic writes data to path atomically with mode perm (the umask
// applies, as for any file the user creates).
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return atomicfile.WriteFile(path, data, perm)
}
