package gui

import (
	"encoding/json"
	"fmt"
	"image/color"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// SettingsPage holds the device, thread count, runs folder and theme,
// kept in the app's preferences.
type SettingsPage struct {
	u       *UI
	Device  *widget.Select
	Devices *widget.Label
	Threads *widget.Entry
	RunsDir *widget.Entry
	Theme   *widget.RadioGroup
	Apply   *widget.Button
	Error   *widget.Label
	view    fyne.CanvasObject
}

func newSettingsPage(u *UI) *SettingsPage {
	p := &SettingsPage{u: u}
	opts, detail := p.probeDevices()
	p.Device = widget.NewSelect(opts, nil)
	p.Device.SetSelected(u.Device)
	p.Devices = widget.NewLabel(detail)
	p.Devices.Wrapping = fyne.TextWrapWord
	p.Threads = numEntry(strconv.Itoa(u.Threads))
	p.RunsDir = widget.NewEntry()
	p.RunsDir.SetText(u.RunsDir)
	browse := widget.NewButton("Browse…", func() {
		dialog.ShowFolderOpen(func(l fyne.ListableURI, err error) {
			if err == nil && l != nil {
				p.RunsDir.SetText(l.Path())
			}
		}, u.Win)
	})
	p.Theme = widget.NewRadioGroup([]string{"system", "light", "dark"}, func(s string) {
		p.applyTheme(s)
		u.App.Preferences().SetString("theme", s)
	})
	p.Theme.Horizontal = true
	p.Apply = widget.NewButton("Apply", p.apply)
	p.Apply.Importance = widget.HighImportance
	p.Error = widget.NewLabel("")
	p.Error.Importance = widget.DangerImportance
	form := widget.NewForm(
		&widget.FormItem{Text: "Device", Widget: p.Device, HintText: "auto picks the best backend found (llmlab devices)"},
		&widget.FormItem{Text: "", Widget: p.Devices},
		&widget.FormItem{Text: "Threads", Widget: p.Threads, HintText: "CPU threads for jobs and the playground (0: all cores)"},
		&widget.FormItem{Text: "Runs folder", Widget: container.NewBorder(nil, nil, nil, browse, p.RunsDir), HintText: "every run and the generated demo data go here"},
		&widget.FormItem{Text: "Theme", Widget: p.Theme},
	)
	p.view = container.NewVScroll(container.NewVBox(form, container.NewHBox(p.Apply), p.Error))
	p.Theme.SetSelected(u.App.Preferences().StringWithFallback("theme", "system"))
	return p
}

// probeDevices runs `llmlab devices --json` and returns the usable
// backends (auto first) and a description of every probe.
func (p *SettingsPage) probeDevices() ([]string, string) {
	out, err := p.u.runQuick([]string{"devices", "--json"})
	opts := []string{"auto"}
	if err != nil {
		return append(opts, "cpu"), err.Error()
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var row struct {
			Backend string `json:"backend"`
			OK      bool   `json:"ok"`
			Chosen  bool   `json:"chosen"`
			Detail  string `json:"detail"`
		}
		if json.Unmarshal([]byte(l), &row) != nil {
			continue
		}
		mark := "  "
		if row.Chosen {
			mark = "* "
		}
		lines = append(lines, fmt.Sprintf("%s%s: %s", mark, row.Backend, row.Detail))
		if row.OK {
			opts = append(opts, row.Backend)
		}
	}
	return opts, strings.Join(lines, "\n")
}

// apply checks and stores the settings.
func (p *SettingsPage) apply() {
	n, err := strconv.Atoi(strings.TrimSpace(p.Threads.Text))
	if err != nil || n < 0 {
		p.Error.SetText(fmt.Sprintf("Threads: %q is not a whole number (0: all cores)", p.Threads.Text))
		return
	}
	dir := strings.TrimSpace(p.RunsDir.Text)
	if dir == "" {
		p.Error.SetText("Runs folder: give a folder")
		return
	}
	p.Error.SetText("")
	u := p.u
	u.Device, u.Threads, u.RunsDir = p.Device.Selected, n, dir
	prefs := u.App.Preferences()
	prefs.SetString("device", u.Device)
	prefs.SetInt("threads", n)
	prefs.SetString("runs_dir", dir)
	u.Runs.Refresh()
	u.Playground.refreshAdapters()
}

// applyTheme sets the app theme: the default theme, or it held to one
// variant.
func (p *SettingsPage) applyTheme(name string) {
	switch name {
	case "light":
		p.u.App.Settings().SetTheme(variantTheme{theme.DefaultTheme(), theme.VariantLight})
	case "dark":
		p.u.App.Settings().SetTheme(variantTheme{theme.DefaultTheme(), theme.VariantDark})
	default:
		p.u.App.Settings().SetTheme(theme.DefaultTheme())
	}
}

// variantTheme is a theme held to one variant (light or dark).
type variantTheme struct {
	fyne.Theme
	v fyne.ThemeVariant
}

func (t variantTheme) Color(n fyne.ThemeColorName, _ fyne.ThemeVariant) color.Color {
	return t.Theme.Color(n, t.v)
}
