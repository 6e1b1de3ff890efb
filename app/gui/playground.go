package gui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"llmlab/app/cli"
	"llmlab/core/chat"
	"llmlab/core/data"
	"llmlab/core/generate"
)

// PlaygroundPage chats with a model in-process: the model and adapter are
// loaded as `llmlab chat` loads them (cli.LoadModel), replies stream from
// core/generate token by token, and with a LoRA adapter the same prompt
// can go to the base (adapter off) and the tuned model side by side.
type PlaygroundPage struct {
	u           *UI
	Model       *widget.Entry
	Adapter     *widget.Select
	Load        *widget.Button
	Status      *widget.Label
	System      *widget.Entry
	Temperature *widget.Slider
	TopK        *widget.Entry
	TopP        *widget.Slider
	MaxTokens   *widget.Entry
	Compare     *widget.Check
	Prompt      *widget.Entry
	Send        *widget.Button
	Stop        *widget.Button
	Reset       *widget.Button
	Speed       *widget.Label
	Serve       *widget.Button // llmlab serve for the chosen model and adapter
	Addr        *widget.Entry
	ServeInfo   *widget.Label
	Tuned, Base *widget.Label
	Error       *widget.Label
	baseCol     fyne.CanvasObject
	tunedTitle  *widget.Label
	view        fyne.CanvasObject

	adapters map[string]string // adapter list label -> --adapter value

	mu      sync.Mutex
	m       *cli.Model
	retired *cli.Model // replaced while a reply was being written: closed when it ends
	cancel  context.CancelFunc
	busy    bool
	hist    [2][]chat.Message // tuned (or only), base
	shown   [2]string         // transcript text
	pending bool
	pieces  int // text pieces streamed so far (tests check a reply streams)

	stopServe context.CancelFunc // non-nil while the server runs
	served    chan int           // its exit code
}

const noAdapter = "none"

func newPlaygroundPage(u *UI) *PlaygroundPage {
	p := &PlaygroundPage{u: u}
	p.Model = widget.NewEntry()
	p.Model.SetText("demo")
	p.Adapter = widget.NewSelect([]string{noAdapter}, nil)
	p.Adapter.SetSelected(noAdapter)
	p.Load = widget.NewButton("Load", func() { p.LoadModel(nil) })
	p.Status = widget.NewLabel("no model loaded")
	p.System = widget.NewEntry()
	p.System.SetPlaceHolder("system prompt (optional)")
	tempLabel := widget.NewLabel("0.70")
	p.Temperature = widget.NewSlider(0, 2)
	p.Temperature.Step = 0.05
	p.Temperature.OnChanged = func(v float64) { tempLabel.SetText(fmt.Sprintf("%.2f", v)) }
	p.Temperature.SetValue(0.7)
	topPLabel := widget.NewLabel("0.95")
	p.TopP = widget.NewSlider(0.05, 1)
	p.TopP.Step = 0.05
	p.TopP.OnChanged = func(v float64) { topPLabel.SetText(fmt.Sprintf("%.2f", v)) }
	p.TopP.SetValue(0.95)
	p.TopK, p.MaxTokens = numEntry("40"), numEntry("96")
	p.Compare = widget.NewCheck("side by side: base and tuned", func(on bool) { p.layoutColumns() })
	p.Prompt = widget.NewEntry()
	p.Prompt.SetPlaceHolder("your message")
	p.Prompt.OnSubmitted = func(string) { p.sendPrompt() }
	p.Send = widget.NewButton("Send", p.sendPrompt)
	p.Send.Importance = widget.HighImportance
	p.Stop = widget.NewButton("Stop", func() {
		p.mu.Lock()
		if p.cancel != nil {
			p.cancel()
		}
		p.mu.Unlock()
	})
	p.Stop.Disable()
	p.Reset = widget.NewButton("Reset", p.resetChat)
	p.Speed = widget.NewLabel("")
	p.Error = widget.NewLabel("")
	p.Error.Importance = widget.DangerImportance
	p.Error.Wrapping = fyne.TextWrapWord
	p.Tuned, p.Base = widget.NewLabel(""), widget.NewLabel("")
	for _, l := range []*widget.Label{p.Tuned, p.Base} {
		l.Wrapping = fyne.TextWrapWord
	}
	p.tunedTitle = widget.NewLabelWithStyle("model", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	p.baseCol = container.NewBorder(widget.NewLabelWithStyle("base (adapter off)", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}), nil, nil, nil, container.NewVScroll(p.Base))
	tunedCol := container.NewBorder(p.tunedTitle, nil, nil, nil, container.NewVScroll(p.Tuned))
	cols := container.NewGridWithColumns(2, tunedCol, p.baseCol)
	p.baseCol.Hide()

	controls := widget.NewForm(
		&widget.FormItem{Text: "Model", Widget: container.NewBorder(nil, nil, nil, container.NewHBox(widget.NewLabel("adapter"), p.Adapter, p.Load), p.Model), HintText: "a folder or demo; the adapter list shows the adapters in the runs folder"},
		&widget.FormItem{Text: "System", Widget: p.System},
		&widget.FormItem{Text: "Temperature / top-p", Widget: container.NewGridWithColumns(2,
			container.NewBorder(nil, nil, nil, tempLabel, p.Temperature), container.NewBorder(nil, nil, nil, topPLabel, p.TopP)),
			HintText: "0: greedy; lower is steadier"},
		&widget.FormItem{Text: "Top-k / max tokens", Widget: container.NewGridWithColumns(2, p.TopK, p.MaxTokens)},
	)
	p.Addr = widget.NewEntry()
	p.Addr.SetText("127.0.0.1:8080")
	p.ServeInfo = widget.NewLabel("")
	p.Serve = widget.NewButton("Serve (OpenAI API)", func() { p.ToggleServe(nil) })
	top := container.NewVBox(controls, container.NewHBox(p.Compare, p.Status), container.NewHBox(p.Serve, p.Addr, p.ServeInfo), p.Error)
	bottom := container.NewVBox(
		container.NewBorder(nil, nil, nil, container.NewHBox(p.Send, p.Stop, p.Reset), p.Prompt),
		p.Speed)
	p.view = container.NewBorder(top, bottom, nil, nil, cols)
	p.refreshAdapters()
	return p
}

// refreshAdapters lists "none", the demo adapter and every adapter
// folder in the runs folder (a run's final/ or adapter/ with an
// adapter_config.json).
func (p *PlaygroundPage) refreshAdapters() {
	p.adapters = map[string]string{noAdapter: "", "demo adapter": "demo"}
	var found []string
	for _, pat := range []string{"*/final/adapter_config.json", "*/adapter/adapter_config.json"} {
		ms, _ := filepath.Glob(filepath.Join(p.u.RunsDir, pat))
		for _, m := range ms {
			dir := filepath.Dir(m)
			label := strings.TrimPrefix(dir, p.u.RunsDir+string(filepath.Separator))
			p.adapters[label] = dir
			found = append(found, label)
		}
	}
	sort.Strings(found)
	sel := p.Adapter.Selected
	p.Adapter.SetOptions(append([]string{noAdapter, "demo adapter"}, found...))
	if _, ok := p.adapters[sel]; ok {
		p.Adapter.SetSelected(sel)
	} else {
		p.Adapter.SetSelected(noAdapter)
	}
}

// LoadModel loads the chosen model and adapter in the background; done
// runs on the UI thread afterwards.
func (p *PlaygroundPage) LoadModel(done func(error)) {
	arg := strings.TrimSpace(p.Model.Text)
	finish := func(err error) {
		if done != nil {
			done(err)
		}
	}
	if arg == "" {
		p.Error.SetText("Model: give a model folder or demo")
		finish(errors.New("no model"))
		return
	}
	adapter := p.adapters[p.Adapter.Selected]
	p.Error.SetText("")
	p.Status.SetText("loading …")
	p.u.background(func() {
		m, err := cli.LoadModel(arg, adapter, p.u.Device, p.u.Threads)
		fyne.Do(func() {
			if err != nil {
				p.Error.SetText(err.Error())
				p.Status.SetText("no model loaded")
				finish(err)
				return
			}
			// The model replaced gives back its device, once no reply
			// is being written with it.
			p.mu.Lock()
			old := p.m
			p.m = m
			if old != nil && p.busy {
				p.retired, old = old, nil
			}
			p.mu.Unlock()
			if old != nil {
				old.Close()
			}
			desc := fmt.Sprintf("%s (%s parameters, template %s)", arg, humanCount(int64(m.M.NumParams())), m.Template)
			if adapter != "" {
				desc += " + adapter " + adapter
			}
			p.Status.SetText(desc)
			p.tunedTitle.SetText(arg)
			if m.Adapter != nil {
				p.tunedTitle.SetText("tuned (adapter on)")
			}
			p.resetChat()
			finish(nil)
		})
	})
}

func (p *PlaygroundPage) layoutColumns() {
	if p.Compare.Checked {
		p.baseCol.Show()
	} else {
		p.baseCol.Hide()
	}
}

func (p *PlaygroundPage) resetChat() {
	p.mu.Lock()
	p.hist = [2][]chat.Message{}
	p.shown = [2]string{}
	p.mu.Unlock()
	p.Tuned.SetText("")
	p.Base.SetText("")
	p.Speed.SetText("")
}

func (p *PlaygroundPage) sendPrompt() {
	text := strings.TrimSpace(p.Prompt.Text)
	if text == "" {
		return
	}
	if err := p.SendText(text, nil); err != nil {
		p.Error.SetText(err.Error())
		return
	}
	p.Prompt.SetText("")
}

// SendText sends a user message; the reply streams into the transcript.
// done runs on the UI thread when the reply (or both) is complete.
func (p *PlaygroundPage) SendText(text string, done func(error)) error {
	p.mu.Lock()
	m, busy := p.m, p.busy
	p.mu.Unlock()
	if m == nil {
		return errors.New("load a model first")
	}
	if busy {
		return errors.New("a reply is still being written")
	}
	compare := p.Compare.Checked
	if compare && m.Adapter == nil {
		return errors.New("side by side needs a LoRA adapter: pick one and Load (the base is the model with the adapter off)")
	}
	s := generate.Sampling{Temperature: p.Temperature.Value, TopP: p.TopP.Value}
	var err error
	if s.TopK, err = strconv.Atoi(strings.TrimSpace(p.TopK.Text)); err != nil || s.TopK < 0 {
		return fmt.Errorf("Top-k: %q is not a whole number", p.TopK.Text)
	}
	maxTok, err := posInt("Max tokens", p.MaxTokens.Text)
	if err != nil {
		return err
	}
	if err := s.Validate(); err != nil {
		return err
	}
	system := strings.TrimSpace(p.System.Text)
	ctx, cancel := context.WithCancel(p.u.ctx)
	p.mu.Lock()
	p.busy, p.cancel = true, cancel
	p.mu.Unlock()
	p.Error.SetText("")
	p.Send.Disable()
	p.Stop.Enable()
	sides := []int{0}
	if compare {
		sides = []int{1, 0} // base first, then tuned, on the same model
	}
	p.u.background(func() {
		var err error
		var stats []string
		for _, side := range sides {
			var st string
			if st, err = p.reply(ctx, m, side, compare, system, text, s, maxTok); err != nil {
				break
			}
			stats = append(stats, st)
		}
		if m.Adapter != nil {
			m.Adapter.SetEnabled(true)
		}
		cancel()
		fyne.Do(func() {
			p.mu.Lock()
			p.busy, p.cancel = false, nil
			retired := p.retired
			p.retired = nil
			p.mu.Unlock()
			if retired != nil {
				retired.Close()
			}
			p.redraw()
			p.Send.Enable()
			p.Stop.Disable()
			if err != nil && !errors.Is(err, context.Canceled) {
				p.Error.SetText(err.Error())
			}
			if len(stats) > 0 {
				p.Speed.SetText(strings.Join(stats, "   ·   "))
			}
			if done != nil {
				done(err)
			}
		})
	})
	return nil
}

// reply generates one side's answer (0: tuned or the only model, 1: base
// with the adapter off), streaming it into the transcript.
func (p *PlaygroundPage) reply(ctx context.Context, m *cli.Model, side int, compare bool, system, text string, s generate.Sampling, maxTok int) (string, error) {
	if m.Adapter != nil {
		m.Adapter.SetEnabled(side == 0)
	}
	p.mu.Lock()
	if len(p.hist[side]) == 0 && system != "" {
		p.hist[side] = append(p.hist[side], chat.Message{Role: chat.RoleSystem, Content: system})
	}
	p.hist[side] = append(p.hist[side], chat.Message{Role: chat.RoleUser, Content: text})
	hist := append([]chat.Message(nil), p.hist[side]...)
	p.shown[side] += "you: " + text + "\nmodel: "
	p.mu.Unlock()
	p.schedule()
	undo := func() {
		p.mu.Lock()
		p.hist[side] = p.hist[side][:len(p.hist[side])-1]
		p.mu.Unlock()
	}
	ids, err := data.EncodeChatPrompt(m.Tok, m.Template, hist)
	if err != nil {
		undo()
		return "", err
	}
	if len(ids) >= m.M.Cfg.MaxPos-1 {
		undo()
		return "", fmt.Errorf("the conversation (%d tokens) no longer fits the context of %d: Reset to start over", len(ids), m.M.Cfg.MaxPos)
	}
	req := generate.Request{Prompts: [][]int32{ids}, MaxTokens: min(maxTok, m.M.Cfg.MaxPos-len(ids)), Sampling: s, Seed: uint64(time.Now().UnixNano())}
	req.StopIDs, req.StopStrings = m.Template.Stops(m.Tok)
	req.OnText = func(_ int, t string) bool {
		p.mu.Lock()
		p.shown[side] += t
		p.pieces++
		p.mu.Unlock()
		p.schedule()
		return ctx.Err() == nil
	}
	res, err := generate.New(m.M, m.Backend, m.Tok).Generate(ctx, req)
	p.mu.Lock()
	p.shown[side] += "\n\n"
	p.mu.Unlock()
	if err != nil {
		undo()
		return "", err
	}
	p.mu.Lock()
	p.hist[side] = append(p.hist[side], chat.Message{Role: chat.RoleAssistant, Content: strings.TrimSpace(res.Text[0])})
	p.mu.Unlock()
	who := "model"
	if compare {
		who = [2]string{"tuned", "base"}[side]
	}
	return fmt.Sprintf("%s: %d tokens, %.1f tokens/s", who, res.Tokens, res.TokensPerSecond()), nil
}

// schedule redraws the transcript soon (at most every refreshEvery/2).
func (p *PlaygroundPage) schedule() {
	p.mu.Lock()
	if p.pending {
		p.mu.Unlock()
		return
	}
	p.pending = true
	p.mu.Unlock()
	time.AfterFunc(refreshEvery/2, func() { fyne.Do(p.redraw) })
}

func (p *PlaygroundPage) redraw() {
	p.mu.Lock()
	t, b := p.shown[0], p.shown[1]
	p.pending = false
	p.mu.Unlock()
	p.Tuned.SetText(t)
	p.Base.SetText(b)
}

// Transcript returns the text shown for the tuned (or only) model.
func (p *PlaygroundPage) Transcript() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.shown[0]
}

// ToggleServe starts `llmlab serve` for the model and adapter chosen above
// on the address given, or stops the running server. started (may be nil)
// is called on the UI thread once the server is starting or has stopped.
func (p *PlaygroundPage) ToggleServe(started func(error)) {
	finish := func(err error) {
		if err != nil {
			p.Error.SetText(err.Error())
		}
		if started != nil {
			started(err)
		}
	}
	if p.stopServe != nil {
		p.stopServe()
		code := <-p.served
		p.stopServe, p.served = nil, nil
		p.Serve.SetText("Serve (OpenAI API)")
		p.ServeInfo.SetText(fmt.Sprintf("server stopped (exit %d)", code))
		finish(nil)
		return
	}
	model := strings.TrimSpace(p.Model.Text)
	addr := strings.TrimSpace(p.Addr.Text)
	if model == "" || addr == "" {
		finish(errors.New("Serve: give a model and an address"))
		return
	}
	args := []string{"serve", "--model", model, "--addr", addr}
	if a := p.adapters[p.Adapter.Selected]; a != "" {
		args = append(args, "--adapter", a)
	}
	ctx, cancel := context.WithCancel(p.u.ctx)
	p.stopServe, p.served = cancel, make(chan int, 1)
	var errb strings.Builder
	served := p.served
	go func() {
		code := p.u.run(ctx, args, io.Discard, &errb)
		served <- code
		if code != 0 && ctx.Err() == nil {
			fyne.Do(func() {
				p.Error.SetText(lastLine(errb.String(), "llmlab "))
				p.ServeInfo.SetText("")
				p.Serve.SetText("Serve (OpenAI API)")
				if p.served == served {
					p.stopServe, p.served = nil, nil
				}
			})
		}
	}()
	p.Serve.SetText("Stop server")
	p.ServeInfo.SetText("serving http://" + addr + "/v1 (chat/completions, completions, models)")
	finish(nil)
}
