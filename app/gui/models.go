package gui

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"llmlab/app/cli"
	"llmlab/core/model"
)

// ModelsPage opens a model (a folder, the embedded demo, or a new random
// one from a preset) and describes it.
type ModelsPage struct {
	u       *UI
	Path    *widget.Entry
	Open    *widget.Button
	Demo    *widget.Button
	Arch    *widget.Select
	Preset  *widget.Select
	Shape   *widget.Label // the chosen preset's family and shape
	NewOut  *widget.Entry
	Create  *widget.Button
	Error   *widget.Label
	Info    *widget.Form
	Summary *widget.Label
	view    fyne.CanvasObject

	// Loaded is the model shown (nil before one is opened); Arg is how
	// commands name it (a folder or "demo").
	Loaded *cli.Model
	Arg    string
}

func newModelsPage(u *UI) *ModelsPage {
	p := &ModelsPage{u: u}
	p.Path = widget.NewEntry()
	p.Path.SetPlaceHolder("a model folder in the Hugging Face layout (config.json, model.safetensors, tokenizer.json)")
	browse := widget.NewButton("Browse…", func() {
		dialog.ShowFolderOpen(func(l fyne.ListableURI, err error) {
			if err == nil && l != nil {
				p.Path.SetText(l.Path())
			}
		}, u.Win)
	})
	p.Open = widget.NewButton("Open", func() { p.Load(strings.TrimSpace(p.Path.Text), nil) })
	p.Demo = widget.NewButton("Open the demo model", func() { p.Load("demo", nil) })
	p.Arch = widget.NewSelect([]string{"llama", "gpt2"}, nil)
	p.Arch.SetSelected("llama")
	p.Shape = widget.NewLabel("")
	p.Shape.Wrapping = fyne.TextWrapWord
	p.Preset = widget.NewSelect(model.PresetNames(), func(string) { p.describePreset() })
	p.Arch.OnChanged = func(string) { p.describePreset() }
	p.Preset.SetSelected("tiny")
	p.NewOut = widget.NewEntry()
	p.NewOut.SetPlaceHolder("folder name inside the runs folder, e.g. models/my-tiny")
	p.Create = widget.NewButton("Create", p.create)
	p.Error = widget.NewLabel("")
	p.Error.Importance = widget.DangerImportance
	p.Error.Wrapping = fyne.TextWrapWord
	p.Summary = widget.NewLabel("no model open")
	p.Summary.Wrapping = fyne.TextWrapWord
	p.Info = widget.NewForm()

	open := widget.NewCard("Open", "", container.NewVBox(
		container.NewBorder(nil, nil, nil, container.NewHBox(browse, p.Open), p.Path),
		p.Demo))
	create := widget.NewCard("New model from a preset", "random weights, byte-level tokenizer",
		widget.NewForm(
			widget.NewFormItem("Family", p.Arch),
			widget.NewFormItem("Preset", p.Preset),
			widget.NewFormItem("", p.Shape),
			&widget.FormItem{Text: "Save as", Widget: container.NewBorder(nil, nil, nil, p.Create, p.NewOut), HintText: "llmlab init --arch --preset --out"},
		))
	info := widget.NewCard("Model", "", container.NewVBox(p.Summary, p.Info))
	p.view = container.NewVScroll(container.NewVBox(open, create, p.Error, info))
	return p
}

// Load opens arg in the background and shows it; done, if set, runs on the
// UI thread afterwards with the error (nil on success).
func (p *ModelsPage) Load(arg string, done func(error)) {
	if arg == "" {
		p.fail(errors.New("give a model folder, or open the demo model"))
		if done != nil {
			done(errors.New("no model"))
		}
		return
	}
	p.Error.SetText("")
	p.Summary.SetText("loading " + arg + " …")
	p.u.background(func() {
		m, err := cli.LoadModel(arg, "", p.u.Device, p.u.Threads)
		fyne.Do(func() {
			if err != nil {
				p.fail(err)
				p.Summary.SetText("no model open")
			} else {
				p.show(arg, m)
			}
			if done != nil {
				done(err)
			}
		})
	})
}

func (p *ModelsPage) fail(err error) {
	p.Error.SetText(err.Error())
}

// show fills the description and offers the model to the other pages.
func (p *ModelsPage) show(arg string, m *cli.Model) {
	// The other pages read only the tokenizer and template of the model
	// shown here, never run it: the one replaced can give back its device.
	if p.Loaded != nil && p.Loaded != m {
		p.Loaded.Close()
	}
	p.Loaded, p.Arg = m, arg
	c := m.M.Cfg
	tmpl := m.Template.String()
	if m.TemplateErr != nil {
		tmpl += " (the model's own template cannot be used: " + m.TemplateErr.Error() + ")"
	}
	tok := m.Tok
	special := func(id int32) string {
		if id < 0 {
			return "none"
		}
		return fmt.Sprintf("%q (%d)", tok.Piece(id), id)
	}
	rows := [][2]string{
		{"Folder", m.Dir},
		{"Architecture", fmt.Sprintf("%s (model_type %s), %d layers, hidden %d, %d heads (%d KV), MLP %d, %s", c.Arch, c.ModelType, c.Layers, c.Hidden, c.Heads, c.KVHeads, c.Intermediate, c.Activation)},
		{"Parameters", humanCount(int64(m.M.NumParams()))},
		{"Context", fmt.Sprintf("%d tokens", c.MaxPos)},
		{"Memory", fmt.Sprintf("weights %s (f32); training at batch 8 x %d: about %s in full, %s with LoRA",
			humanBytes(int64(m.M.NumParams())*4), min(256, c.MaxPos),
			humanBytes(cli.TrainingMemory(m.M, 8, min(256, c.MaxPos), false)), humanBytes(cli.TrainingMemory(m.M, 8, min(256, c.MaxPos), true)))},
		{"Tokenizer", fmt.Sprintf("%d tokens (model vocabulary %d), BOS %s, EOS %s", tok.VocabSize(), c.VocabSize, special(tok.BOS()), special(tok.EOS()))},
		{"Chat template", tmpl},
	}
	p.Info.Items = nil
	for _, r := range rows {
		l := widget.NewLabel(r[1])
		l.Wrapping = fyne.TextWrapWord
		p.Info.Append(r[0], l)
	}
	p.Info.Refresh()
	p.Summary.SetText(fmt.Sprintf("%s: %s %s parameters; used by Train, Align, Data and the Playground", arg, c.ModelType, humanCount(int64(m.M.NumParams()))))
	p.u.modelOpened(arg)
}

// describePreset shows what `llmlab init` would make of the chosen preset
// and layout: the family presets (Llama 3.2, Qwen3, Gemma 3, Phi-4-mini,
// SmolLM2/3) keep their own family.
func (p *ModelsPage) describePreset() {
	if p.Shape == nil || p.Preset.Selected == "" {
		return
	}
	arch, err := model.ParseArch(p.Arch.Selected)
	if err != nil {
		return
	}
	c, err := model.Preset(arch, p.Preset.Selected)
	if err != nil {
		p.Shape.SetText(err.Error())
		return
	}
	p.Shape.SetText(fmt.Sprintf("%s: %d layers, width %d, %d heads (%d key/value), vocabulary %d, context %d",
		c.ModelType, c.Layers, c.Hidden, c.Heads, c.KVHeads, c.VocabSize, c.MaxPos))
}

// create runs `llmlab init` into the runs folder and opens the result.
func (p *ModelsPage) create() {
	name := strings.TrimSpace(p.NewOut.Text)
	if name == "" {
		p.fail(errors.New("give the new model a folder name"))
		return
	}
	out := name
	if !filepath.IsAbs(out) {
		out = p.u.runDir(name)
	}
	p.Error.SetText("")
	args := []string{"init", "--arch", p.Arch.Selected, "--preset", p.Preset.Selected, "--out", out}
	p.u.background(func() {
		_, err := p.u.runQuick(args)
		fyne.Do(func() {
			if err != nil {
				p.fail(err)
				p.u.showError(err)
				return
			}
			p.Path.SetText(out)
			p.Load(out, nil)
		})
	})
}

func humanCount(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
}
