// Package gui is llmlab's desktop front end, built with Fyne. It holds the
// screens, the job runner and a small chart widget, and never the
// training logic: every job is an llmlab command line run in a goroutine
// through the CLI's own entry point (Options.Run, cli.Run in the app) with
// --json, whose event lines drive a progress bar, a loss chart and a log.
// Stop cancels the job's context, and the commands checkpoint on cancel
// exactly as on Ctrl-C. The Playground loads a model in-process through
// cli.LoadModel and streams tokens from core/generate.
//
// The package does not import fyne.io/fyne/v2/app, so it builds and its
// tests run without cgo or a display (fyne.io/fyne/v2/test); package app
// creates the real window and hands it to New. Importing app/gui/locale
// makes Fyne fall back to English quietly under a C locale.
package gui

import (
	"context"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"llmlab/app/cli"
	_ "llmlab/app/gui/locale" // before Fyne reads the locale: no noise under C.UTF-8
)

// Options configure the app.
type Options struct {
	// Run runs a command line; nil means cli.Run.
	Run Runner
	// RunsDir is the runs folder; "" means the saved setting or "runs".
	RunsDir string
}

// UI is the whole app: the shared settings, the one job slot and the
// pages, each a struct that owns its widgets.
type UI struct {
	App    fyne.App
	Win    fyne.Window
	run    Runner
	ctx    context.Context
	cancel context.CancelFunc

	bg  sync.WaitGroup // background work: loads, short commands, replies
	mu  sync.Mutex
	job *Job // the running job, nil when idle: one at a time, they share the cores

	// Settings, read by every page when it builds a command line.
	Device  string
	Threads int
	RunsDir string

	Models     *ModelsPage
	Data       *DataPage
	Train      *TrainPage
	Align      *AlignPage
	Playground *PlaygroundPage
	Runs       *RunsPage
	Settings   *SettingsPage

	pages   []page
	nav     *widget.List
	content *fyne.Container
	current int
}

type page struct {
	name, help string
	icon       fyne.Resource
	view       fyne.CanvasObject
	onShow     func()
}

// PageNames lists the pages in navigation order.
func PageNames() []string {
	return []string{"Models", "Data", "Train", "Align", "Playground", "Runs", "Settings"}
}

// New builds the app's window content in w.
func New(a fyne.App, w fyne.Window, o Options) *UI {
	u := &UI{App: a, Win: w, run: o.Run, Device: "auto"}
	if u.run == nil {
		u.run = cli.Run
	}
	u.ctx, u.cancel = context.WithCancel(context.Background())
	prefs := a.Preferences()
	u.RunsDir = prefs.StringWithFallback("runs_dir", "runs")
	if o.RunsDir != "" {
		u.RunsDir = o.RunsDir
	}
	u.Device = prefs.StringWithFallback("device", "auto")
	u.Threads = prefs.IntWithFallback("threads", 0)

	u.Models = newModelsPage(u)
	u.Data = newDataPage(u)
	u.Train = newTrainPage(u)
	u.Align = newAlignPage(u)
	u.Playground = newPlaygroundPage(u)
	u.Runs = newRunsPage(u)
	u.Settings = newSettingsPage(u)
	u.pages = []page{
		{"Models", "open a model folder, the demo model, or a new one from a preset", theme.ComputerIcon(), u.Models.view, nil},
		{"Data", "preview a dataset as the model sees it", theme.DocumentIcon(), u.Data.view, nil},
		{"Train", "pretrain or fine-tune (SFT, with a PEFT method)", theme.MediaPlayIcon(), u.Train.view, nil},
		{"Align", "reward model, DPO family, KTO, GRPO, PPO, RLAIF", theme.ConfirmIcon(), u.Align.view, nil},
		{"Playground", "chat with a model, base and tuned side by side", theme.MailComposeIcon(), u.Playground.view, u.Playground.refreshAdapters},
		{"Runs", "every run in the runs folder", theme.ListIcon(), u.Runs.view, u.Runs.Refresh},
		{"Settings", "device, threads, runs folder, theme", theme.SettingsIcon(), u.Settings.view, nil},
	}
	u.content = container.NewStack()
	u.nav = widget.NewList(
		func() int { return len(u.pages) },
		func() fyne.CanvasObject {
			return container.NewHBox(widget.NewIcon(theme.ComputerIcon()), widget.NewLabel("Playground"))
		},
		func(id widget.ListItemID, o fyne.CanvasObject) {
			box := o.(*fyne.Container)
			box.Objects[0].(*widget.Icon).SetResource(u.pages[id].icon)
			box.Objects[1].(*widget.Label).SetText(u.pages[id].name)
		})
	u.nav.OnSelected = func(id widget.ListItemID) { u.show(id) }
	split := container.NewHSplit(u.nav, u.content)
	split.Offset = 0.14
	w.SetContent(split)
	w.SetCloseIntercept(u.confirmClose)
	u.Settings.applyTheme(prefs.StringWithFallback("theme", "system"))
	u.nav.Select(0)
	return u
}

// Show switches to the page with the given name.
func (u *UI) Show(name string) {
	for i, p := range u.pages {
		if p.name == name {
			u.nav.Select(i)
			return
		}
	}
}

// Current returns the name of the page shown.
func (u *UI) Current() string { return u.pages[u.current].name }

func (u *UI) show(i int) {
	u.current = i
	p := u.pages[i]
	title := widget.NewLabelWithStyle(p.name, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	title.SizeName = theme.SizeNameSubHeadingText
	hint := widget.NewLabel(p.help)
	hint.Importance = widget.LowImportance
	u.content.Objects = []fyne.CanvasObject{container.NewBorder(container.NewVBox(title, hint, widget.NewSeparator()), nil, nil, nil, p.view)}
	u.content.Refresh()
	if p.onShow != nil {
		p.onShow()
	}
}

// modelOpened offers the model the Models page opened to the pages that
// run one.
func (u *UI) modelOpened(arg string) {
	u.Train.Model.SetText(arg)
	u.Align.Model.SetText(arg)
	u.Playground.Model.SetText(arg)
}

// dataOpened offers the dataset the Data page previewed to Train, or to
// Align for preference and KTO data.
func (u *UI) dataOpened(path string, align bool) {
	if align {
		u.Align.Data.SetText(path)
		return
	}
	u.Train.Data.SetText(path)
}

// confirmClose asks before closing over a running job, then stops it
// (which checkpoints) and waits for it.
func (u *UI) confirmClose() {
	j := u.Running()
	if j == nil {
		u.cancel()
		u.Win.Close()
		return
	}
	dialog.ShowConfirm("A job is running",
		"llmlab "+j.Args[0]+" is still running. Stop it (it saves a checkpoint you can resume) and quit?",
		func(ok bool) {
			if !ok {
				return
			}
			j.Stop()
			go func() {
				j.Wait()
				fyne.Do(func() { u.cancel(); u.Win.Close() })
			}()
		}, u.Win)
}

// Running returns the running job, or nil.
func (u *UI) Running() *Job {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.job != nil && !u.job.Running() {
		u.job = nil
	}
	return u.job
}

// claim takes the job slot for j; it fails while another job runs.
func (u *UI) claim(start func() *Job) (*Job, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.job != nil && u.job.Running() {
		return nil, fmt.Errorf("llmlab %s is still running: stop it first (one job at a time, they share the cores)", u.job.Args[0])
	}
	u.job = start()
	return u.job, nil
}

// deviceArgs are the --device and --threads flags from the settings.
func (u *UI) deviceArgs() []string {
	a := []string{"--device", u.Device}
	if u.Threads > 0 {
		a = append(a, "--threads", strconv.Itoa(u.Threads))
	}
	return a
}

// runQuick runs a short command (init, data gen, merge, export) and
// returns its output and error sentence.
func (u *UI) runQuick(args []string) (string, error) {
	var out, errb strings.Builder
	code := u.run(u.ctx, args, &out, &errb)
	if code != 0 {
		msg := lastLine(errb.String(), "llmlab ")
		if msg == "" {
			msg = "llmlab " + args[0] + " failed"
		}
		return out.String(), fmt.Errorf("%s", msg)
	}
	return out.String(), nil
}

// lastLine returns the last line of s starting with prefix, or the last
// non-empty line.
func lastLine(s, prefix string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], prefix) {
			return lines[i]
		}
	}
	if len(lines) > 0 {
		return lines[len(lines)-1]
	}
	return ""
}

// showError shows err in a dialog (the CLI's sentence as it is).
func (u *UI) showError(err error) {
	dialog.ShowError(err, u.Win)
}

// threads is the thread count to use in-process (0: all cores).
func (u *UI) threads() int {
	if u.Threads > 0 {
		return u.Threads
	}
	return runtime.NumCPU()
}

// runDir is a run folder inside the runs folder.
func (u *UI) runDir(name string) string { return filepath.Join(u.RunsDir, name) }

// Capture writes the window's canvas as a PNG file (UI thread).
func (u *UI) Capture(path string) error {
	return WritePNG(path, u.Win.Canvas().Capture())
}

// WritePNG writes img to path.
func WritePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// background runs fn on its own goroutine; Close waits for it.
func (u *UI) background(fn func()) {
	u.bg.Add(1)
	go func() {
		defer u.bg.Done()
		fn()
	}()
}

// Close stops a running job and the background work and waits for them
// (tests and the app's exit).
func (u *UI) Close() {
	if j := u.Running(); j != nil {
		j.Stop()
		j.Wait()
	}
	u.cancel()
	if p := u.Playground; p != nil && p.served != nil {
		<-p.served // the server's context was u.ctx's child
		p.stopServe, p.served = nil, nil
	}
	u.bg.Wait()
}

var _ io.Writer = (*lineWriter)(nil)
