//go:build !js && !windows

package atomicfile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestModeFollowsUmask: the committed file has the asked mode less the
// umask, as a plain os.WriteFile would, not CreateTemp's 0600.
func TestModeFollowsUmask(t *testing.T) {
	for _, mask := range []int{0o022, 0o077, 0o002} {
		old := syscall.Umask(mask)
		dir := t.TempDir()
		p := filepath.Join(dir, "a.json")
		err := WriteFile(p, []byte("{}\n"), Mode)
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if want := Mode &^ os.FileMode(mask); st.Mode().Perm() != want {
			t.Errorf("umask %03o: mode %v, want %v", mask, st.Mode().Perm(), want)
		}
	}
}

// TestAbortLeavesNothing: an aborted write leaves the old file and no
// temporary file behind.
func TestAbortLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x")
	if err := WriteFile(p, []byte("old"), Mode); err != nil {
		t.Fatal(err)
	}
	f, err := Create(p, Mode)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("new, half written"))
	f.Abort()
	b, _ := os.ReadFile(p)
	if string(b) != "old" {
		t.Errorf("after Abort the file reads %q", b)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("folder holds %d entries after Abort, want 1", len(ents))
	}
}
