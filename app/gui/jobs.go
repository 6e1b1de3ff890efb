package gui

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
)

// Runner runs one llmlab command line (without the program name) and
// returns its exit code: cli.Run in the app, so a job from the GUI is the
// very same code path as the command typed in a terminal.
type Runner func(ctx context.Context, args []string, stdout, stderr io.Writer) int

// Event is one JSON line a training command prints with --json: the
// train.Event fields the GUI shows, plus GRPO's per-step reward (GRPO
// prints its own step objects, without an "event" key).
type Event struct {
	Kind         string   `json:"event"`
	Step         int      `json:"step"`
	Steps        int      `json:"steps"`
	Loss         float64  `json:"loss"`
	EvalLoss     float64  `json:"eval_loss"`
	LR           float64  `json:"lr"`
	TokensPerSec float64  `json:"tokens_per_s"`
	ETA          float64  `json:"eta_s"`
	Elapsed      float64  `json:"elapsed_s"`
	Message      string   `json:"message"`
	Path         string   `json:"path"`
	Reward       *float64 `json:"reward"`
}

// parseEvent reads a line as an event. GRPO's step lines have no "event"
// key but a step number: they count as steps.
func parseEvent(line string) (Event, bool) {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "{") {
		return Event{}, false
	}
	var ev Event
	if err := json.Unmarshal([]byte(line), &ev); err != nil {
		return Event{}, false
	}
	if ev.Kind == "" {
		if ev.Step == 0 {
			return Event{}, false
		}
		ev.Kind = "step"
	}
	return ev, true
}

// JobHooks receive what a job prints, on the job's goroutine: the caller
// moves it to the UI with fyne.Do.
type JobHooks struct {
	Event func(Event)
	Log   func(line string)
	// Done gets the exit code and, for a failure, the CLI's error
	// sentence (its last "llmlab ..." line on stderr).
	Done func(code int, errMsg string)
}

// Job is one command running in a goroutine. Stop cancels its context:
// training commands write a checkpoint and return.
type Job struct {
	Args   []string
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	code   int
	errMsg string
}

// StartJob runs args through run in a goroutine.
func StartJob(parent context.Context, run Runner, args []string, h JobHooks) *Job {
	ctx, cancel := context.WithCancel(parent)
	j := &Job{Args: args, cancel: cancel, done: make(chan struct{})}
	var lastErr string
	var errMu sync.Mutex
	stdout := &lineWriter{fn: func(s string) {
		if ev, ok := parseEvent(s); ok {
			if h.Event != nil {
				h.Event(ev)
			}
			return
		}
		if h.Log != nil && strings.TrimSpace(s) != "" {
			h.Log(s)
		}
	}}
	stderr := &lineWriter{fn: func(s string) {
		if strings.TrimSpace(s) == "" {
			return
		}
		if strings.HasPrefix(s, "llmlab ") {
			errMu.Lock()
			lastErr = s
			errMu.Unlock()
		}
		if h.Log != nil {
			h.Log(s)
		}
	}}
	go func() {
		defer close(j.done)
		defer cancel()
		code := run(ctx, args, stdout, stderr)
		stdout.flush()
		stderr.flush()
		errMu.Lock()
		msg := lastErr
		errMu.Unlock()
		if code != 0 && msg == "" {
			msg = "llmlab " + strings.Join(args, " ") + ": failed"
		}
		if code == 0 {
			msg = ""
		}
		j.mu.Lock()
		j.code, j.errMsg = code, msg
		j.mu.Unlock()
		if h.Done != nil {
			h.Done(code, msg)
		}
	}()
	return j
}

// Stop asks the job to stop; it returns at once.
func (j *Job) Stop() { j.cancel() }

// Wait blocks until the job has returned and gives its exit code.
func (j *Job) Wait() int {
	<-j.done
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.code
}

// Running reports whether the job has not returned yet.
func (j *Job) Running() bool {
	select {
	case <-j.done:
		return false
	default:
		return true
	}
}

// Done is closed when the job has returned.
func (j *Job) Done() <-chan struct{} { return j.done }

// lineWriter calls fn for every complete line written to it.
type lineWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
	fn  func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		i := bytes.IndexByte(w.buf.Bytes(), '\n')
		if i < 0 {
			break
		}
		line := string(w.buf.Next(i + 1))
		w.fn(strings.TrimRight(line, "\r\n"))
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Len() > 0 {
		w.fn(w.buf.String())
		w.buf.Reset()
	}
}
