package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets tests run the CLI in a child process (re-executing the
// test binary), so they can kill it like a user's Ctrl-C or a crash.
func TestMain(m *testing.M) {
	if args := os.Getenv("LLMLAB_CLI_ARGS"); args != "" {
		var a []string
		if err := json.Unmarshal([]byte(args), &a); err != nil {
			os.Exit(3)
		}
		// Like the real binary: Ctrl-C cancels the context.
		ctx, _ := signal.NotifyContext(context.Background(), os.Interrupt)
		os.Exit(Run(ctx, a, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// child starts the CLI with args in a subprocess.
func child(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	js, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LLMLAB_CLI_ARGS="+string(js))
	return cmd
}

// run runs the CLI in-process and returns its exit code and output.
func run(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, &out, &errb)
	return code, out.String() + errb.String()
}

func corpus(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < 400; i++ {
		b.WriteString("Once upon a time a little fox found a red ball. The fox was happy and played all day.\n\n")
	}
	path := filepath.Join(t.TempDir(), "stories.txt")
	os.WriteFile(path, []byte(b.String()), 0o644)
	return path
}

func pretrainArgs(data, out string, extra ...string) []string {
	return append([]string{"pretrain", "--init", "tiny", "--data", data, "--out", out, "--steps", "12",
		"--batch", "2", "--ctx", "32", "--save-every", "2", "--eval-every", "6", "--json"}, extra...)
}

func finalBytes(t *testing.T, run string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(run, "final", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestResumeAfterKillIsBitExact: a run killed with SIGKILL mid-way and
// resumed ends with the same weights, bit for bit, as an uninterrupted
// run; a checkpoint cut short on disk is skipped for the previous one.
func TestResumeAfterKillIsBitExact(t *testing.T) {
	if testing.Short() {
		t.Skip("slow end-to-end test")
	}
	data := corpus(t)
	tmp := t.TempDir()
	straight := filepath.Join(tmp, "straight")
	if code, out := run(t, pretrainArgs(data, straight)...); code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	want := finalBytes(t, straight)

	killed := filepath.Join(tmp, "killed")
	cmd := child(t, pretrainArgs(data, killed)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(killed, "checkpoints", "step-6", "state.json")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("no checkpoint at step 6 within a minute")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if _, err := os.Stat(filepath.Join(killed, "final")); err == nil {
		t.Skip("the run finished before it could be killed")
	}
	// Cut the newest checkpoint short: resume must fall back to the one before.
	steps, _ := filepath.Glob(filepath.Join(killed, "checkpoints", "step-*"))
	newest := ""
	for _, s := range steps {
		if !strings.HasSuffix(s, ".tmp") && s > newest {
			newest = s
		}
	}
	opt := filepath.Join(newest, "optimizer.safetensors")
	if b, err := os.ReadFile(opt); err == nil && len(steps) > 1 {
		os.WriteFile(opt, b[:len(b)/2], 0o644)
	}
	code, out := run(t, pretrainArgs(data, killed, "--resume")...)
	if code != 0 {
		t.Fatalf("resume exit %d: %s", code, out)
	}
	if len(steps) > 1 && !strings.Contains(out, "skipping checkpoint") {
		t.Errorf("a truncated checkpoint was not reported:\n%s", out)
	}
	if !bytes.Equal(finalBytes(t, killed), want) {
		t.Fatal("resumed run ends with different weights than the uninterrupted run")
	}
}

// TestThreadInvariance: the same run on 1 and 2 threads gives identical weights.
func TestThreadInvariance(t *testing.T) {
	if testing.Short() {
		t.Skip("slow end-to-end test")
	}
	data := corpus(t)
	tmp := t.TempDir()
	a, b := filepath.Join(tmp, "t1"), filepath.Join(tmp, "t2")
	if code, out := run(t, pretrainArgs(data, a, "--threads", "1")...); code != 0 {
		t.Fatal(out)
	}
	if code, out := run(t, pretrainArgs(data, b, "--threads", "2")...); code != 0 {
		t.Fatal(out)
	}
	if !bytes.Equal(finalBytes(t, a), finalBytes(t, b)) {
		t.Fatal("1 and 2 threads give different weights")
	}
}

func TestResumeWithOtherConfigRefused(t *testing.T) {
	data := corpus(t)
	out := filepath.Join(t.TempDir(), "r")
	if code, msg := run(t, "pretrain", "--init", "tiny", "--data", data, "--out", out, "--steps", "1", "--batch", "1", "--ctx", "16"); code != 0 {
		t.Fatal(msg)
	}
	code, msg := run(t, "pretrain", "--init", "tiny", "--data", data, "--out", out, "--steps", "1", "--batch", "2", "--ctx", "16", "--resume")
	if code != 2 || !strings.Contains(msg, "different configuration") || !strings.Contains(msg, "batch") {
		t.Fatalf("exit %d: %s", code, msg)
	}
}

func TestBadInputExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte("{\"text\":\"ok\"}\nnot json\n"), 0o644)
	cfg := filepath.Join(dir, "config.json")
	os.WriteFile(cfg, []byte(`{"model_type":"bert"}`), 0o644)
	model := filepath.Join(dir, "m")
	if code, msg := run(t, "init", "--preset", "tiny", "--out", model); code != 0 {
		t.Fatal(msg)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"init", "--config", cfg, "--out", filepath.Join(dir, "x")}, "unknown model_type"},
		{[]string{"eval", "--model", model, "--data", bad}, "bad.jsonl:2"},
		{[]string{"pretrain", "--model", model, "--data", filepath.Join(dir, "missing.txt"), "--ctx", "32", "--out", filepath.Join(dir, "r")}, "missing.txt"},
		{[]string{"generate", "--model", filepath.Join(dir, "nope"), "--prompt", "x"}, "nope"},
		{[]string{"nosuchcommand"}, "unknown command"},
	} {
		code, msg := run(t, tc.args...)
		if code != 2 || !strings.Contains(msg, tc.want) {
			t.Errorf("%v: exit %d, output %q (want 2 and %q)", tc.args, code, msg, tc.want)
		}
	}
}

func TestNoPartialRunOnBadData(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "run")
	code, _ := run(t, "pretrain", "--init", "tiny", "--data", filepath.Join(dir, "missing.txt"), "--ctx", "32", "--out", out)
	if code != 2 {
		t.Fatalf("exit %d", code)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a run folder was left behind")
	}
}

// TestSFTMergeEval: a LoRA SFT run, its adapter on eval and generate, and
// the merged model giving the same loss as base+adapter.
func TestSFTMergeEval(t *testing.T) {
	for _, peft := range []string{"lora", "dora", "ia3", "adapter", "prefix", "prompt"} {
		t.Run(peft, func(t *testing.T) { testSFTMergeEval(t, peft) })
	}
}

func testSFTMergeEval(t *testing.T, peft string) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	if code, msg := run(t, "init", "--preset", "tiny", "--out", base); code != 0 {
		t.Fatal(msg)
	}
	var b strings.Builder
	for i := 0; i < 40; i++ {
		fmt.Fprintf(&b, "{\"messages\":[{\"role\":\"user\",\"content\":\"say %d\"},{\"role\":\"assistant\",\"content\":\"%d\"}]}\n", i, i)
	}
	dataPath := filepath.Join(dir, "sft.jsonl")
	os.WriteFile(dataPath, []byte(b.String()), 0o644)
	runDir := filepath.Join(dir, "run")
	code, msg := run(t, "sft", "--model", base, "--data", dataPath, "--template", "chatml", "--out", runDir,
		"--steps", "4", "--batch", "4", "--ctx", "64", "--rank", "4", "--targets", "q_proj,v_proj", "--peft", peft, "--virtual-tokens", "4", "--bottleneck", "4", "--json")
	if code != 0 {
		t.Fatal(msg)
	}
	adapter := filepath.Join(runDir, "final")
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors"} {
		if _, err := os.Stat(filepath.Join(adapter, f)); err != nil {
			t.Fatal(err)
		}
	}
	code, withAdapter := run(t, "eval", "--model", base, "--adapter", adapter, "--data", dataPath, "--template", "chatml", "--json")
	if code != 0 {
		t.Fatal(withAdapter)
	}
	if code, msg := run(t, "generate", "--model", base, "--adapter", adapter, "--prompt", "say 3", "--max-tokens", "4", "--temperature", "0", "--json"); code != 0 {
		t.Fatal(msg)
	}
	if peft == "lora" {
		// A GGUF base, the adapter as a GGUF adapter and a Modelfile for ollama.
		out := filepath.Join(dir, "gguf", "tiny.gguf")
		if code, msg := run(t, "export", "--model", base, "--adapter", adapter, "--format", "gguf", "--out", out, "--template", "chatml"); code != 0 {
			t.Fatal(msg)
		}
		mfile, err := os.ReadFile(filepath.Join(dir, "gguf", "Modelfile"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"FROM ./tiny.gguf\n", "ADAPTER ./tiny.adapter.gguf\n", "TEMPLATE \"\"\"", "{{ .Prompt }}", "PARAMETER stop \"<|im_end|>\""} {
			if !strings.Contains(string(mfile), want) {
				t.Errorf("Modelfile lacks %q:\n%s", want, mfile)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "gguf", "tiny.adapter.gguf")); err != nil {
			t.Error(err)
		}
	}
	merged := filepath.Join(dir, "merged")
	code, msg = run(t, "merge", "--model", base, "--adapter", adapter, "--out", merged)
	if peft == "prefix" || peft == "prompt" || peft == "adapter" {
		if code != 2 || !strings.Contains(msg, "cannot be folded into the weights") {
			t.Fatalf("merge of %s: exit %d, %q", peft, code, msg)
		}
		return
	}
	if code != 0 {
		t.Fatal(msg)
	}
	code, mergedOut := run(t, "eval", "--model", merged, "--data", dataPath, "--template", "chatml", "--json")
	if code != 0 {
		t.Fatal(mergedOut)
	}
	var a, m struct{ Loss float64 }
	json.Unmarshal([]byte(withAdapter), &a)
	json.Unmarshal([]byte(mergedOut), &m)
	if a.Loss == 0 || math.Abs(a.Loss-m.Loss) > 1e-4 {
		t.Fatalf("base+adapter loss %v, merged %v", a.Loss, m.Loss)
	}
	// Everything written above (the init'ed base with its tokenizer, the
	// run with its checkpoints, the GGUF export and Modelfile, the merged
	// folder) has the usual modes.
	checkModes(t, dir)
}

// TestDemoRuns: the main job's plumbing end to end on the embedded model
// (a few steps; the full run's figures are in the README).
func TestDemoRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("slow end-to-end test")
	}
	out := filepath.Join(t.TempDir(), "demo")
	code, msg := run(t, "demo", "--steps", "3", "--eval", "10", "--out", out, "--json")
	if code != 0 {
		t.Fatal(msg)
	}
	lines := strings.Split(strings.TrimSpace(msg), "\n")
	var last struct {
		Before  *float64 `json:"accuracy_before"`
		After   *float64 `json:"accuracy_after"`
		Adapter string   `json:"adapter"`
	}
	for _, l := range lines {
		if strings.Contains(l, "accuracy_before") {
			json.Unmarshal([]byte(l), &last)
		}
	}
	if last.Before == nil || last.After == nil || last.Adapter == "" {
		t.Fatalf("no summary line:\n%s", msg)
	}
	if _, err := os.Stat(filepath.Join(last.Adapter, "adapter_model.safetensors")); err != nil {
		t.Fatal(err)
	}
}

func TestServePortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	model := filepath.Join(t.TempDir(), "m")
	if code, msg := run(t, "init", "--preset", "tiny", "--out", model); code != 0 {
		t.Fatal(msg)
	}
	code, msg := run(t, "serve", "--model", model, "--addr", l.Addr().String())
	if code != 2 || !strings.Contains(msg, "already in use") {
		t.Fatalf("exit %d: %s", code, msg)
	}
}

// TestServeNeedsKeyOffLoopback: listening beyond loopback without an API
// key is refused before the model loads (exit 2).
func TestServeNeedsKeyOffLoopback(t *testing.T) {
	t.Setenv("LLMLAB_API_KEY", "")
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:8080", "[::]:0"} {
		code, msg := run(t, "serve", "--model", "demo", "--addr", addr)
		if code != 2 || !strings.Contains(msg, "--api-key") {
			t.Errorf("--addr %s: exit %d: %s", addr, code, msg)
		}
	}
	for _, tc := range []struct {
		addr string
		want bool
	}{{"127.0.0.1:8080", true}, {"localhost:1", true}, {"[::1]:80", true}, {"127.3.4.5:9", true},
		{"0.0.0.0:80", false}, {":80", false}, {"example.com:80", false}, {"junk", false}} {
		if got := loopbackAddr(tc.addr); got != tc.want {
			t.Errorf("loopbackAddr(%q) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

// TestServeKeyFromEnv: serve takes its key from LLMLAB_API_KEY, answers
// /health without it and /v1 only with it, and stops on cancel.
func TestServeKeyFromEnv(t *testing.T) {
	t.Setenv("LLMLAB_API_KEY", "k1")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out bytes.Buffer
	go func() {
		done <- Run(ctx, []string{"serve", "--model", "demo", "--addr", addr, "--parallel", "2"}, &out, &out)
	}()
	get := func(path, key string) int {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(30 * time.Second)
	for get("/health", "") != 200 {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("the server never answered /health (exit %d): %s", <-done, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c := get("/v1/models", ""); c != 401 {
		t.Errorf("/v1/models without the key: %d", c)
	}
	if c := get("/v1/models", "k1"); c != 200 {
		t.Errorf("/v1/models with the key: %d", c)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestDPOLearnsPreference: DPO with a LoRA policy starts at log 2 (policy
// equals reference) and lowers the loss on pairs it trains on.
func TestDPOLearnsPreference(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	if code, msg := run(t, "init", "--preset", "tiny", "--out", base); code != 0 {
		t.Fatal(msg)
	}
	var b strings.Builder
	for i := 0; i < 24; i++ {
		fmt.Fprintf(&b, "{\"prompt\":\"q%d\",\"chosen\":\"yes\",\"rejected\":\"no way\"}\n", i)
	}
	dataPath := filepath.Join(dir, "prefs.jsonl")
	os.WriteFile(dataPath, []byte(b.String()), 0o644)
	code, msg := run(t, "dpo", "--model", base, "--data", dataPath, "--template", "chatml", "--out", filepath.Join(dir, "run"),
		"--steps", "12", "--batch", "4", "--ctx", "64", "--lr", "1e-2", "--rank", "4", "--eval-frac", "0", "--json")
	if code != 0 {
		t.Fatal(msg)
	}
	var first, last float64
	for _, line := range strings.Split(msg, "\n") {
		var ev struct {
			Event string
			Step  int
			Loss  float64
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Event == "step" {
			if ev.Step == 1 {
				first = ev.Loss
			}
			last = ev.Loss
		}
	}
	if math.Abs(first-math.Ln2) > 1e-4 || last >= first {
		t.Fatalf("loss %v -> %v: want log 2 at the start, then lower", first, last)
	}
}

// TestRewardModelRanksPairs: a few steps of rm on a clear preference make
// the held-out chosen answers score above the rejected ones, and score
// reads the saved model back.
func TestRewardModelRanksPairs(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	if code, msg := run(t, "init", "--preset", "tiny", "--out", base); code != 0 {
		t.Fatal(msg)
	}
	var b strings.Builder
	for i := 0; i < 60; i++ {
		fmt.Fprintf(&b, "{\"prompt\":\"q%d\",\"chosen\":\"yes please %d\",\"rejected\":\"go away %d\"}\n", i, i, i)
	}
	dataPath := filepath.Join(dir, "prefs.jsonl")
	os.WriteFile(dataPath, []byte(b.String()), 0o644)
	out := filepath.Join(dir, "rm")
	code, msg := run(t, "rm", "--model", base, "--data", dataPath, "--template", "chatml", "--out", out,
		"--steps", "30", "--batch", "4", "--ctx", "64", "--lr", "1e-2", "--rank", "4", "--eval-frac", "0.2", "--json")
	if code != 0 {
		t.Fatal(msg)
	}
	var res struct {
		Acc float64 `json:"heldout_accuracy"`
	}
	for _, line := range strings.Split(msg, "\n") {
		if strings.Contains(line, "heldout_accuracy") {
			json.Unmarshal([]byte(line), &res)
		}
	}
	if res.Acc < 0.7 {
		t.Fatalf("held-out accuracy %v:\n%s", res.Acc, msg)
	}
	code, msg = run(t, "score", "--model", filepath.Join(out, "final"), "--data", dataPath, "--template", "chatml", "--json")
	if code != 0 || !strings.Contains(msg, "\"accuracy\"") {
		t.Fatalf("score: %d %s", code, msg)
	}
}

// TestChatKeepsTheConversation: two turns through the demo model's chat
// template, /reset and /quit.
func TestChatKeepsTheConversation(t *testing.T) {
	var out, errb strings.Builder
	in := strings.NewReader("hello there\nhow are you?\n/reset\nagain\n/quit\n")
	code := RunIO(context.Background(), []string{"chat", "--model", "demo", "--max-tokens", "8", "--temperature", "0"}, in, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if n := strings.Count(out.String(), "> "); n < 4 {
		t.Fatalf("%d prompts shown, want 4:\n%s", n, out.String())
	}
	if n := strings.Count(errb.String(), "tokens/s"); n != 3 {
		t.Fatalf("%d replies reported, want 3:\n%s", n, errb.String())
	}
}

// TestGRPOLearnsToyReward: GRPO raises a verifiable toy reward (answers that
// start with a lowercase letter) on a random tiny model in a few dozen steps.
func TestGRPOLearnsToyReward(t *testing.T) {
	if testing.Short() {
		t.Skip("slow end-to-end test")
	}
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	if code, msg := run(t, "init", "--preset", "tiny", "--out", base); code != 0 {
		t.Fatal(msg)
	}
	var b strings.Builder
	for i := 0; i < 16; i++ {
		fmt.Fprintf(&b, "{\"messages\":[{\"role\":\"user\",\"content\":\"q%d\"},{\"role\":\"assistant\",\"content\":\"a\"}]}\n", i)
	}
	dataPath := filepath.Join(dir, "tasks.jsonl")
	os.WriteFile(dataPath, []byte(b.String()), 0o644)
	code, msg := run(t, "grpo", "--model", base, "--data", dataPath, "--template", "chatml", "--reward", "regex:^[a-z]",
		"--out", filepath.Join(dir, "run"), "--steps", "40", "--prompts", "4", "--group", "8", "--max-tokens", "2", "--modules-to-save", "embed_tokens",
		"--lr", "1e-2", "--beta", "0", "--json")
	if code != 0 {
		t.Fatal(msg)
	}
	var rewards []float64
	for _, line := range strings.Split(msg, "\n") {
		var s struct {
			Step   int     `json:"step"`
			Reward float64 `json:"reward"`
		}
		if json.Unmarshal([]byte(line), &s) == nil && s.Step > 0 {
			rewards = append(rewards, s.Reward)
		}
	}
	if len(rewards) != 40 {
		t.Fatalf("%d steps reported:\n%s", len(rewards), msg)
	}
	mean := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	first, last := mean(rewards[:10]), mean(rewards[30:])
	if last < first+0.3 {
		t.Fatalf("reward %.2f in the first 10 steps, %.2f in the last 10: not learned", first, last)
	}
	t.Logf("reward %.2f -> %.2f", first, last)
}

// TestKTOStartsAtHalfAndLearns: with the policy equal to the reference the
// KTO loss is 0.5; it falls on clearly labelled examples.
func TestKTOStartsAtHalfAndLearns(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	if code, msg := run(t, "init", "--preset", "tiny", "--out", base); code != 0 {
		t.Fatal(msg)
	}
	var b strings.Builder
	for i := 0; i < 24; i++ {
		fmt.Fprintf(&b, "{\"prompt\":\"q%d\",\"completion\":\"yes\",\"label\":true}\n{\"prompt\":\"q%d\",\"completion\":\"no way\",\"label\":false}\n", i, i)
	}
	dataPath := filepath.Join(dir, "kto.jsonl")
	os.WriteFile(dataPath, []byte(b.String()), 0o644)
	code, msg := run(t, "kto", "--model", base, "--data", dataPath, "--template", "chatml", "--out", filepath.Join(dir, "run"),
		"--steps", "12", "--batch", "4", "--ctx", "64", "--lr", "1e-2", "--rank", "4", "--json")
	if code != 0 {
		t.Fatal(msg)
	}
	var first, last float64
	for _, line := range strings.Split(msg, "\n") {
		var ev struct {
			Event string
			Step  int
			Loss  float64
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Event == "step" {
			if ev.Step == 1 {
				first = ev.Loss
			}
			last = ev.Loss
		}
	}
	if math.Abs(first-0.5) > 1e-4 || last >= first {
		t.Fatalf("loss %v -> %v: want 0.5 at the start, then lower", first, last)
	}
}

// TestInvalidUTF8Corpus: invalid bytes in a corpus are replaced and
// reported by default, and an error naming the file and offset with
// --strict-utf8, for both tokenizer training and pretraining.
func TestInvalidUTF8Corpus(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.txt")
	text := strings.Repeat("Once upon a time a fox found a ball.\n\n", 200)
	os.WriteFile(bad, []byte("ok \xff\xfe then "+text), 0o644)
	if code, msg := run(t, "tokenizer", "train", "--data", bad, "--vocab", "300", "--out", filepath.Join(dir, "tk"), "--strict-utf8"); code != 2 || !strings.Contains(msg, "bad.txt: invalid UTF-8 at byte 3") {
		t.Errorf("strict tokenizer train: exit %d, %q", code, msg)
	}
	if code, msg := run(t, "tokenizer", "train", "--data", bad, "--vocab", "300", "--out", filepath.Join(dir, "tk")); code != 0 || !strings.Contains(msg, "replaced with U+FFFD") {
		t.Errorf("tokenizer train: exit %d, %q", code, msg)
	}
	args := []string{"pretrain", "--init", "tiny", "--data", bad, "--steps", "1", "--batch", "1", "--ctx", "16"}
	if code, msg := run(t, append(args, "--out", filepath.Join(dir, "r1"), "--strict-utf8")...); code != 2 || !strings.Contains(msg, "bad.txt: invalid UTF-8 at byte 3") {
		t.Errorf("strict pretrain: exit %d, %q", code, msg)
	}
	if code, msg := run(t, append(args, "--out", filepath.Join(dir, "r2"))...); code != 0 || !strings.Contains(msg, "1 runs of invalid UTF-8 replaced") {
		t.Errorf("pretrain: exit %d, %q", code, msg)
	}
}

func TestBenchTokenize(t *testing.T) {
	code, out := run(t, "bench", "--only", "tokenize", "--quick", "--json")
	if code != 0 || strings.Count(out, `"bench":"tokenize"`) != 2 || !strings.Contains(out, "mb_per_s") {
		t.Fatalf("exit %d, output %q", code, out)
	}
}

// TestBenchServe: the serve group measures one client and concurrent
// streaming clients in one run and reports both figures and their ratios.
func TestBenchServe(t *testing.T) {
	code, out := run(t, "bench", "--only", "serve", "--serve-preset", "tiny", "--serve-clients", "3", "--threads", "1", "--quick", "--json")
	if code != 0 {
		t.Fatalf("exit %d, output %q", code, out)
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &r); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	for _, k := range []string{"tokens_per_s_1", "tokens_per_s_n", "ttft_ms_1", "ttft_ms_n", "tokens_per_s_ratio", "ttft_ratio"} {
		if v, ok := r[k].(float64); !ok || !(v > 0) {
			t.Errorf("%s = %v", k, r[k])
		}
	}
	if r["bench"] != "serve" || r["clients"] != 3.0 {
		t.Errorf("result %v", r)
	}
}

// TestQLoRA: LoRA on an NF4 and an int8 base trains, reports the memory,
// and --quant without a PEFT method is refused.
func TestQLoRA(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	if code, msg := run(t, "init", "--preset", "tiny", "--out", base); code != 0 {
		t.Fatal(msg)
	}
	var b strings.Builder
	for i := 0; i < 40; i++ {
		fmt.Fprintf(&b, "{\"messages\":[{\"role\":\"user\",\"content\":\"say %d\"},{\"role\":\"assistant\",\"content\":\"%d\"}]}\n", i, i)
	}
	dataPath := filepath.Join(dir, "sft.jsonl")
	os.WriteFile(dataPath, []byte(b.String()), 0o644)
	for _, q := range []string{"nf4", "int8"} {
		code, msg := run(t, "sft", "--model", base, "--data", dataPath, "--template", "chatml", "--out", filepath.Join(dir, q),
			"--steps", "3", "--batch", "4", "--ctx", "64", "--rank", "4", "--quant", q, "--json")
		if code != 0 || !strings.Contains(msg, "base quantized to") {
			t.Fatalf("%s: exit %d, %s", q, code, msg)
		}
	}
	code, msg := run(t, "sft", "--model", base, "--data", dataPath, "--template", "chatml", "--out", filepath.Join(dir, "full"),
		"--steps", "1", "--peft", "none", "--quant", "nf4")
	if code != 2 || !strings.Contains(msg, "needs a PEFT method") {
		t.Fatalf("full fine-tune of a quantized base: exit %d, %q", code, msg)
	}
}

// TestSFTWithoutHeldOutSaysSo: a run with nothing held out says so at the
// end instead of printing a held-out loss of 0.
func TestSFTWithoutHeldOutSaysSo(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	if code, msg := run(t, "init", "--preset", "tiny", "--out", base); code != 0 {
		t.Fatal(msg)
	}
	var b strings.Builder
	for i := range 8 {
		fmt.Fprintf(&b, "{\"messages\":[{\"role\":\"user\",\"content\":\"say %d\"},{\"role\":\"assistant\",\"content\":\"%d\"}]}\n", i, i)
	}
	dataPath := filepath.Join(dir, "sft.jsonl")
	os.WriteFile(dataPath, []byte(b.String()), 0o644)
	code, msg := run(t, "sft", "--model", base, "--data", dataPath, "--out", filepath.Join(dir, "run"), "--template", "chatml", "--steps", "1", "--batch", "2", "--ctx", "64", "--eval-frac", "0")
	if code != 0 {
		t.Fatal(msg)
	}
	if strings.Contains(msg, "held-out loss") || !strings.Contains(msg, "no held-out evaluation") {
		t.Errorf("output:\n%s", msg)
	}
}
