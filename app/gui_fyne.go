//go:build !nogui

package app

import (
	"errors"
	"fmt"
	"image"
	"os"
	"os/exec"
	"sync/atomic"

	"fyne.io/fyne/v2"
	fyneapp "fyne.io/fyne/v2/app"

	"llmlab/app/cli"
	"llmlab/app/gui"
)

// screenshotsEnv names a folder: the app then drives itself through a
// short session, writes one PNG per page there and quits (make screenshots).
const screenshotsEnv = "LLMLAB_SCREENSHOTS"

// runGUI opens the desktop app. Without a display (GLFW would panic) it
// prints the help and exits 2, as the CLI contract says.
func runGUI() int {
	if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		fmt.Fprintln(os.Stderr, "llmlab: no display (DISPLAY and WAYLAND_DISPLAY are unset), so no desktop app; use a subcommand")
		cli.Usage(os.Stderr)
		return 2
	}
	a := fyneapp.NewWithID("org.llmlab.llmlab")
	w := a.NewWindow("llmlab")
	w.Resize(fyne.NewSize(1280, 800))
	var o gui.Options
	shots := os.Getenv(screenshotsEnv)
	if shots != "" {
		// A fresh runs folder, so the pictures do not depend on the user's.
		dir, err := os.MkdirTemp("", "llmlab-screenshots-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "llmlab:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		o.RunsDir = dir
	}
	u := gui.New(a, w, o)
	var code atomic.Int32
	if shots != "" {
		go func() {
			files, err := u.Screenshots(shots, func(path string) error { return capture(u, path) })
			for _, f := range files {
				fmt.Println(f)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "llmlab screenshots:", err)
				code.Store(1)
			}
			fyne.Do(func() { u.Close(); a.Quit() })
		}()
	}
	w.ShowAndRun()
	u.Close()
	return int(code.Load())
}

// capture writes the window as a PNG. The GL canvas's Capture reads the
// front buffer, which comes back empty under Xvfb's software GL; then the
// X screen is grabbed with ImageMagick's import instead (the window fills
// the screen there, as no window manager runs).
func capture(u *gui.UI, path string) error {
	var img image.Image
	fyne.DoAndWait(func() { img = u.Win.Canvas().Capture() })
	if !blank(img) {
		return gui.WritePNG(path, img)
	}
	if _, err := exec.LookPath("import"); err != nil {
		return errors.New("the window capture came back empty and ImageMagick's import is not installed to grab the screen")
	}
	out, err := exec.Command("import", "-window", "root", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("import -window root %s: %v: %s", path, err, out)
	}
	return nil
}

// blank reports whether every sampled pixel of img is the same.
func blank(img image.Image) bool {
	b := img.Bounds()
	if b.Empty() {
		return true
	}
	r0, g0, b0, a0 := img.At(b.Min.X, b.Min.Y).RGBA()
	for y := b.Min.Y; y < b.Max.Y; y += 7 {
		for x := b.Min.X; x < b.Max.X; x += 7 {
			if r, g, bl, a := img.At(x, y).RGBA(); r != r0 || g != g0 || bl != b0 || a != a0 {
				return false
			}
		}
	}
	return true
}
