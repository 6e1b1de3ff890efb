package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"llmlab/assets"
	"llmlab/core/checkpoint"
)

// demoModelDir unpacks the embedded demo model once into the user cache
// (a folder named by the content's hash, so a new binary never reads an
// old copy) and returns the folder.
func demoModelDir() (string, error) {
	return unpack(assets.DemoModel(), "demo", "model.safetensors")
}

// unpack copies an embedded folder into the user cache once, in a folder
// named by its content's hash; the file named last is written last and
// marks a complete copy.
func unpack(fsys fs.FS, prefix, last string) (string, error) {
	names, err := fs.Glob(fsys, "*")
	if err != nil || len(names) == 0 {
		return "", errors.New("an embedded asset is missing from this binary")
	}
	h := sha256.New()
	files := map[string][]byte{}
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return "", err
		}
		files[n] = b
		h.Write([]byte(n))
		h.Write(b)
	}
	base, err := cacheDir("")
	if err != nil {
		return "", err
	}
	dir := filepath.Join(base, prefix+"-"+hex.EncodeToString(h.Sum(nil))[:12])
	if _, err := os.Stat(filepath.Join(dir, last)); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for _, n := range names {
		if n != last {
			if err := checkpoint.WriteFileAtomic(filepath.Join(dir, n), files[n], 0o644); err != nil {
				return "", err
			}
		}
	}
	if err := checkpoint.WriteFileAtomic(filepath.Join(dir, last), files[last], 0o644); err != nil {
		return "", err
	}
	return dir, nil
}

// demoAdapterDir is the adapter `llmlab demo` saved last
// (runs/demo/adapter) or, without one, the demo adapter embedded in the
// binary, unpacked into the user cache.
func demoAdapterDir() (string, error) {
	dir := filepath.Join("runs", "demo", "adapter")
	if _, err := os.Stat(filepath.Join(dir, "adapter_config.json")); err == nil {
		return dir, nil
	}
	return unpack(assets.DemoAdapter(), "demo-adapter", "adapter_model.safetensors")
}
