//go:build !js

package cli

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"
)

// TestBrowserGGUF drives headless Chromium against `llmlab web`: the user
// picks a GGUF file (the demo model exported at q4_0), the worker reads
// and opens it, and greedy generation in the page, plain and in chat mode
// (the file's own template), gives exactly the ids `llmlab generate` gives
// for the same file; a file that is not GGUF, or one too large for the
// tab, gets a clear error in the page, and the model loaded before stays.
func TestBrowserGGUF(t *testing.T) {
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
	dir := t.TempDir()
	file := filepath.Join(dir, "demo-q4_0.gguf")
	if code, msg := run(t, "export", "--model", "demo", "--quant", "q4_0", "--out", file); code != 0 {
		t.Fatalf("export: %d %s", code, msg)
	}
	notGGUF := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notGGUF, []byte("not a model\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// 1.5 GiB that take no disk: a sparse file with GGUF's magic.
	big := filepath.Join(dir, "big.gguf")
	if err := os.WriteFile(big, []byte("GGUF"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, 3<<29); err != nil {
		t.Fatal(err)
	}
	cli := func(chat bool) []int32 {
		t.Helper()
		args := []string{"generate", "--model", file, "--prompt", "What is 2+3?", "--temperature", "0", "--max-tokens", "32", "--json"}
		if chat {
			args = append(args, "--chat")
		} else {
			args[4] = "Once upon a time"
		}
		code, msg := run(t, args...)
		if code != 0 {
			t.Fatalf("generate: %d %s", code, msg)
		}
		lines := strings.Split(strings.TrimSpace(msg), "\n")
		var res struct {
			IDs []int32 `json:"ids"`
		}
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
			t.Fatal(err)
		}
		return res.IDs
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
	status := func() string {
		st, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("status").textContent`))
		return st
	}
	poll := func(cond, what string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(2*time.Minute))); err != nil {
			t.Fatalf("waiting for %s: %v (status %q)", what, err, status())
		}
	}
	statusIs := func(want string) string {
		return `(document.getElementById("status").textContent === "` + want + `" || document.getElementById("status").textContent.startsWith("error"))`
	}
	poll(statusIs("ready"), "the demo model")
	pick := func(path string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.SetUploadFiles(chromedp.ID("gguf"), []string{path})); err != nil {
			t.Fatal(err)
		}
	}

	// A file that is not GGUF: an error naming it; the demo stays loaded.
	pick(notGGUF)
	poll(`document.getElementById("status").textContent.startsWith("error")`, "the error")
	if st := status(); !strings.Contains(st, "notes.txt is not a GGUF file") {
		t.Errorf("status %q, want the file named as not GGUF", st)
	}
	// One too large for the tab: refused before it is read, with the limit.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { document.getElementById("status").textContent = "picking"; return true })()`)); err != nil {
		t.Fatal(err)
	}
	pick(big)
	poll(`document.getElementById("status").textContent.startsWith("error")`, "the size error")
	if st := status(); !strings.Contains(st, "big.gguf is 1.5 GiB; the browser build opens GGUF files of up to 1.0 GiB") {
		t.Errorf("status %q, want the size and the limit", st)
	}
	model, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("model").textContent`))
	if !strings.Contains(model, "demo") {
		t.Errorf("after the failed loads the page shows %q, want the demo model still", model)
	}

	pick(file)
	poll(`document.getElementById("model").textContent.includes("GGUF") && `+statusIs("ready"), "the GGUF model")
	if st := status(); st != "ready" {
		t.Fatalf("status %q after picking %s", st, file)
	}
	model, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("model").textContent`))
	if !strings.Contains(model, "demo-q4_0 (GGUF, llama Q4_0)") {
		t.Errorf("model line %q", model)
	}
	generate := func(prompt string, chat bool) []int32 {
		t.Helper()
		js := `(() => { const $ = (id) => document.getElementById(id);
			if ($("chat").disabled) return false;
			$("prompt").value = ` + jsString(prompt) + `; $("temperature").value = "0"; $("maxtokens").value = "32";
			$("chat").checked = ` + map[bool]string{true: "true", false: "false"}[chat] + `;
			$("gen").click(); return true })()`
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err != nil || !ok {
			t.Fatalf("generate: chat mode not offered for the GGUF file (%v)", err)
		}
		poll(statusIs("done"), "generation")
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("out").dataset.ids`))
		if err != nil {
			t.Fatal(err)
		}
		var ids []int32
		if err := json.Unmarshal([]byte(raw), &ids); err != nil {
			t.Fatalf("ids %q: %v (status %q)", raw, err, status())
		}
		return ids
	}
	for _, chat := range []bool{false, true} {
		prompt := map[bool]string{false: "Once upon a time", true: "What is 2+3?"}[chat]
		want, got := cli(chat), generate(prompt, chat)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%q (chat %v): ids (-llmlab generate +page):\n%s", prompt, chat, diff)
		}
		tps, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("tps").textContent`))
		t.Logf("%q (chat %v): %d of %d ids as llmlab generate's; %s tokens/s in the page", prompt, chat, agreeing(want, got), len(want), tps)
	}
}

// agreeing counts the leading ids two decodings share.
func agreeing(a, b []int32) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}
