package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"llmlab/core/train"
)

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// reporter shows training events: a progress bar with loss, tokens/s and
// ETA on a terminal, plain lines otherwise, JSON lines with --json; and
// appends every event to metrics.jsonl in the run folder.
type reporter struct {
	out      io.Writer
	json     bool
	tty      bool
	metrics  *os.File
	bar      *progressbar.ProgressBar
	mu       sync.Mutex
	evalLoss float64
	// evaluated: an eval event came (there were held-out tokens to score)
	evaluated bool
}

func newReporter(e *Env, jsonOut bool, runDir string) (*reporter, error) {
	r := &reporter{out: e.Stdout, json: jsonOut, tty: !jsonOut && isTerminal(e.Stdout)}
	if runDir != "" {
		f, err := os.OpenFile(filepath.Join(runDir, "metrics.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		r.metrics = f
	}
	return r, nil
}

func (r *reporter) close() {
	if r.metrics != nil {
		r.metrics.Close()
	}
}

// newBar draws steps on the terminal. The bar's own time prediction is
// off: after a resume its rate would count the skipped steps, so the
// description carries the loop's ETA instead.
func (r *reporter) newBar(steps int) *progressbar.ProgressBar {
	return progressbar.NewOptions(steps,
		progressbar.OptionSetWriter(r.out),
		progressbar.OptionSetWidth(24),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionShowDescriptionAtLineEnd(),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(r.out) }),
	)
}

// line prints a message on its own line, under the bar if one is drawn.
func (r *reporter) line(format string, a ...any) {
	if r.bar != nil {
		r.bar.Clear()
	}
	fmt.Fprintf(r.out, format+"\n", a...)
}

func (r *reporter) event(ev train.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.metrics != nil {
		b, _ := json.Marshal(ev)
		r.metrics.Write(append(b, '\n'))
	}
	if ev.Kind == "eval" {
		r.evalLoss, r.evaluated = ev.EvalLoss, true
	}
	if r.json {
		json.NewEncoder(r.out).Encode(ev)
		return
	}
	switch ev.Kind {
	case "start":
		if r.tty && r.bar == nil {
			r.bar = r.newBar(ev.Steps)
			r.bar.Set(ev.Step)
		}
	case "step":
		if r.tty {
			if r.bar == nil {
				r.bar = r.newBar(ev.Steps)
			}
			r.bar.Describe(fmt.Sprintf("loss %.4f  lr %.2e  %.0f tok/s  ETA %s", ev.Loss, ev.LR, ev.TokensPerSec, dur(ev.ETA)))
			r.bar.Set(ev.Step)
			return
		}
		every := max(1, ev.Steps/20)
		if ev.Step%every == 0 || ev.Step == 1 || ev.Step == ev.Steps {
			fmt.Fprintf(r.out, "step %d/%d  loss %.4f  lr %.2e  grad %.3f  %.0f tok/s  ETA %s\n", ev.Step, ev.Steps, ev.Loss, ev.LR, ev.GradNorm, ev.TokensPerSec, dur(ev.ETA))
		}
	case "eval":
		r.line("step %d  eval loss %.4f", ev.Step, ev.EvalLoss)
	case "warning", "stopped":
		r.line("%s", ev.Message)
	case "checkpoint":
		if !r.tty {
			fmt.Fprintf(r.out, "checkpoint %s\n", ev.Path)
		}
	}
}

// heldOut says how the run ended on its held-out set: the last evaluated
// loss, or that there was none (no held-out examples, or none with tokens
// to score), never a made-up 0.
func (r *reporter) heldOut() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.evaluated {
		return "no held-out evaluation: no held-out tokens to score"
	}
	return fmt.Sprintf("held-out loss %.4f", r.evalLoss)
}

func dur(s float64) string {
	d := time.Duration(s * float64(time.Second)).Round(time.Second)
	return d.String()
}
