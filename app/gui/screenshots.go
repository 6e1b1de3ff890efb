package gui

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"fyne.io/fyne/v2"
)

// Screenshots drives the app through a short session and writes one PNG
// per page into dir: the demo model opened, the demo instruction data
// previewed, a short LoRA fine-tune run to the end, the Playground
// comparing base and tuned on one prompt, and the run in the Runs list.
// It runs on its own goroutine (not the UI thread) and uses the runs
// folder the UI was given, which should be empty. capture writes the
// window as a PNG file; it runs on this goroutine, nil means u.Capture on
// the UI thread.
func (u *UI) Screenshots(dir string, capture func(path string) error) ([]string, error) {
	if capture == nil {
		capture = func(path string) (err error) {
			fyne.DoAndWait(func() { err = u.Capture(path) })
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	wait := func(what string, start func(done func(error))) error {
		ch := make(chan error, 1)
		fyne.DoAndWait(func() { start(func(err error) { ch <- err }) })
		select {
		case err := <-ch:
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			return nil
		case <-time.After(2 * time.Minute):
			return errors.New(what + ": timed out")
		}
	}
	if err := wait("open the demo model", func(done func(error)) { u.Models.Load("demo", done) }); err != nil {
		return nil, err
	}
	if err := wait("generate the demo data", func(done func(error)) { u.Data.GenerateDemo("instruct", done) }); err != nil {
		return nil, err
	}
	// A short LoRA fine-tune, run to the end.
	var job *Job
	var startErr error
	fyne.DoAndWait(func() {
		t := u.Train
		t.Mode.SetSelected(modeSFT)
		t.Name.SetText("sft-demo")
		t.Steps.SetText("40")
		t.Batch.SetText("8")
		t.Ctx.SetText("96")
		t.Eval.SetText("10")
		t.Rank.SetText("8")
		t.start()
		if t.Error.Text != "" {
			startErr = errors.New(t.Error.Text)
		}
		job = t.Panel.Job()
	})
	if startErr != nil {
		return nil, fmt.Errorf("start the fine-tune: %w", startErr)
	}
	if code := job.Wait(); code != 0 {
		return nil, fmt.Errorf("the fine-tune failed (exit %d)", code)
	}
	time.Sleep(2 * refreshEvery)
	// The Playground: base and tuned side by side.
	fyne.DoAndWait(func() {
		u.Show("Playground")
		pg := u.Playground
		pg.refreshAdapters()
		pg.System.SetText("")
		pg.Adapter.SetSelected("demo adapter") // the embedded one, tuned for 400 steps
		pg.Compare.SetChecked(true)
		pg.Temperature.SetValue(0)
	})
	if err := wait("load the tuned model", func(done func(error)) { u.Playground.LoadModel(done) }); err != nil {
		return nil, err
	}
	if err := wait("chat", func(done func(error)) {
		if err := u.Playground.SendText("Write cat in uppercase.", done); err != nil {
			done(err)
		}
	}); err != nil {
		return nil, err
	}
	fyne.DoAndWait(func() {
		u.Runs.Refresh()
		u.Runs.Select("sft-demo")
		for i, n := range u.Runs.names {
			if n == "sft-demo" {
				u.Runs.List.Select(i)
			}
		}
	})
	var files []string
	for _, name := range PageNames() {
		fyne.DoAndWait(func() { u.Show(name) })
		time.Sleep(300 * time.Millisecond)
		path := filepath.Join(dir, strings.ToLower(name)+".png")
		if err := capture(path); err != nil {
			return files, err
		}
		files = append(files, path)
	}
	return files, nil
}
