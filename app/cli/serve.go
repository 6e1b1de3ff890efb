package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
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
	queue := fs.Int("queue", 8, "requests allowed to wait; more get 429")
	maxBody := fs.Int64("max-body", 1<<20, "largest request body in bytes")
	if err := parse(fs, e.Args); err != nil {
		return err
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
	s := serve.New(serve.Config{ModelID: id, Model: l.M, Tok: l.Tok, Backend: b, Chat: chatFn, QueueSize: *queue, MaxBody: *maxBody})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return BadInput(fmt.Errorf("%s is already in use; pick another --addr", *addr))
		}
		return BadInput(fmt.Errorf("cannot listen on %s: %w", *addr, err))
	}
	fmt.Fprintf(e.Stderr, "serving %s on http://%s/v1 (Ctrl-C to stop)\n", id, ln.Addr())
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
