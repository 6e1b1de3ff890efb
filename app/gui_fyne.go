//go:build !nogui

package app

import (
	"fmt"
	"os"

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
	code := 0
	if shots != "" {
		go func() {
			files, err := u.Screenshots(shots)
			for _, f := range files {
				fmt.Println(f)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "llmlab screenshots:", err)
				code = 1
			}
			fyne.Do(func() { u.Close(); a.Quit() })
		}()
	}
	w.ShowAndRun()
	u.Close()
	return code
}
