package gui

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/google/go-cmp/cmp"

	"llmlab/app/cli"
	"llmlab/core/tokenizer"
)

// TestMain unpacks the demo model into a private cache once for all tests.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "llmlab-gui-test-")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_CACHE_HOME", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// newTestUI builds the app on Fyne's test driver with a fresh runs folder.
func newTestUI(t *testing.T, run Runner) *UI {
	t.Helper()
	a := test.NewTempApp(t)
	w := test.NewTempWindow(t, nil)
	w.Resize(fyne.NewSize(1280, 800))
	u := New(a, w, Options{Run: run, RunsDir: t.TempDir()})
	t.Cleanup(u.Close)
	return u
}

// waitFor polls cond for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// await runs start with a done callback and waits for it.
func await(t *testing.T, what string, start func(done func(error))) error {
	t.Helper()
	ch := make(chan error, 1)
	start(func(err error) { ch <- err })
	select {
	case err := <-ch:
		return err
	case <-time.After(60 * time.Second):
		t.Fatalf("timed out: %s", what)
		return nil
	}
}

func TestEveryPageShows(t *testing.T) {
	u := newTestUI(t, nil)
	if got := u.nav.Length(); got != len(PageNames()) {
		t.Fatalf("navigation has %d entries, want %d", got, len(PageNames()))
	}
	for _, name := range PageNames() {
		u.Show(name)
		if u.Current() != name {
			t.Errorf("Show(%q): showing %q", name, u.Current())
		}
		if len(u.content.Objects) != 1 {
			t.Errorf("%s: content has %d objects", name, len(u.content.Objects))
		}
	}
	// The widgets each page promises.
	for what, o := range map[string]fyne.CanvasObject{
		"models path": u.Models.Path, "models demo": u.Models.Demo, "preset": u.Models.Preset,
		"data path": u.Data.Path, "histogram": u.Data.Histogram,
		"train mode": u.Train.Mode, "peft": u.Train.PEFT, "train progress": u.Train.Panel.Progress, "train chart": u.Train.Panel.Chart,
		"align method": u.Align.Method, "playground prompt": u.Playground.Prompt, "compare": u.Playground.Compare,
		"temperature": u.Playground.Temperature, "runs list": u.Runs.List, "device": u.Settings.Device, "theme": u.Settings.Theme,
	} {
		if o == nil {
			t.Errorf("%s: missing", what)
		}
	}
	if diff := cmp.Diff([]string{"lora", "dora", "adapter", "prefix", "prompt", "ia3", "none"}, u.Train.PEFT.Options); diff != "" {
		t.Errorf("PEFT list (-want +got):\n%s", diff)
	}
	if u.Settings.Device.Options[0] != "auto" || len(u.Settings.Device.Options) < 2 {
		t.Errorf("device list %v: want auto and the probed backends", u.Settings.Device.Options)
	}
}

func TestParseEvent(t *testing.T) {
	r := 0.25
	for _, tc := range []struct {
		name, line string
		want       Event
		ok         bool
	}{
		{"step", `{"event":"step","step":3,"steps":10,"loss":2.5,"lr":0.001,"tokens_per_s":1200,"eta_s":4,"elapsed_s":1}`,
			Event{Kind: "step", Step: 3, Steps: 10, Loss: 2.5, LR: 0.001, TokensPerSec: 1200, ETA: 4, Elapsed: 1}, true},
		{"eval", `{"event":"eval","step":10,"steps":10,"eval_loss":1.75,"elapsed_s":2}`, Event{Kind: "eval", Step: 10, Steps: 10, EvalLoss: 1.75, Elapsed: 2}, true},
		{"grpo step", `{"step":2,"reward":0.25,"kl":0.01,"loss":0.1}`, Event{Kind: "step", Step: 2, Loss: 0.1, Reward: &r}, true},
		{"summary", `{"reward_before":0.1,"reward_after":0.2}`, Event{}, false},
		{"text", `step 3/10 loss 2.5`, Event{}, false},
		{"broken", `{"event":`, Event{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseEvent(tc.line)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestModelsPage(t *testing.T) {
	u := newTestUI(t, nil)
	p := u.Models
	test.Tap(p.Open) // empty path
	if p.Error.Text == "" {
		t.Fatal("an empty model path shows no error")
	}
	if err := await(t, "missing folder", func(done func(error)) { p.Load(filepath.Join(t.TempDir(), "nope"), done) }); err == nil || !strings.Contains(p.Error.Text, "nope") {
		t.Fatalf("a missing folder: err %v, shown %q", err, p.Error.Text)
	}
	if err := await(t, "demo", func(done func(error)) { p.Load("demo", done) }); err != nil {
		t.Fatal(err)
	}
	if p.Error.Text != "" || p.Loaded == nil {
		t.Fatalf("demo: error %q", p.Error.Text)
	}
	got := map[string]string{}
	for _, it := range p.Info.Items {
		got[it.Text] = it.Widget.(*widget.Label).Text
	}
	for _, k := range []string{"Architecture", "Parameters", "Memory", "Tokenizer", "Chat template"} {
		if got[k] == "" {
			t.Errorf("model info has no %s: %v", k, got)
		}
	}
	if !strings.Contains(got["Chat template"], "chatml") {
		t.Errorf("chat template %q: want chatml", got["Chat template"])
	}
	if u.Train.Model.Text != "demo" || u.Playground.Model.Text != "demo" {
		t.Errorf("the opened model is not offered to Train and Playground")
	}
	// The families' presets are offered, each described by its own family.
	for preset, family := range map[string]string{"llama3.2-1b": "llama", "qwen3-0.6b": "qwen3", "gemma3-270m": "gemma3_text",
		"phi4-mini": "phi3", "smollm2-135m": "llama", "smollm3-3b": "smollm3"} {
		if !slices.Contains(p.Preset.Options, preset) {
			t.Errorf("preset %s is not offered: %v", preset, p.Preset.Options)
			continue
		}
		p.Preset.SetSelected(preset)
		if !strings.HasPrefix(p.Shape.Text, family+":") {
			t.Errorf("preset %s described as %q, want family %s", preset, p.Shape.Text, family)
		}
	}
	p.Preset.SetSelected("tiny")
	// A new model from a preset, through llmlab init.
	p.NewOut.SetText("models/tiny")
	test.Tap(p.Create)
	waitFor(t, 30*time.Second, "the new model", func() bool { return strings.HasPrefix(p.Summary.Text, u.runDir("models/tiny")+": llama") })
}

func TestDataPage(t *testing.T) {
	u := newTestUI(t, nil)
	p := u.Data
	test.Tap(p.Preview)
	if p.Error.Text == "" {
		t.Fatal("an empty dataset path shows no error")
	}
	if err := await(t, "demo data", func(done func(error)) { p.GenerateDemo("instruct", done) }); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.Summary.Text, "chat records") || !strings.Contains(p.Summary.Text, "carry loss") {
		t.Errorf("summary %q", p.Summary.Text)
	}
	var trained, prompt int
	for _, s := range p.Rows.Segments {
		ts := s.(*widget.TextSegment)
		switch ts.Style.ColorName {
		case trainStyle.ColorName:
			trained++
		case promptStyle.ColorName:
			prompt++
		}
	}
	if trained == 0 || prompt == 0 {
		t.Errorf("preview: %d trained and %d prompt segments; want both", trained, prompt)
	}
	total := 0
	for _, c := range p.Histogram.Counts() {
		total += c
	}
	if total < 100 {
		t.Errorf("histogram holds %d examples", total)
	}
	if u.Train.Data.Text != p.Path.Text {
		t.Errorf("the previewed data is not offered to Train")
	}
	// Preference data goes to Align.
	if err := await(t, "prefs", func(done func(error)) { p.GenerateDemo("prefs", done) }); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.Summary.Text, "preference") || u.Align.Data.Text != p.Path.Text {
		t.Errorf("prefs: summary %q, align data %q", p.Summary.Text, u.Align.Data.Text)
	}
}

// writeCorpus writes a small text corpus for pretraining.
func writeCorpus(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < 300; i++ {
		b.WriteString("Tom had a red ball. He threw the ball to Sue and she laughed.\n\n")
	}
	path := filepath.Join(t.TempDir(), "corpus.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTrainValidation(t *testing.T) {
	u := newTestUI(t, nil)
	p := u.Train
	corpus := writeCorpus(t)
	for _, tc := range []struct {
		name  string
		set   func()
		wants string
	}{
		{"empty model", func() { p.Model.SetText("") }, "Model"},
		{"empty data", func() { p.Data.SetText("") }, "Data"},
		{"missing data", func() { p.Data.SetText(filepath.Join(t.TempDir(), "none.jsonl")) }, "Data"},
		{"bad steps", func() { p.Steps.SetText("ten") }, "Steps"},
		{"zero batch", func() { p.Batch.SetText("0") }, "Batch"},
		{"bad lr", func() { p.LR.SetText("-1") }, "Learning rate"},
		{"bad rank", func() { p.Rank.SetText("x") }, "LoRA rank"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.Mode.SetSelected(modeSFT)
			p.Model.SetText("demo")
			p.Data.SetText(corpus)
			p.Steps.SetText("10")
			p.Batch.SetText("4")
			p.LR.SetText("0.001")
			p.Rank.SetText("8")
			tc.set()
			test.Tap(p.Start)
			if !strings.HasPrefix(p.Error.Text, tc.wants) {
				t.Errorf("error %q, want one about %s", p.Error.Text, tc.wants)
			}
			if u.Running() != nil {
				t.Errorf("a job started from an invalid form")
			}
		})
	}
	// A valid form builds the CLI's command line.
	p.Mode.SetSelected(modeSFT)
	p.Model.SetText("demo")
	p.Data.SetText(corpus)
	p.Name.SetText("x")
	p.Steps.SetText("5")
	p.Batch.SetText("2")
	p.Ctx.SetText("64")
	p.LR.SetText("0.002")
	p.Eval.SetText("0")
	p.Rank.SetText("4")
	p.Alpha.SetText("8")
	args, steps, err := p.Args()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"sft", "--model", "demo", "--data", corpus, "--out", u.runDir("x"), "--steps", "5", "--batch", "2", "--ctx", "64",
		"--lr", "0.002", "--eval-every", "0", "--peft", "lora", "--rank", "4", "--alpha", "8", "--device", "auto"}
	if diff := cmp.Diff(want, args); diff != "" || steps != 5 {
		t.Errorf("args (-want +got):\n%s (steps %d)", diff, steps)
	}
}

// TestTrainJob runs a tiny pretraining job from the Train page to the end:
// the bar reaches the end and the chart gets train and eval points.
func TestTrainJob(t *testing.T) {
	u := newTestUI(t, nil)
	p := u.Train
	p.Mode.SetSelected(modePretrain)
	p.Init.SetSelected("tiny")
	p.Data.SetText(writeCorpus(t))
	p.Name.SetText("tiny")
	p.Steps.SetText("12")
	p.Batch.SetText("2")
	p.Ctx.SetText("32")
	p.Eval.SetText("6")
	p.Extra.SetText("--threads 1")
	test.Tap(p.Start)
	if p.Error.Text != "" {
		t.Fatal(p.Error.Text)
	}
	j := p.Panel.Job()
	if j == nil {
		t.Fatal("no job started")
	}
	// One job at a time.
	if err := u.Align.Panel.Start([]string{"version"}, 0); err == nil || !strings.Contains(err.Error(), "still running") {
		t.Errorf("a second job while one runs: %v", err)
	}
	if code := j.Wait(); code != 0 {
		t.Fatalf("exit %d: %s", code, p.Panel.Status.Text)
	}
	waitFor(t, 5*time.Second, "the final redraw", func() bool { return strings.HasPrefix(p.Panel.Status.Text, "done") })
	if p.Panel.Progress.Value != 1 {
		t.Errorf("progress %v at the end", p.Panel.Progress.Value)
	}
	if n := p.Panel.Chart.Len(0); n != 12 {
		t.Errorf("chart has %d train points, want 12", n)
	}
	if n := p.Panel.Chart.Len(1); n < 2 {
		t.Errorf("chart has %d eval points, want 2", n)
	}
	if !strings.Contains(p.Panel.Status.Text, "step 12/12") || !strings.Contains(p.Panel.Status.Text, "tok/s") {
		t.Errorf("status %q", p.Panel.Status.Text)
	}
	dir := u.runDir("tiny")
	for _, f := range []string{"run.json", "metrics.jsonl", "final/config.json", commandFile} {
		if !exists(filepath.Join(dir, f)) {
			t.Errorf("%s missing", f)
		}
	}
	// The Runs page lists it as finished, with its loss curve.
	u.Show("Runs")
	if diff := cmp.Diff([]string{"tiny"}, u.Runs.Names()); diff != "" {
		t.Fatalf("runs (-want +got):\n%s", diff)
	}
	u.Runs.Select("tiny")
	if !strings.Contains(u.Runs.Status.Text, "finished") || u.Runs.Chart.Len(0) != 12 {
		t.Errorf("runs: %q, %d points", u.Runs.Status.Text, u.Runs.Chart.Len(0))
	}
	// Export GGUF runs llmlab export on final/.
	test.Tap(u.Runs.Export)
	waitFor(t, 20*time.Second, "the GGUF file", func() bool { return exists(filepath.Join(dir, "model.gguf")) })
	if _, err := u.Runs.MergeArgs(); err == nil {
		t.Errorf("merge offered for a full model")
	}
}

// TestStopJob stops a long job: it checkpoints and exits 0, and Resume
// continues it.
func TestStopJob(t *testing.T) {
	u := newTestUI(t, nil)
	p := u.Train
	p.Mode.SetSelected(modePretrain)
	p.Init.SetSelected("tiny")
	p.Data.SetText(writeCorpus(t))
	p.Name.SetText("long")
	p.Steps.SetText("100000")
	p.Batch.SetText("2")
	p.Ctx.SetText("32")
	p.Extra.SetText("--threads 1")
	test.Tap(p.Start)
	j := p.Panel.Job()
	if j == nil {
		t.Fatal(p.Error.Text)
	}
	waitFor(t, 20*time.Second, "a few steps", func() bool { s, _, _ := p.Panel.State(); return s >= 3 })
	test.Tap(p.Panel.Stop)
	done := make(chan int, 1)
	go func() { done <- j.Wait() }()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("stopped job exit %d", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Stop did not stop the job")
	}
	dir := u.runDir("long")
	if ms, _ := filepath.Glob(filepath.Join(dir, "checkpoints", "step-*")); len(ms) == 0 {
		t.Fatal("no checkpoint after Stop")
	}
	u.Runs.Refresh()
	u.Runs.Select("long")
	if !strings.Contains(u.Runs.Status.Text, "Resume") || u.Runs.Resume.Disabled() {
		t.Fatalf("runs status %q, resume disabled %v", u.Runs.Status.Text, u.Runs.Resume.Disabled())
	}
	test.Tap(u.Runs.Resume)
	rj := u.Runs.Panel.Job()
	if rj == nil || !strings.Contains(strings.Join(rj.Args, " "), "--resume") {
		t.Fatalf("resume job %v", rj)
	}
	waitFor(t, 20*time.Second, "the resumed job to step", func() bool { s, _, _ := u.Runs.Panel.State(); return s > 3 })
	rj.Stop()
	if code := rj.Wait(); code != 0 {
		t.Fatalf("resumed job exit %d", code)
	}
}

// TestGRPOEvents: GRPO's step lines (no "event" key) drive the bar and a
// reward curve; plain lines go to the log.
func TestGRPOEvents(t *testing.T) {
	release := make(chan struct{})
	fake := func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		if args[0] != "grpo" {
			return 2
		}
		io.WriteString(stderr, "GRPO: 4 tasks\n")
		for s := 1; s <= 4; s++ {
			io.WriteString(stdout, `{"step":`+string(rune('0'+s))+`,"reward":0.`+string(rune('0'+s))+`,"kl":0.01,"loss":0.5}`+"\n")
		}
		<-release
		io.WriteString(stdout, `{"reward_before":0.1,"reward_after":0.4,"adapter":"x"}`+"\n")
		return 0
	}
	u := newTestUI(t, fake)
	p := u.Align.Panel
	if err := p.Start([]string{"grpo", "--steps", "8"}, 8); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "four steps", func() bool { s, _, _ := p.State(); return s == 4 })
	// The page redraws a few times a second; on a loaded machine the
	// redraw may come late, so wait for it rather than sleep a fixed time.
	drawn := func() bool {
		return p.Progress.Value == 0.5 && strings.Contains(p.Status.Text, "reward 0.400") && p.Chart.Len(0) == 4
	}
	end := time.Now().Add(10 * time.Second)
	for !drawn() && time.Now().Before(end) {
		time.Sleep(refreshEvery / 4)
	}
	if !drawn() {
		t.Errorf("progress %v, status %q, %d points", p.Progress.Value, p.Status.Text, p.Chart.Len(0))
	}
	close(release)
	p.Job().Wait()
	waitFor(t, 5*time.Second, "done", func() bool { return strings.HasPrefix(p.Status.Text, "done") })
	if !strings.Contains(p.Log.Text, "GRPO: 4 tasks") || !strings.Contains(p.Log.Text, "reward_after") {
		t.Errorf("log %q", p.Log.Text)
	}
}

// TestAlignDemoJob: the align demo button runs demo --align into a new run
// folder with the settings' device; its stage events drive the bar.
func TestAlignDemoJob(t *testing.T) {
	release, argsc := make(chan struct{}), make(chan []string, 1)
	fake := func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		if args[0] != "demo" {
			return 2
		}
		argsc <- args
		io.WriteString(stderr, "sft             200s  (ETA 5m0s)\n")
		io.WriteString(stdout, `{"event":"stage","step":1,"steps":19,"message":"sft 200s","elapsed_s":200,"eta_s":300}`+"\n")
		<-release
		io.WriteString(stdout, `{"event":"done","step":19,"steps":19,"message":"the summary is in x/summary.md","path":"x/summary.md"}`+"\n")
		return 0
	}
	u := newTestUI(t, fake)
	p := u.Align
	test.Tap(p.Demo)
	got := <-argsc
	waitFor(t, 5*time.Second, "the first stage", func() bool { s, n, _ := p.Panel.State(); return s == 1 && n == 19 })
	if i := slices.Index(got, "--out"); got[1] != "--align" || i < 0 || !strings.HasPrefix(got[i+1], u.runDir("align-demo-")) ||
		!slices.Contains(got, "--device") || !slices.Contains(got, "--json") {
		t.Errorf("args %v", got)
	}
	waitFor(t, 10*time.Second, "the ETA in the status line", func() bool { return strings.Contains(p.Panel.Status.Text, "ETA 5m0s") })
	close(release)
	p.Panel.Job().Wait()
	waitFor(t, 5*time.Second, "done", func() bool { return strings.Contains(p.Panel.Log.Text, "summary is in") })
}

// TestCloseAsks: closing the window over a running job asks first.
func TestCloseAsks(t *testing.T) {
	block := func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		if args[0] == "devices" || (len(args) > 1 && args[1] == "-h") {
			return 2
		}
		<-ctx.Done()
		return 0
	}
	u := newTestUI(t, block)
	if err := u.Train.Panel.Start([]string{"pretrain"}, 10); err != nil {
		t.Fatal(err)
	}
	u.confirmClose()
	if u.Win.Canvas().Overlays().Top() == nil {
		t.Fatal("no question before closing over a running job")
	}
	if u.Running() == nil {
		t.Fatal("the job was stopped without asking")
	}
}

func TestAlignPage(t *testing.T) {
	u := newTestUI(t, nil)
	p := u.Align
	var labels []string
	for _, m := range p.methods {
		labels = append(labels, m.label)
	}
	want := []string{"Reward model", "DPO family", "KTO", "GRPO", "PPO", "RLAIF"}
	if diff := cmp.Diff(want, labels); diff != "" {
		t.Errorf("methods (-want +got):\n%s", diff)
	}
	// A command missing from the build stays listed, disabled.
	if ms := alignMethods(func(c string) bool { return c != "rlaif" }); !ms[5].missing || !strings.Contains(ms[5].label, "not in this build") {
		t.Errorf("missing rlaif: %+v", ms[5])
	}
	// PPO: the reward field picks the flag.
	prompts := writeCorpus(t)
	p.Method.SetSelected("PPO")
	p.Model.SetText("demo")
	p.Data.SetText(prompts)
	p.Name.SetText("p")
	for reward, flag := range map[string]string{"exact": "--reward", "http://127.0.0.1:9/score": "--reward-url", t.TempDir(): "--reward-model"} {
		p.Reward.SetText(reward)
		args, _, err := p.Args()
		if err != nil {
			t.Fatal(err)
		}
		if i := slices.Index(args, flag); i < 0 || args[i+1] != reward || args[0] != "ppo" || !slices.Contains(args, "--iterations") {
			t.Errorf("ppo with reward %q: %v", reward, args)
		}
	}
	p.Reward.SetText("")
	if _, _, err := p.Args(); err == nil || !strings.HasPrefix(err.Error(), "Reward") {
		t.Errorf("ppo without a reward: %v", err)
	}
	p.Method.SetSelected("RLAIF")
	p.Reward.SetText("demo")
	args, _, err := p.Args()
	if err != nil || args[0] != "rlaif" || !slices.Contains(args, "--judge") || !strings.HasSuffix(args[slices.Index(args, "--out")+1], "prefs.jsonl") {
		t.Errorf("rlaif args %v, %v", args, err)
	}
	p.Name.SetText("")
	p.Method.SetSelected("DPO family")
	p.Model.SetText("")
	test.Tap(p.Start)
	if !strings.HasPrefix(p.Error.Text, "Model") {
		t.Errorf("empty model: %q", p.Error.Text)
	}
	data := writeCorpus(t)
	p.Model.SetText("demo")
	p.Data.SetText(data)
	p.Name.SetText("d")
	p.Loss.SetSelected("ipo")
	args, _, err = p.Args()
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"dpo", "--model", "demo", "--data", data, "--out", u.runDir("d"), "--steps", "100", "--lr", "0.0005", "--batch", "4", "--beta", "0.1", "--loss", "ipo", "--device", "auto"}
	if diff := cmp.Diff(want, args); diff != "" {
		t.Errorf("dpo args (-want +got):\n%s", diff)
	}
	// A failing job shows the CLI's sentence.
	test.Tap(p.Start)
	j := p.Panel.Job()
	if j == nil {
		t.Fatal(p.Error.Text)
	}
	if code := j.Wait(); code == 0 {
		t.Fatal("dpo on a text file succeeded")
	}
	waitFor(t, 5*time.Second, "the failure", func() bool { return strings.HasPrefix(p.Panel.Status.Text, "failed") })
	if !strings.Contains(p.Panel.Status.Text, "llmlab dpo:") {
		t.Errorf("status %q: want the CLI's error", p.Panel.Status.Text)
	}
}

func TestPlaygroundStreams(t *testing.T) {
	u := newTestUI(t, nil)
	p := u.Playground
	if err := p.SendText("hi", nil); err == nil {
		t.Error("sending without a model")
	}
	p.Adapter.SetSelected("demo adapter")
	if err := await(t, "load", func(done func(error)) { p.LoadModel(done) }); err != nil {
		t.Fatal(err)
	}
	p.MaxTokens.SetText("12")
	p.Compare.SetChecked(true)
	if err := await(t, "reply", func(done func(error)) {
		if err := p.SendText("What is 2 plus 2?", done); err != nil {
			done(err)
		}
	}); err != nil {
		t.Fatal(err)
	}
	tr := p.Transcript()
	reply := strings.TrimSpace(tr[strings.Index(tr, "model:")+len("model:"):])
	if reply == "" {
		t.Fatalf("no reply: %q", tr)
	}
	p.mu.Lock()
	pieces := p.pieces
	p.mu.Unlock()
	if pieces < 3 {
		t.Errorf("the replies arrived in %d pieces; want them streamed", pieces)
	}
	if !strings.Contains(p.Base.Text, "model:") || !strings.Contains(p.Speed.Text, "tokens/s") || !strings.Contains(p.Speed.Text, "base") {
		t.Errorf("base %q, speed %q", p.Base.Text, p.Speed.Text)
	}
}

// checkPicture fails unless path is a PNG of at least minW x minH with
// several distinct colours and no single colour covering nearly all of it.
func checkPicture(t *testing.T, path string, minW, minH int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b := img.Bounds()
	if b.Dx() < minW || b.Dy() < minH {
		t.Errorf("%s: %dx%d, want at least %dx%d", path, b.Dx(), b.Dy(), minW, minH)
	}
	counts := map[[4]uint32]int{}
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, a := img.At(x, y).RGBA()
			counts[[4]uint32{r >> 8, g >> 8, bl >> 8, a >> 8}]++
		}
	}
	most, total := 0, 0
	for _, n := range counts {
		most, total = max(most, n), total+n
	}
	if len(counts) < 16 || float64(most) > 0.97*float64(total) {
		t.Errorf("%s: %d distinct colours, the commonest covers %.1f%%: blank?", path, len(counts), 100*float64(most)/float64(total))
	}
}

// TestScreenshotsHeadless runs the screenshot session on the test driver.
func TestScreenshotsHeadless(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a short fine-tune")
	}
	u := newTestUI(t, nil)
	dir := os.Getenv("LLMLAB_HEADLESS_SHOTS") // to look at them
	if dir == "" {
		dir = t.TempDir()
	}
	files, err := u.Screenshots(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(PageNames()) {
		t.Fatalf("%d pictures", len(files))
	}
	for _, f := range files {
		checkPicture(t, f, 1000, 600)
	}
	// The session's LoRA run merges into a full model.
	if u.Runs.selected != "sft-demo" || u.Runs.Merge.Disabled() {
		t.Fatalf("runs: selected %q, merge disabled %v", u.Runs.selected, u.Runs.Merge.Disabled())
	}
	test.Tap(u.Runs.Merge)
	waitFor(t, 30*time.Second, "the merged model", func() bool { return exists(filepath.Join(u.runDir("sft-demo"), "merged", "model.safetensors")) })
}

// TestScreenshotFiles checks the pictures `make screenshots` wrote (the
// folder in LLMLAB_SCREENSHOT_DIR).
func TestScreenshotFiles(t *testing.T) {
	dir := os.Getenv("LLMLAB_SCREENSHOT_DIR")
	if dir == "" {
		t.Skip("LLMLAB_SCREENSHOT_DIR is not set (make screenshots sets it)")
	}
	for _, name := range PageNames() {
		checkPicture(t, filepath.Join(dir, strings.ToLower(name)+".png"), 1000, 600)
	}
}

// TestDataPageTrainsTokenizer: a tokenizer trained from the Data page lands
// in the runs folder and loads.
func TestDataPageTrainsTokenizer(t *testing.T) {
	u := newTestUI(t, nil)
	p := u.Data
	if err := await(t, "no file", func(done func(error)) { p.TrainTokenizer(done) }); err == nil {
		t.Fatal("training without a file")
	}
	p.Path.SetText(writeCorpus(t))
	p.Vocab.SetText("300")
	if err := await(t, "tokenizer", func(done func(error)) { p.TrainTokenizer(done) }); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.TokInfo.Text, "tokenizer.json") {
		t.Errorf("info %q", p.TokInfo.Text)
	}
	matches, _ := filepath.Glob(filepath.Join(u.RunsDir, "tokenizers", "*", "tokenizer.json"))
	if len(matches) != 1 {
		t.Fatalf("tokenizer files: %v", matches)
	}
	if _, err := tokenizer.Load(filepath.Dir(matches[0])); err != nil {
		t.Fatal(err)
	}
}

// TestPlaygroundServes: the Serve button runs llmlab serve for the chosen
// model; the API answers; the button stops it.
func TestPlaygroundServes(t *testing.T) {
	u := newTestUI(t, nil)
	p := u.Playground
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	p.Model.SetText("demo")
	p.Addr.SetText(addr)
	p.ToggleServe(nil)
	var body []byte
	waitFor(t, 20*time.Second, "the server", func() bool {
		resp, err := http.Get("http://" + addr + "/v1/models")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ = io.ReadAll(resp.Body)
		return resp.StatusCode == 200
	})
	if !strings.Contains(string(body), "data") {
		t.Errorf("/v1/models: %s", body)
	}
	p.ToggleServe(nil)
	if _, err := http.Get("http://" + addr + "/v1/models"); err == nil {
		t.Error("the server still answers after Stop")
	}
	if !strings.Contains(p.ServeInfo.Text, "stopped") {
		t.Errorf("info %q", p.ServeInfo.Text)
	}
}

// TestTrainSFTHeldOutLoss: an SFT job from the Train page reports the
// held-out loss the run really has: the page's figure equals what
// `llmlab eval` measures on the same adapter and held-out examples.
func TestTrainSFTHeldOutLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a LoRA adapter on the demo model")
	}
	dir := t.TempDir()
	write := func(name string, from, to int) string {
		var b strings.Builder
		for i := from; i < to; i++ {
			fmt.Fprintf(&b, "{\"messages\":[{\"role\":\"user\",\"content\":\"What is %d plus 1?\"},{\"role\":\"assistant\",\"content\":\"%d\"}]}\n", i, i+1)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	data, heldOut := write("train.jsonl", 0, 48), write("heldout.jsonl", 48, 60)
	u := newTestUI(t, nil)
	p := u.Train
	p.Mode.SetSelected(modeSFT)
	p.Model.SetText("demo")
	p.Data.SetText(data)
	p.Name.SetText("sft")
	p.Steps.SetText("6")
	p.Batch.SetText("4")
	p.Ctx.SetText("64")
	p.Extra.SetText("--threads 1 --eval-data " + heldOut)
	test.Tap(p.Start)
	if p.Error.Text != "" {
		t.Fatal(p.Error.Text)
	}
	if code := p.Panel.Job().Wait(); code != 0 {
		t.Fatalf("exit %d: %s", code, p.Panel.Status.Text)
	}
	waitFor(t, 5*time.Second, "the final redraw", func() bool { return strings.HasPrefix(p.Panel.Status.Text, "done") })
	m := regexp.MustCompile(`held-out loss ([0-9.]+)`).FindStringSubmatch(p.Panel.Log.Text)
	if m == nil {
		t.Fatalf("no held-out loss in the log:\n%s", p.Panel.Log.Text)
	}
	shown, _ := strconv.ParseFloat(m[1], 64)
	if !strings.Contains(p.Panel.Status.Text, "eval "+m[1]) {
		t.Errorf("status %q does not show the held-out loss %s", p.Panel.Status.Text, m[1])
	}
	// The same held-out examples, scored by llmlab eval.
	run := u.runDir("sft")
	var out, errb bytes.Buffer
	if code := cli.Run(context.Background(), []string{"eval", "--model", "demo", "--adapter", filepath.Join(run, "final"), "--data", heldOut, "--json", "--threads", "1"}, &out, &errb); code != 0 {
		t.Fatalf("eval: %s", errb.String())
	}
	var ev struct{ Loss float64 }
	if err := json.Unmarshal(out.Bytes(), &ev); err != nil {
		t.Fatalf("eval output %q: %v", out.String(), err)
	}
	if shown == 0 || math.Abs(shown-ev.Loss) > 1e-3*ev.Loss {
		t.Errorf("the Train page shows held-out loss %v; llmlab eval on the same run gives %v", shown, ev.Loss)
	}
}
