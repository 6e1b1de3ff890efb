package gui

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"
)

// JobPanel shows one job: a progress bar with step, loss, tokens/s and
// ETA, a live loss chart (train and eval), the last log lines and a Stop
// button. Events arrive on the job's goroutine and are folded into a
// state under a lock; the widgets are redrawn from it through fyne.Do at
// most every refreshEvery, so a fast job does not flood the UI thread.
type JobPanel struct {
	u        *UI
	Progress *widget.ProgressBar
	Status   *widget.Label
	Chart    *LineChart
	Log      *widget.Label
	Stop     *widget.Button
	view     fyne.CanvasObject

	// OnDone, when set, runs on the UI thread after the job returns.
	OnDone func(code int, errMsg string)

	mu      sync.Mutex
	job     *Job
	st      jobState
	pending bool
}

type jobState struct {
	args                    []string
	step, steps             int
	loss, evalLoss, tps, lr float64
	reward                  *float64
	eta                     float64
	log                     []string
	running                 bool
	code                    int
	errMsg                  string
	finished                bool
}

const (
	refreshEvery = 150 * time.Millisecond
	logLines     = 8
)

func newJobPanel(u *UI) *JobPanel {
	p := &JobPanel{u: u, Progress: widget.NewProgressBar(), Status: widget.NewLabel("idle"), Chart: NewLineChart("train loss", "eval loss")}
	p.Status.Wrapping = fyne.TextWrapWord
	p.Log = widget.NewLabel("")
	p.Log.TextStyle = fyne.TextStyle{Monospace: true}
	p.Log.Wrapping = fyne.TextWrapBreak
	p.Stop = widget.NewButton("Stop", p.stop)
	p.Stop.Disable()
	top := container.NewBorder(nil, nil, nil, p.Stop, p.Progress)
	p.view = container.NewBorder(container.NewVBox(top, p.Status), nil, nil, nil,
		container.NewVSplit(p.Chart, container.NewVScroll(p.Log)))
	return p
}

// Start runs args (with --json added) as the UI's one job; steps is the
// step count for the bar until the job's start event gives its own.
func (p *JobPanel) Start(args []string, steps int) error {
	args = append(append([]string(nil), args...), "--json")
	p.mu.Lock()
	p.st = jobState{args: args, steps: steps, running: true}
	p.mu.Unlock()
	p.Chart.Clear()
	p.Chart.SetName(0, "train loss")
	p.view.Show()
	j, err := p.u.claim(func() *Job {
		return StartJob(p.u.ctx, p.u.run, args, JobHooks{Event: p.event, Log: p.logLine, Done: p.done})
	})
	if err != nil {
		p.mu.Lock()
		p.st.running = false
		p.mu.Unlock()
		return err
	}
	p.mu.Lock()
	p.job = j
	p.mu.Unlock()
	p.refresh()
	return nil
}

// Job returns the panel's last job.
func (p *JobPanel) Job() *Job {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.job
}

func (p *JobPanel) stop() {
	if j := p.Job(); j != nil {
		j.Stop()
		p.logLine("stopping: the command writes a checkpoint first")
	}
}

func (p *JobPanel) event(ev Event) {
	p.mu.Lock()
	switch ev.Kind {
	case "start":
		p.st.steps, p.st.step = ev.Steps, ev.Step
	case "step":
		p.st.step = ev.Step
		if ev.Steps > 0 {
			p.st.steps = ev.Steps
		}
		p.st.loss, p.st.lr, p.st.eta = ev.Loss, ev.LR, ev.ETA
		if ev.TokensPerSec > 0 {
			p.st.tps = ev.TokensPerSec
		}
		p.st.reward = ev.Reward
		if ev.Reward != nil { // GRPO: the mean reward is the curve to watch
			p.Chart.SetName(0, "reward")
			p.Chart.Add(0, float64(ev.Step), *ev.Reward)
		} else {
			p.Chart.Add(0, float64(ev.Step), ev.Loss)
		}
	case "eval":
		p.st.evalLoss = ev.EvalLoss
		p.Chart.Add(1, float64(ev.Step), ev.EvalLoss)
	case "stage": // a job of several commands (demo --align) finished one
		p.st.step, p.st.steps, p.st.eta = ev.Step, ev.Steps, ev.ETA
		p.appendLog(ev.Message)
	case "checkpoint":
		p.appendLog("checkpoint " + ev.Path)
	case "warning", "stopped", "done":
		if ev.Message != "" {
			p.appendLog(ev.Message)
		}
	}
	args := p.st.args
	p.mu.Unlock()
	if ev.Kind == "start" {
		saveCommand(args)
	}
	p.schedule()
}

func (p *JobPanel) logLine(s string) {
	p.mu.Lock()
	p.appendLog(s)
	p.mu.Unlock()
	p.schedule()
}

// appendLog keeps the last logLines lines; p.mu is held.
func (p *JobPanel) appendLog(s string) {
	p.st.log = append(p.st.log, s)
	if n := len(p.st.log); n > logLines {
		p.st.log = append(p.st.log[:0], p.st.log[n-logLines:]...)
	}
}

func (p *JobPanel) done(code int, errMsg string) {
	p.mu.Lock()
	p.st.running, p.st.code, p.st.errMsg, p.st.finished = false, code, errMsg, true
	args := p.st.args
	p.mu.Unlock()
	saveCommand(args)
	fyne.Do(func() {
		p.refresh()
		if p.OnDone != nil {
			p.OnDone(code, errMsg)
		}
	})
}

// schedule asks for one redraw soon, unless one is already due.
func (p *JobPanel) schedule() {
	p.mu.Lock()
	if p.pending {
		p.mu.Unlock()
		return
	}
	p.pending = true
	p.mu.Unlock()
	time.AfterFunc(refreshEvery, func() { fyne.Do(p.refresh) })
}

// refresh redraws the widgets from the state (UI thread).
func (p *JobPanel) refresh() {
	p.mu.Lock()
	st := p.st
	st.log = append([]string(nil), p.st.log...)
	p.pending = false
	p.mu.Unlock()
	if st.steps > 0 {
		p.Progress.SetValue(float64(st.step) / float64(st.steps))
	}
	p.Status.SetText(st.status())
	p.Log.SetText(strings.Join(st.log, "\n"))
	p.Chart.Refresh()
	if st.running {
		p.Stop.Enable()
	} else {
		p.Stop.Disable()
	}
}

// State returns step, steps and whether the job still runs (for tests).
func (p *JobPanel) State() (step, steps int, running bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st.step, p.st.steps, p.st.running
}

func (st jobState) status() string {
	if len(st.args) == 0 {
		return "idle"
	}
	var b strings.Builder
	switch {
	case st.running:
		fmt.Fprintf(&b, "running llmlab %s", st.args[0])
	case st.code == 0:
		fmt.Fprintf(&b, "done: llmlab %s", st.args[0])
	default:
		fmt.Fprintf(&b, "failed (exit %d): %s", st.code, st.errMsg)
		return b.String()
	}
	if st.steps > 0 {
		fmt.Fprintf(&b, "  ·  step %d/%d", st.step, st.steps)
	}
	if st.reward != nil {
		fmt.Fprintf(&b, "  ·  reward %.3f", *st.reward)
	} else if st.loss != 0 {
		fmt.Fprintf(&b, "  ·  loss %.4f", st.loss)
	}
	if st.evalLoss != 0 {
		fmt.Fprintf(&b, "  ·  eval %.4f", st.evalLoss)
	}
	if st.tps > 0 {
		fmt.Fprintf(&b, "  ·  %.0f tok/s", st.tps)
	}
	if st.running && st.eta > 0 {
		fmt.Fprintf(&b, "  ·  ETA %s", (time.Duration(st.eta * float64(time.Second))).Round(time.Second))
	}
	return b.String()
}
