package gui

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"
)

// RunsPage lists every run in the runs folder with its configuration,
// status and loss curves, and resumes, deletes, merges or exports one.
type RunsPage struct {
	u      *UI
	List   *widget.List
	Status *widget.Label
	Config *widget.Label
	Chart  *LineChart
	Resume *widget.Button
	Delete *widget.Button
	Merge  *widget.Button
	Export *widget.Button
	Panel  *JobPanel
	view   fyne.CanvasObject

	names    []string
	selected string
}

// commandFile is where the app keeps the command line it ran in a run
// folder, so Resume can run it again with --resume.
const commandFile = "gui-command.json"

func newRunsPage(u *UI) *RunsPage {
	p := &RunsPage{u: u}
	p.List = widget.NewList(
		func() int { return len(p.names) },
		func() fyne.CanvasObject { return widget.NewLabel("a run name of some length") },
		func(id widget.ListItemID, o fyne.CanvasObject) { o.(*widget.Label).SetText(p.names[id]) })
	p.List.OnSelected = func(id widget.ListItemID) { p.Select(p.names[id]) }
	p.Status = widget.NewLabel("choose a run")
	p.Status.Wrapping = fyne.TextWrapWord
	p.Config = widget.NewLabel("")
	p.Config.TextStyle = fyne.TextStyle{Monospace: true}
	p.Chart = NewLineChart("train loss", "eval loss")
	p.Resume = widget.NewButton("Resume", p.resume)
	p.Delete = widget.NewButton("Delete", p.delete)
	p.Delete.Importance = widget.DangerImportance
	p.Merge = widget.NewButton("Merge adapter", p.merge)
	p.Export = widget.NewButton("Export GGUF", p.export)
	p.Panel = newJobPanel(u)
	p.Panel.OnDone = func(code int, msg string) {
		p.Refresh()
		if code != 0 {
			u.showError(errors.New(msg))
		}
	}
	refresh := widget.NewButton("Refresh", p.Refresh)
	buttons := container.NewHBox(p.Resume, p.Merge, p.Export, p.Delete, refresh)
	detail := container.NewBorder(container.NewVBox(p.Status, buttons), nil, nil, nil,
		container.NewVSplit(container.NewHSplit(p.Chart, container.NewScroll(p.Config)), p.Panel.view))
	p.Panel.view.Hide() // until Resume starts a job here
	split := container.NewHSplit(p.List, detail)
	split.Offset = 0.2
	p.view = split
	p.enable(false)
	return p
}

func (p *RunsPage) enable(on bool) {
	for _, b := range []*widget.Button{p.Resume, p.Delete, p.Merge, p.Export} {
		if on {
			b.Enable()
		} else {
			b.Disable()
		}
	}
}

// Refresh lists the runs folder again: every folder with a run.json or a
// final/ folder.
func (p *RunsPage) Refresh() {
	ents, _ := os.ReadDir(p.u.RunsDir)
	p.names = p.names[:0]
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		dir := p.u.runDir(e.Name())
		if exists(filepath.Join(dir, "run.json")) || exists(filepath.Join(dir, "final")) || exists(filepath.Join(dir, "metrics.jsonl")) {
			p.names = append(p.names, e.Name())
		}
	}
	sort.Strings(p.names)
	p.List.Refresh()
	if p.selected != "" {
		p.Select(p.selected)
	}
}

// Names returns the runs listed.
func (p *RunsPage) Names() []string { return append([]string(nil), p.names...) }

// Select shows one run.
func (p *RunsPage) Select(name string) {
	p.selected = name
	dir := p.u.runDir(name)
	if !exists(dir) {
		p.Status.SetText(name + ": gone")
		p.enable(false)
		return
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "run.json"))
	if err != nil {
		cfg = []byte("(no run.json)")
	}
	p.Config.SetText(string(cfg))
	p.Chart.Clear()
	steps, last := p.loadMetrics(dir)
	p.Chart.Refresh()
	p.Status.SetText(name + ": " + p.status(dir, steps, last))
	p.enable(true)
	_, fin := p.finalKind(dir)
	if !fin {
		p.Merge.Disable()
		p.Export.Disable()
	} else if k, _ := p.finalKind(dir); k != "adapter" {
		p.Merge.Disable()
	}
	if fin || !exists(filepath.Join(dir, commandFile)) {
		p.Resume.Disable() // finished, or not started from the app
	}
}

// loadMetrics reads metrics.jsonl into the chart; it returns the planned
// steps and the last step reached.
func (p *RunsPage) loadMetrics(dir string) (steps, last int) {
	f, err := os.Open(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		ev, ok := parseEvent(sc.Text())
		if !ok {
			continue
		}
		switch ev.Kind {
		case "step":
			p.Chart.Add(0, float64(ev.Step), ev.Loss)
			last = max(last, ev.Step)
		case "eval":
			p.Chart.Add(1, float64(ev.Step), ev.EvalLoss)
		}
		if ev.Steps > 0 {
			steps = ev.Steps
		}
	}
	return steps, last
}

func (p *RunsPage) status(dir string, steps, last int) string {
	if j := p.u.Running(); j != nil && argValue(j.Args, "--out") == dir {
		return fmt.Sprintf("running (step %d of %d)", last, steps)
	}
	if k, ok := p.finalKind(dir); ok {
		s := fmt.Sprintf("finished: final/ holds %s", k)
		if steps > 0 {
			s += fmt.Sprintf(" after %d steps", last)
		}
		return s
	}
	if ms, _ := filepath.Glob(filepath.Join(dir, "checkpoints", "step-*")); len(ms) > 0 {
		return fmt.Sprintf("stopped at step %d of %d with a checkpoint: Resume continues it", last, steps)
	}
	return fmt.Sprintf("incomplete (step %d of %d, no checkpoint)", last, steps)
}

// finalKind says what final/ holds: "adapter", "model", or false.
func (p *RunsPage) finalKind(dir string) (string, bool) {
	fin := filepath.Join(dir, "final")
	switch {
	case exists(filepath.Join(fin, "adapter_config.json")):
		return "adapter", true
	case exists(filepath.Join(fin, "config.json")):
		return "model", true
	}
	return "", false
}

// baseModel is the model an adapter run started from.
func (p *RunsPage) baseModel(dir string) string {
	var ac struct {
		Base string `json:"base_model_name_or_path"`
	}
	if b, err := os.ReadFile(filepath.Join(dir, "final", "adapter_config.json")); err == nil && json.Unmarshal(b, &ac) == nil && ac.Base != "" {
		return ac.Base
	}
	var rec struct {
		Model string `json:"model"`
	}
	if b, err := os.ReadFile(filepath.Join(dir, "run.json")); err == nil && json.Unmarshal(b, &rec) == nil {
		return rec.Model
	}
	return ""
}

func (p *RunsPage) resume() {
	dir := p.u.runDir(p.selected)
	b, err := os.ReadFile(filepath.Join(dir, commandFile))
	if err != nil {
		p.u.showError(fmt.Errorf("%s: this run was not started from the app; resume it with its command line and --resume", dir))
		return
	}
	var args []string
	if err := json.Unmarshal(b, &args); err != nil || len(args) == 0 {
		p.u.showError(fmt.Errorf("%s: %v", filepath.Join(dir, commandFile), err))
		return
	}
	steps, _ := p.loadMetricsSteps(dir)
	if err := p.Panel.Start(append(args, "--resume"), steps); err != nil {
		p.u.showError(err)
	}
}

func (p *RunsPage) loadMetricsSteps(dir string) (int, int) {
	c := NewLineChart("", "")
	q := &RunsPage{u: p.u, Chart: c}
	return q.loadMetrics(dir)
}

func (p *RunsPage) delete() {
	name := p.selected
	dir := p.u.runDir(name)
	if j := p.u.Running(); j != nil && argValue(j.Args, "--out") == dir {
		p.u.showError(errors.New(name + " is running: stop it first"))
		return
	}
	dialog.ShowConfirm("Delete run", "Delete "+dir+" and everything in it?", func(ok bool) {
		if !ok {
			return
		}
		if err := os.RemoveAll(dir); err != nil {
			p.u.showError(err)
		}
		p.selected = ""
		p.List.UnselectAll()
		p.Status.SetText("choose a run")
		p.Config.SetText("")
		p.Chart.Clear()
		p.Chart.Refresh()
		p.enable(false)
		p.Refresh()
	}, p.u.Win)
}

// MergeArgs is the merge command line for the selected run.
func (p *RunsPage) MergeArgs() ([]string, error) {
	dir := p.u.runDir(p.selected)
	if k, _ := p.finalKind(dir); k != "adapter" {
		return nil, errors.New(p.selected + ": final/ holds no adapter to merge")
	}
	base := p.baseModel(dir)
	if base == "" {
		return nil, errors.New(p.selected + ": the base model is not recorded")
	}
	return []string{"merge", "--model", base, "--adapter", filepath.Join(dir, "final"), "--out", filepath.Join(dir, "merged")}, nil
}

// ExportArgs is the GGUF export command line for the selected run.
func (p *RunsPage) ExportArgs() ([]string, error) {
	dir := p.u.runDir(p.selected)
	out := filepath.Join(dir, "model.gguf")
	switch k, _ := p.finalKind(dir); k {
	case "model":
		return []string{"export", "--model", filepath.Join(dir, "final"), "--format", "gguf", "--out", out}, nil
	case "adapter":
		return []string{"export", "--model", p.baseModel(dir), "--adapter", filepath.Join(dir, "final"), "--format", "gguf", "--out", out}, nil
	}
	return nil, errors.New(p.selected + ": no final model yet")
}

func (p *RunsPage) merge() {
	args, err := p.MergeArgs()
	if err != nil {
		p.u.showError(err)
		return
	}
	p.quick(args, "merged model in "+args[len(args)-1])
}

func (p *RunsPage) export() {
	args, err := p.ExportArgs()
	if err != nil {
		p.u.showError(err)
		return
	}
	p.quick(args, "GGUF written to "+args[len(args)-1])
}

// quick runs a short command and reports in a dialog.
func (p *RunsPage) quick(args []string, okMsg string) {
	p.Status.SetText("running llmlab " + strings.Join(args, " ") + " …")
	p.u.background(func() {
		_, err := p.u.runQuick(args)
		fyne.Do(func() {
			p.Refresh()
			if err != nil {
				p.u.showError(err)
				return
			}
			dialog.ShowInformation("Done", okMsg, p.u.Win)
		})
	})
}

// saveCommand records a training command line in its run folder for
// Resume (without --json and --resume).
func saveCommand(args []string) {
	out := argValue(args, "--out")
	if out == "" || !exists(out) {
		return
	}
	var keep []string
	for _, a := range args {
		if a != "--json" && a != "--resume" {
			keep = append(keep, a)
		}
	}
	b, _ := json.Marshal(keep)
	os.WriteFile(filepath.Join(out, commandFile), append(b, '\n'), 0o644)
}

// argValue returns the value after flag in args.
func argValue(args []string, flag string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			return args[i+1]
		}
	}
	return ""
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
