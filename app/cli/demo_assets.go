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
	fsys := assets.DemoModel()
	names, err := fs.Glob(fsys, "*")
	if err != nil || len(names) == 0 {
		return "", errors.New("the embedded demo model is missing from this binary")
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
	dir := filepath.Join(base, "demo-"+hex.EncodeToString(h.Sum(nil))[:12])
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// model.safetensors last: its presence marks a complete copy.
	for _, n := range names {
		if n != "model.safetensors" {
			if err := checkpoint.WriteFileAtomic(filepath.Join(dir, n), files[n], 0o644); err != nil {
				return "", err
			}
		}
	}
	if err := checkpoint.WriteFileAtomic(filepath.Join(dir, "model.safetensors"), files["model.safetensors"], 0o644); err != nil {
		return "", err
	}
	return dir, nil
}

// demoAdapterDir is the adapter `llmlab demo` saved last (runs/demo/adapter).
func demoAdapterDir() (string, error) {
	dir := filepath.Join("runs", "demo", "adapter")
	if _, err := os.Stat(filepath.Join(dir, "adapter_config.json")); err != nil {
		return "", BadInput(errors.New("no demo adapter yet: run llmlab demo first (it writes runs/demo/adapter)"))
	}
	return dir, nil
}
