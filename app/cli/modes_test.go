package cli

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// checkModes walks root and fails on any file or folder whose mode is not
// what os.WriteFile(0644) and os.Mkdir(0755) give under this process's
// umask: the modes a user expects of what llmlab writes (models, adapters,
// checkpoints, runs, exports, data).
func checkModes(t *testing.T, root string) {
	t.Helper()
	probe := t.TempDir()
	pf, pd := filepath.Join(probe, "f"), filepath.Join(probe, "d")
	if err := os.WriteFile(pf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(pd, 0o755); err != nil {
		t.Fatal(err)
	}
	fst, _ := os.Stat(pf)
	dst, _ := os.Stat(pd)
	wantFile, wantDir := fst.Mode().Perm(), dst.Mode().Perm()
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := wantFile
		if d.IsDir() {
			want = wantDir
		}
		if info.Mode().Perm() != want {
			rel, _ := filepath.Rel(root, p)
			t.Errorf("%s: mode %v, want %v", rel, info.Mode().Perm(), want)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("nothing under %s to check", root)
	}
}
