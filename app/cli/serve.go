package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"llmlab/app/serve"
	"llmlab/core/chat"
	"llmlab/core/model"
)

// runServe serves the model over an OpenAI-compatible HTTP API until
// interrupted (SIGINT or SIGTERM), then drains and exits.
func runServe(e *Env) error {
	fs := newFlags(e, "serve")
	var mf modelFlags
	mf.register(fs, true)
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on (loopback by default)")
	tmplName := fs.String("template", "", "chat template (default: the model's own): "+chat.Names())
	parallel := fs.Int("parallel", 4, "requests decoded together (continuous batching)")
	queue := fs.Int("queue", 8, "requests allowed to wait beyond the running ones; more get 429")
	maxBody := fs.Int64("max-body", 1<<20, "largest request body in bytes")
	ctxLen := fs.Int("ctx", 0, "most tokens of one request, prompt and reply (0: the model's context, at most 4096); each --parallel slot keeps a KV cache this long")
	apiKey := fs.String("api-key", "", "require \"Authorization: Bearer KEY\" on /v1 routes (default: $LLMLAB_API_KEY); needed off loopback")
	if err := parse(fs, e.Args); err != nil {
		return err
	}
	if *parallel < 1 || *parallel > 256 {
		return BadInput(fmt.Errorf("--parallel must be between 1 and 256, got %d", *parallel))
	}
	if *ctxLen < 0 {
		return BadInput(fmt.Errorf("--ctx must be positive, got %d", *ctxLen))
	}
	if *queue < 1 {
		return BadInput(fmt.Errorf("--queue must be at least 1, got %d", *queue))
	}
	if *apiKey == "" {
		*apiKey = os.Getenv("LLMLAB_API_KEY")
	}
	if *apiKey == "" && !loopbackAddr(*addr) {
		return BadInput(fmt.Errorf("--addr %s is reachable from other machines: set --api-key KEY (or LLMLAB_API_KEY) so only clients with the key get in, or listen on 127.0.0.1", *addr))
	}
	b, err := mf.backend(e)
	if err != nil {
		return err
	}
	l, err := mf.load(model.LoadOptions{KeepStored: true})
	if err != nil {
		return err
	}
	var chatFn serve.ChatFunc
	if tmpl, err := chooseFormat(l, *tmplName); err == nil {
		chatFn = serveChat(tmpl, l.Tok)
	} else {
		fmt.Fprintf(e.Stderr, "llmlab serve: chat completions disabled: %v\n", err)
	}
	id := filepath.Base(filepath.Clean(l.Dir))
	if mf.model == "demo" {
		id = "demo"
	}
	s := serve.New(serve.Config{ModelID: id, Model: l.M, Tok: l.Tok, Backend: b, Chat: chatFn,
		Parallel: *parallel, QueueSize: *queue, MaxBody: *maxBody, APIKey: *apiKey, Context: *ctxLen})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return BadInput(fmt.Errorf("%s is already in use; pick another --addr", *addr))
		}
		return BadInput(fmt.Errorf("cannot listen on %s: %w", *addr, err))
	}
	auth := "no API key"
	if *apiKey != "" {
		auth = "API key required"
	}
	fmt.Fprintf(e.Stderr, "serving %s on http://%s/v1 (%d in parallel, %s; Ctrl-C to stop)\n", id, ln.Addr(), *parallel, auth)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-e.Ctx.Done():
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		return err
	}
	return <-done
}

// loopbackAddr reports whether addr (host:port) listens only on this
// machine: a loopback IP or "localhost". An empty host means every
// interface.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
