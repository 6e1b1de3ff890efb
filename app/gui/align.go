package gui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"
)

// AlignPage builds the alignment commands: a reward model, the DPO family,
// KTO and GRPO. PPO and RLAIF are listed as placeholders until their
// commands exist.
type AlignPage struct {
	u       *UI
	Method  *widget.Select
	Loss    *widget.Select
	Model   *widget.Entry
	Adapter *widget.Entry
	Data    *widget.Entry
	Name    *widget.Entry
	Beta    *widget.Entry
	Steps   *widget.Entry
	Batch   *widget.Entry
	LR      *widget.Entry
	Group   *widget.Entry
	Extra   *widget.Entry
	Reward  *widget.Entry // PPO's reward source, RLAIF's judge
	Help    *widget.Label
	Start   *widget.Button
	Demo    *widget.Button // the align demo: every method on the demo model, side by side
	Error   *widget.Label
	Panel   *JobPanel
	form    *widget.Form
	view    fyne.CanvasObject

	methods []alignMethod
}

// alignMethod is one entry of the method list.
type alignMethod struct {
	label, cmd, help, data string
	// missing marks a placeholder: the command is not in this build.
	missing bool
}

// alignMethods lists the methods; PPO or RLAIF, when this build lacks the
// command (has reports whether one exists), stays listed, disabled.
func alignMethods(has func(string) bool) []alignMethod {
	ms := []alignMethod{
		{label: "Reward model", cmd: "rm", help: "a scalar head trained on preference pairs (Bradley–Terry); llmlab score checks it", data: "prefs"},
		{label: "DPO family", cmd: "dpo", help: "direct preference optimisation against the frozen reference; the loss list has IPO, hinge, robust, and the reference-free SimPO and ORPO", data: "prefs"},
		{label: "KTO", cmd: "kto", help: "unpaired desirable/undesirable examples ({\"prompt\",\"completion\",\"label\"})", data: "kto"},
		{label: "GRPO", cmd: "grpo", help: "group-relative policy optimisation: samples a group per prompt and rewards verifiable answers (a LoRA adapter)", data: "instruct"},
		{label: "PPO", cmd: "ppo", help: "PPO with a value head and a KL leash to the reference; the reward is a reward-model folder (llmlab rm), an http(s) endpoint, or a rule such as exact, number or regex:PATTERN", data: "instruct"},
		{label: "RLAIF", cmd: "rlaif", help: "samples two answers per prompt and asks a judge (a model folder, demo, or an OpenAI-compatible URL) which is better, in both orders; writes preference pairs for rm, dpo and kto", data: "instruct"},
	}
	for i, m := range ms {
		if (m.cmd == "ppo" || m.cmd == "rlaif") && !has(m.cmd) {
			ms[i].label += " (not in this build)"
			ms[i].missing = true
			ms[i].help = "llmlab " + m.cmd + " is not in this build"
		}
	}
	return ms
}

// hasCommand reports whether the CLI knows cmd: its -h exits 0, an
// unknown command exits 2.
func hasCommand(run Runner, cmd string) bool {
	return run(context.Background(), []string{cmd, "-h"}, io.Discard, io.Discard) == 0
}

func newAlignPage(u *UI) *AlignPage {
	p := &AlignPage{u: u}
	p.methods = alignMethods(func(c string) bool { return hasCommand(u.run, c) })
	labels := make([]string, len(p.methods))
	for i, m := range p.methods {
		labels[i] = m.label
	}
	p.Help = widget.NewLabel("")
	p.Help.Wrapping = fyne.TextWrapWord
	p.Loss = widget.NewSelect([]string{"sigmoid", "ipo", "hinge", "robust", "simpo", "orpo"}, nil)
	p.Loss.SetSelected("sigmoid")
	p.Model = widget.NewEntry()
	p.Model.SetText("demo")
	p.Adapter = widget.NewEntry()
	p.Adapter.SetPlaceHolder("GRPO: start from this adapter (e.g. an SFT run's final folder); empty: a new LoRA")
	p.Data = widget.NewEntry()
	browse := widget.NewButton("Browse…", func() {
		dialog.ShowFileOpen(func(r fyne.URIReadCloser, err error) {
			if err == nil && r != nil {
				p.Data.SetText(r.URI().Path())
				r.Close()
			}
		}, u.Win)
	})
	p.Name = widget.NewEntry()
	p.Name.SetPlaceHolder("run folder name (default: method and time)")
	p.Beta, p.Steps, p.Batch, p.LR, p.Group = numEntry("0.1"), numEntry("100"), numEntry("4"), numEntry("5e-4"), numEntry("8")
	p.Extra = widget.NewEntry()
	p.Extra.SetPlaceHolder("more flags, as on the command line (e.g. --label-smoothing 0.1)")
	p.Reward = widget.NewEntry()
	p.Reward.SetPlaceHolder("PPO: reward-model folder, URL or rule (exact); RLAIF: judge folder, demo or URL")
	p.Start = widget.NewButton("Start", p.start)
	p.Start.Importance = widget.HighImportance
	p.Demo = widget.NewButton("Run the align demo", p.startDemo)
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
	p.Method = widget.NewSelect(labels, func(string) { p.methodChanged() })
	p.form = widget.NewForm(
		&widget.FormItem{Text: "Method", Widget: p.Method},
		&widget.FormItem{Text: "", Widget: p.Help},
		&widget.FormItem{Text: "DPO loss", Widget: p.Loss, HintText: "sigmoid is DPO; cDPO: sigmoid with --label-smoothing"},
		&widget.FormItem{Text: "Model", Widget: p.Model, HintText: "usually the SFT model: a folder or demo"},
		&widget.FormItem{Text: "Adapter", Widget: p.Adapter},
		&widget.FormItem{Text: "Reward / judge", Widget: p.Reward, HintText: "PPO's reward and RLAIF's judge"},
		&widget.FormItem{Text: "Data", Widget: container.NewBorder(nil, nil, nil, browse, p.Data), HintText: "the Data page makes demo preference and instruction files"},
		&widget.FormItem{Text: "Run name", Widget: p.Name},
		&widget.FormItem{Text: "β / steps / batch", Widget: container.NewGridWithColumns(3, p.Beta, p.Steps, p.Batch), HintText: "β: leash to the reference; batch: pairs (GRPO: prompts) per step"},
		&widget.FormItem{Text: "Learning rate / group", Widget: container.NewGridWithColumns(2, p.LR, p.Group), HintText: "group: GRPO's samples per prompt"},
		&widget.FormItem{Text: "More flags", Widget: p.Extra},
	)
	p.Method.SetSelected(labels[1])
	split := container.NewHSplit(container.NewVScroll(container.NewVBox(p.form, container.NewHBox(p.Start, p.Demo), p.Error)), p.Panel.view)
	split.Offset = 0.56
	p.view = split
	return p
}

func (p *AlignPage) method() alignMethod {
	i := p.Method.SelectedIndex()
	if i < 0 {
		return p.methods[0]
	}
	return p.methods[i]
}

func (p *AlignPage) methodChanged() {
	m := p.method()
	p.Help.SetText(m.help)
	if m.missing {
		p.Start.Disable()
	} else {
		p.Start.Enable()
	}
	if m.cmd == "dpo" {
		p.Loss.Enable()
	} else {
		p.Loss.Disable()
	}
	if m.cmd == "ppo" || m.cmd == "rlaif" {
		p.Reward.Enable()
		if p.Reward.Text == "" {
			p.Reward.SetText(map[string]string{"ppo": "exact", "rlaif": "demo"}[m.cmd])
		}
	} else {
		p.Reward.Disable()
	}
	if m.cmd == "grpo" || m.cmd == "ppo" || m.cmd == "rlaif" {
		p.Adapter.Enable()
		p.Group.Enable()
		p.Beta.SetText("0.04")
		p.Steps.SetText("30")
	} else {
		p.Adapter.Disable()
		p.Group.Disable()
		p.Beta.SetText("0.1")
		p.Steps.SetText("100")
	}
	if m.data != "" && p.Data.Text == "" || p.Data.Text == p.demoData("prefs") || p.Data.Text == p.demoData("kto") || p.Data.Text == p.demoData("instruct") {
		if f := p.demoData(m.data); f != "" {
			if _, err := os.Stat(f); err == nil {
				p.Data.SetText(f)
			}
		}
	}
}

// demoData is where the Data page writes the demo file of kind.
func (p *AlignPage) demoData(kind string) string {
	switch kind {
	case "prefs":
		return filepath.Join(p.u.RunsDir, "data", "prefs_train.jsonl")
	case "kto":
		return filepath.Join(p.u.RunsDir, "data", "kto_train.jsonl")
	case "instruct":
		return filepath.Join(p.u.RunsDir, "data", "instruct_train.jsonl")
	}
	return ""
}

// Args validates the form and returns the command line and its steps.
func (p *AlignPage) Args() ([]string, int, error) {
	m := p.method()
	if m.missing {
		return nil, 0, errors.New(m.help)
	}
	modelArg := strings.TrimSpace(p.Model.Text)
	if modelArg == "" {
		return nil, 0, errors.New("Model: give a model folder or demo")
	}
	dataPath := strings.TrimSpace(p.Data.Text)
	if dataPath == "" {
		return nil, 0, errors.New("Data: choose a data file")
	}
	if _, err := os.Stat(dataPath); err != nil {
		return nil, 0, fmt.Errorf("Data: %w", err)
	}
	name := strings.TrimSpace(p.Name.Text)
	if name == "" {
		name = m.cmd + "-" + time.Now().Format("20060102-150405")
		p.Name.SetText(name)
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
	lr, err := posFloat("Learning rate", p.LR.Text)
	if err != nil {
		return nil, 0, err
	}
	args := []string{m.cmd, "--model", modelArg, "--data", dataPath, "--out", out, "--steps", strconv.Itoa(steps), "--lr", fmtFloat(lr)}
	reward := strings.TrimSpace(p.Reward.Text)
	if (m.cmd == "ppo" || m.cmd == "rlaif") && reward == "" {
		return nil, 0, errors.New("Reward / judge: give " + map[string]string{"ppo": "a reward model, a URL or a rule", "rlaif": "a judge model folder, demo or a URL"}[m.cmd])
	}
	switch m.cmd {
	case "ppo":
		beta, err := posFloat("β", p.Beta.Text)
		if err != nil {
			return nil, 0, err
		}
		args = []string{"ppo", "--model", modelArg, "--data", dataPath, "--out", out, "--iterations", strconv.Itoa(steps),
			"--lr", fmtFloat(lr), "--prompts", strconv.Itoa(batch), "--kl-coef", fmtFloat(beta)}
		switch {
		case strings.HasPrefix(reward, "http://") || strings.HasPrefix(reward, "https://"):
			args = append(args, "--reward-url", reward)
		case isDir(reward):
			args = append(args, "--reward-model", reward)
		default:
			args = append(args, "--reward", reward)
		}
		if a := strings.TrimSpace(p.Adapter.Text); a != "" {
			args = append(args, "--adapter", a)
		}
	case "rlaif":
		// Preference pairs, not a training run: OUT/prefs.jsonl, with
		// --steps prompts at most.
		if err := os.MkdirAll(out, 0o755); err != nil {
			return nil, 0, err
		}
		args = []string{"rlaif", "--model", modelArg, "--prompts", dataPath, "--judge", reward,
			"--out", filepath.Join(out, "prefs.jsonl"), "--limit", strconv.Itoa(steps), "--batch", strconv.Itoa(batch)}
		if a := strings.TrimSpace(p.Adapter.Text); a != "" {
			args = append(args, "--adapter", a)
		}
	case "grpo":
		group, err := posInt("Group", p.Group.Text)
		if err != nil {
			return nil, 0, err
		}
		beta, err := posFloat("β", p.Beta.Text)
		if err != nil {
			return nil, 0, err
		}
		args = append(args, "--prompts", strconv.Itoa(batch), "--group", strconv.Itoa(group), "--beta", fmtFloat(beta))
		if a := strings.TrimSpace(p.Adapter.Text); a != "" {
			args = append(args, "--adapter", a)
		}
	case "rm":
		args = append(args, "--batch", strconv.Itoa(batch))
	default: // dpo, kto
		beta, err := posFloat("β", p.Beta.Text)
		if err != nil {
			return nil, 0, err
		}
		args = append(args, "--batch", strconv.Itoa(batch), "--beta", fmtFloat(beta))
		if m.cmd == "dpo" {
			args = append(args, "--loss", p.Loss.Selected)
		}
	}
	args = append(args, p.u.deviceArgs()...)
	args = append(args, strings.Fields(p.Extra.Text)...)
	return args, steps, nil
}

func (p *AlignPage) start() {
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

// DemoArgs is the align demo's command line: llmlab demo --align into a
// new run folder (about 9 minutes on 2 cores; its summary.md holds the
// table of every method against the SFT policy).
func (p *AlignPage) DemoArgs() []string {
	out := p.u.runDir("align-demo-" + time.Now().Format("20060102-150405"))
	return append([]string{"demo", "--align", "--out", out}, p.u.deviceArgs()...)
}

func (p *AlignPage) startDemo() {
	p.Error.SetText("")
	if err := p.Panel.Start(p.DemoArgs(), 0); err != nil {
		p.Error.SetText(err.Error())
		p.u.showError(err)
	}
}

func isDir(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}
