package gui

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"llmlab/core/model"
)

// TrainPage builds a `llmlab pretrain` or `llmlab sft` command line from a
// form and runs it as a job.
type TrainPage struct {
	u      *UI
	Mode   *widget.RadioGroup
	Model  *widget.Entry
	Init   *widget.Select
	Data   *widget.Entry
	Name   *widget.Entry
	PEFT   *widget.Select
	Quant  *widget.Select
	Ckpt   *widget.Check // --checkpoint-activations
	Rank   *widget.Entry
	Alpha  *widget.Entry
	Steps  *widget.Entry
	Batch  *widget.Entry
	Ctx    *widget.Entry
	LR     *widget.Entry
	Eval   *widget.Entry
	Extra  *widget.Entry
	Start  *widget.Button
	Error  *widget.Label
	Panel  *JobPanel
	form   *widget.Form
	peftIt []*widget.FormItem
	initIt *widget.FormItem
	view   fyne.CanvasObject
}

const (
	modePretrain = "Pretrain (raw text)"
	modeSFT      = "Fine-tune (SFT)"
	noInit       = "(use the model above)"
)

// peftMethods are the PEFT choices `llmlab sft --peft` takes.
var peftMethods = []string{"lora", "dora", "adapter", "prefix", "prompt", "ia3", "none"}

// quantChoices are `--quant`'s values: how the frozen base is held.
var quantChoices = []string{"none", "bf16", "int8", "nf4"}

func newTrainPage(u *UI) *TrainPage {
	p := &TrainPage{u: u}
	p.Mode = widget.NewRadioGroup([]string{modePretrain, modeSFT}, func(string) { p.modeChanged() })
	p.Mode.Horizontal = true
	p.Model = widget.NewEntry()
	p.Model.SetText("demo")
	p.Init = widget.NewSelect(append([]string{noInit}, model.PresetNames()...), nil)
	p.Init.SetSelected(noInit)
	p.Data = widget.NewEntry()
	p.Data.SetPlaceHolder("text file (pretrain) or JSONL (SFT)")
	browse := widget.NewButton("Browse…", func() {
		dialog.ShowFileOpen(func(r fyne.URIReadCloser, err error) {
			if err == nil && r != nil {
				p.Data.SetText(r.URI().Path())
				r.Close()
			}
		}, u.Win)
	})
	p.Name = widget.NewEntry()
	p.Name.SetPlaceHolder("run folder name (default: mode and time)")
	p.PEFT = widget.NewSelect(peftMethods, nil)
	p.PEFT.SetSelected("lora")
	p.Quant = widget.NewSelect(quantChoices, nil)
	p.Quant.SetSelected("none")
	p.Rank, p.Alpha = numEntry("8"), numEntry("16")
	p.Steps, p.Batch, p.Ctx, p.LR, p.Eval = numEntry("200"), numEntry("8"), numEntry("128"), numEntry("1e-3"), numEntry("0")
	p.Ckpt = widget.NewCheck("checkpoint activations (about 1/2 the memory, 1/3 more time)", nil)
	p.Extra = widget.NewEntry()
	p.Extra.SetPlaceHolder("more flags, as on the command line (e.g. --warmup 10 --schedule linear)")
	p.Start = widget.NewButton("Start", p.start)
	p.Start.Importance = widget.HighImportance
	p.Error = widget.NewLabel("")
	p.Error.Importance = widget.DangerImportance
	p.Error.Wrapping = fyne.TextWrapWord
	p.Panel = newJobPanel(u)
	p.Panel.OnDone = func(code int, msg string) {
		u.Runs.Refresh()
		if code != 0 {
			u.showError(errors.New(msg))
		}
	}
	p.initIt = &widget.FormItem{Text: "Or a new model", Widget: p.Init, HintText: "pretrain only: random weights of a preset, byte-level tokenizer"}
	p.peftIt = []*widget.FormItem{
		{Text: "PEFT method", Widget: p.PEFT, HintText: "low-rank (lora, dora), bottleneck (adapter), virtual tokens, scales"},
		{Text: "LoRA rank / alpha", Widget: container.NewGridWithColumns(2, p.Rank, p.Alpha), HintText: "rank r of the update; alpha/r scales it"},
		{Text: "Quantized base", Widget: p.Quant, HintText: "bf16, int8 or nf4: the frozen base in 1/2, 1/4 or 1/8 of f32 (QLoRA)"},
	}
	p.form = widget.NewForm(
		&widget.FormItem{Text: "Model", Widget: p.Model, HintText: "a model folder or demo (set by the Models page)"},
		p.initIt,
		&widget.FormItem{Text: "Data", Widget: container.NewBorder(nil, nil, nil, browse, p.Data), HintText: "the Data page previews it as the model sees it"},
		&widget.FormItem{Text: "Run name", Widget: p.Name, HintText: "a folder in the runs folder: run.json, checkpoints/, final/"},
	)
	for _, it := range p.peftIt {
		p.form.AppendItem(it)
	}
	p.form.AppendItem(&widget.FormItem{Text: "Steps / batch / context", Widget: container.NewGridWithColumns(3, p.Steps, p.Batch, p.Ctx), HintText: "optimizer steps, sequences per step, tokens per sequence"})
	p.form.AppendItem(&widget.FormItem{Text: "Learning rate / eval every", Widget: container.NewGridWithColumns(2, p.LR, p.Eval), HintText: "peak rate (cosine, 5% warmup); held-out loss every N steps"})
	p.form.AppendItem(&widget.FormItem{Text: "Memory", Widget: p.Ckpt})
	p.form.AppendItem(&widget.FormItem{Text: "More flags", Widget: p.Extra})
	p.Mode.SetSelected(modeSFT)
	split := container.NewHSplit(container.NewVScroll(container.NewVBox(p.Mode, p.form, container.NewHBox(p.Start), p.Error)), p.Panel.view)
	split.Offset = 0.56
	p.view = split
	return p
}

func numEntry(v string) *widget.Entry {
	e := widget.NewEntry()
	e.SetText(v)
	return e
}

// modeChanged swaps the defaults and the fields that apply.
func (p *TrainPage) modeChanged() {
	sft := p.Mode.Selected == modeSFT
	if sft {
		p.LR.SetText("2e-3")
		p.Steps.SetText("100")
		p.Init.SetSelected(noInit)
		p.Init.Disable()
		p.PEFT.Enable()
		p.Rank.Enable()
		p.Alpha.Enable()
	} else {
		p.LR.SetText("1e-3")
		p.Steps.SetText("200")
		p.Init.Enable()
		p.PEFT.Disable()
		p.Rank.Disable()
		p.Alpha.Disable()
	}
	if p.form != nil {
		p.form.Refresh()
	}
}

// Args validates the form and returns the command line and its steps.
func (p *TrainPage) Args() ([]string, int, error) {
	sft := p.Mode.Selected == modeSFT
	cmd := "pretrain"
	if sft {
		cmd = "sft"
	}
	args := []string{cmd}
	modelArg := strings.TrimSpace(p.Model.Text)
	if !sft && p.Init.Selected != noInit && p.Init.Selected != "" {
		args = append(args, "--init", p.Init.Selected)
	} else {
		if modelArg == "" {
			return nil, 0, errors.New("Model: give a model folder or demo (or, to pretrain, a preset)")
		}
		args = append(args, "--model", modelArg)
	}
	dataPath := strings.TrimSpace(p.Data.Text)
	if dataPath == "" {
		return nil, 0, errors.New("Data: choose a data file")
	}
	if _, err := os.Stat(dataPath); err != nil {
		return nil, 0, fmt.Errorf("Data: %w", err)
	}
	args = append(args, "--data", dataPath)
	name := strings.TrimSpace(p.Name.Text)
	if name == "" {
		name = cmd + "-" + time.Now().Format("20060102-150405")
		p.Name.SetText(name)
	}
	if strings.ContainsAny(name, `/\`) && !filepath.IsAbs(name) {
		return nil, 0, fmt.Errorf("Run name %q: a name, not a path", name)
	}
	out := name
	if !filepath.IsAbs(name) {
		out = p.u.runDir(name)
	}
	steps, err := posInt("Steps", p.Steps.Text)
	if err != nil {
		return nil, 0, err
	}
	batch, err := posInt("Batch", p.Batch.Text)
	if err != nil {
		return nil, 0, err
	}
	ctx, err := posInt("Context", p.Ctx.Text)
	if err != nil {
		return nil, 0, err
	}
	lr, err := posFloat("Learning rate", p.LR.Text)
	if err != nil {
		return nil, 0, err
	}
	evalEvery, err := strconv.Atoi(strings.TrimSpace(p.Eval.Text))
	if err != nil || evalEvery < 0 {
		return nil, 0, fmt.Errorf("Eval every: %q is not a whole number of steps", p.Eval.Text)
	}
	args = append(args, "--out", out, "--steps", strconv.Itoa(steps), "--batch", strconv.Itoa(batch),
		"--ctx", strconv.Itoa(ctx), "--lr", fmtFloat(lr), "--eval-every", strconv.Itoa(evalEvery))
	if sft {
		args = append(args, "--peft", p.PEFT.Selected)
		if q := p.Quant.Selected; q != "" && q != "none" {
			if p.PEFT.Selected == "none" {
				return nil, 0, errors.New("Quantized base: a full fine-tune trains the weights themselves; choose a PEFT method")
			}
			args = append(args, "--quant", q)
		}
		if p.PEFT.Selected == "lora" || p.PEFT.Selected == "dora" {
			rank, err := posInt("LoRA rank", p.Rank.Text)
			if err != nil {
				return nil, 0, err
			}
			alpha, err := posFloat("LoRA alpha", p.Alpha.Text)
			if err != nil {
				return nil, 0, err
			}
			args = append(args, "--rank", strconv.Itoa(rank), "--alpha", fmtFloat(alpha))
		}
	}
	if p.Ckpt.Checked {
		args = append(args, "--checkpoint-activations")
	}
	args = append(args, p.u.deviceArgs()...)
	args = append(args, strings.Fields(p.Extra.Text)...)
	return args, steps, nil
}

func (p *TrainPage) start() {
	args, steps, err := p.Args()
	if err != nil {
		p.Error.SetText(err.Error())
		return
	}
	p.Error.SetText("")
	if err := p.Panel.Start(args, steps); err != nil {
		p.Error.SetText(err.Error())
		p.u.showError(err)
	}
}

func posInt(what, s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s: %q is not a positive whole number", what, s)
	}
	return n, nil
}

func posFloat(what, s string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("%s: %q is not a positive number", what, s)
	}
	return f, nil
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
