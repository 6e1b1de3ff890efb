package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

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

// reporter shows training events: a redrawn progress line on a terminal,
// plain lines otherwise, JSON lines with --json; and appends every event
// to metrics.jsonl in the run folder.
type reporter struct {
	out      io.Writer
	json     bool
	tty      bool
	metrics  *os.File
	last     time.Time
	mu       sync.Mutex
	evalLoss float64
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

func (r *reporter) event(ev train.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.metrics != nil {
		b, _ := json.Marshal(ev)
		r.metrics.Write(append(b, '\n'))
	}
	if r.json {
		json.NewEncoder(r.out).Encode(ev)
		return
	}
	switch ev.Kind {
	case "step":
		if r.tty {
			if time.Since(r.last) < 100*time.Millisecond && ev.Step != ev.Steps {
				return
			}
			r.last = time.Now()
			frac := float64(ev.Step) / float64(ev.Steps)
			w := 24
			bar := strings.Repeat("█", int(frac*float64(w))) + strings.Repeat("░", w-int(frac*float64(w)))
			fmt.Fprintf(r.out, "\r%s %5d/%d  loss %.4f  lr %.2e  %6.0f tok/s  ETA %s   ", bar, ev.Step, ev.Steps, ev.Loss, ev.LR, ev.TokensPerSec, dur(ev.ETA))
			if ev.Step == ev.Steps {
				fmt.Fprintln(r.out)
			}
			return
		}
		every := max(1, ev.Steps/20)
		if ev.Step%every == 0 || ev.Step == 1 || ev.Step == ev.Steps {
			fmt.Fprintf(r.out, "step %d/%d  loss %.4f  lr %.2e  grad %.3f  %.0f tok/s  ETA %s\n", ev.Step, ev.Steps, ev.Loss, ev.LR, ev.GradNorm, ev.TokensPerSec, dur(ev.ETA))
		}
	case "eval":
		r.evalLoss = ev.EvalLoss
		if r.tty {
			fmt.Fprintln(r.out)
		}
		fmt.Fprintf(r.out, "step %d  eval loss %.4f\n", ev.Step, ev.EvalLoss)
	case "warning", "stopped":
		if r.tty {
			fmt.Fprintln(r.out)
		}
		fmt.Fprintf(r.out, "%s\n", ev.Message)
	case "checkpoint":
		if !r.tty {
			fmt.Fprintf(r.out, "checkpoint %s\n", ev.Path)
		}
	}
}

func dur(s float64) string {
	d := time.Duration(s * float64(time.Second)).Round(time.Second)
	return d.String()
}
