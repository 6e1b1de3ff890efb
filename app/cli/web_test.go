//go:build !js

package cli

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"llmlab/core/generate"
	"llmlab/core/model"
	"llmlab/core/tensor"
	"llmlab/core/tokenizer"
)

// buildBinary builds the real llmlab binary with the browser engine
// embedded, as `make build` does: the wasm and Go's wasm_exec.js are
// written to assets/web (both git-ignored build outputs) first.
func buildBinary(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	web := filepath.Join(root, "assets", "web")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s", "-o", filepath.Join(web, "llmlab.wasm"), "./wasm")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the wasm engine: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(runtime.GOROOT(), "lib", "wasm", "wasm_exec.js"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(web, "wasm_exec.js"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "llmlab")
	// The CLI build: the test needs `llmlab web`, not the desktop app.
	cmd = exec.Command("go", "build", "-tags", "nogui", "-o", bin, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building llmlab: %v\n%s", err, out)
	}
	return bin
}

// startWeb runs `llmlab web` on a free loopback port and returns its URL.
func startWeb(t *testing.T, bin string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "web", "--addr", addr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "http://" + addr
		}
	}
	t.Fatal("llmlab web did not start listening")
	return ""
}

// TestBrowserDemo drives headless Chromium against the bare binary's
// `llmlab web`: the page loads the demo model in its worker, greedy
// generation gives exactly the tokens native generation gives, the adapter
// switch changes the output, tokens/s is shown, and "tune it here" runs.
func TestBrowserDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("slow end-to-end test")
	}
	browser := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			browser = p
			break
		}
	}
	if browser == "" {
		t.Skip("no Chromium installed (Debian: apt-get install chromium); skipping the browser test")
	}
	url := startWeb(t, buildBinary(t))

	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(browser), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()), chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true)}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	defer cancelT()

	if _, err := chromedp.Run(ctx, chromedp.Navigate(url+"/")); err != nil {
		t.Fatal(err)
	}
	wait := func(want string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("status").textContent === "`+want+`" || document.getElementById("status").textContent.startsWith("error")`, chromedp.WithPollingTimeout(2*time.Minute))); err != nil {
			t.Fatalf("waiting for %q: %v", want, err)
		}
		st, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("status").textContent`))
		if st != want {
			t.Fatalf("page status %q, want %q", st, want)
		}
	}
	wait("ready")
	const prompt = "Once upon a time"
	generateIDs := func() []int32 {
		t.Helper()
		js := `(() => { const $ = (id) => document.getElementById(id);
			$("prompt").value = ` + jsString(prompt) + `; $("temperature").value = "0"; $("maxtokens").value = "32";
			$("gen").click(); return true })()`
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js)); err != nil {
			t.Fatal(err)
		}
		wait("done")
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("out").dataset.ids`))
		if err != nil {
			t.Fatal(err)
		}
		var ids []int32
		if err := json.Unmarshal([]byte(raw), &ids); err != nil {
			t.Fatalf("ids %q: %v", raw, err)
		}
		return ids
	}
	got := generateIDs()

	// The same prompt natively.
	mdir, err := demoModelDir()
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(mdir, model.LoadOptions{KeepStored: true})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(mdir)
	if err != nil {
		t.Fatal(err)
	}
	pids := tok.Encode(prompt, true)
	res, err := generate.New(m, tensor.NewCPU(2), tok).Generate(context.Background(), generate.Request{
		Prompts: [][]int32{pids}, MaxTokens: 32, StopIDs: []int32{tok.EOS()}})
	if err != nil {
		t.Fatal(err)
	}
	want := res.IDs[0]
	if len(got) != len(want) {
		t.Fatalf("browser generated %d tokens %v, native %d %v", len(got), got, len(want), want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("token %d: browser %d, native %d\nbrowser %v\nnative  %v", i, got[i], want[i], got, want)
		}
	}
	tps, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("tps").textContent`))
	if err != nil || tps == "" {
		t.Fatalf("no tokens/s shown: %q %v", tps, err)
	}
	t.Logf("browser: %s tokens/s, native %.1f tokens/s", tps, res.TokensPerSecond())

	// The adapter switch changes what the model says.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const a = document.getElementById("adapter"); if (a.disabled) return false; a.click(); return true })()`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	tuned := generateIDs()
	same := len(tuned) == len(got)
	for i := 0; same && i < len(got); i++ {
		same = tuned[i] == got[i]
	}
	if same {
		t.Fatal("switching the adapter on did not change the output")
	}

	// "Tune it here": a short LoRA fine-tune in the page draws its loss
	// curve, then generation uses the tuned adapter.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const $ = (id) => document.getElementById(id);
		$("tunesteps").value = "6"; $("tune").click(); return true })()`)); err != nil {
		t.Fatal(err)
	}
	wait("tuned")
	points, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("chart").dataset.points`))
	if err != nil || points != "6" {
		t.Fatalf("loss chart has %q points, want 6 (%v)", points, err)
	}
	if ids := generateIDs(); len(ids) == 0 {
		t.Fatal("no tokens after tuning")
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
