package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"llmlab/app/web"
	"llmlab/assets"
)

// runWeb serves the browser demo (page, WebAssembly engine, demo model and
// adapter) from the binary, offline, until interrupted.
func runWeb(e *Env) error {
	fs := newFlags(e, "web")
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on")
	dir := fs.String("dir", "", "serve the page files from this folder instead of the embedded ones (development)")
	if err := parse(fs, e.Args); err != nil {
		return err
	}
	s := &web.Server{Page: assets.Web(), Model: assets.DemoModel(), Adapter: assets.DemoAdapter(), Data: assets.WebData()}
	if *dir != "" {
		s.Page = os.DirFS(*dir)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return BadInput(fmt.Errorf("%s is already in use; pick another --addr", *addr))
		}
		return BadInput(err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(e.Stderr, "llmlab browser demo on http://%s/ (Ctrl-C to stop)\n", ln.Addr())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-e.Ctx.Done():
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(ctx)
}
