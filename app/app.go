// Package app chooses the front end: the GUI when llmlab is started with no
// arguments, the CLI otherwise.
package app

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"llmlab/app/cli"
)

// Main runs llmlab with the process arguments and returns the exit code.
func Main(args []string) int {
	if len(args) <= 1 {
		return runGUI()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return cli.Run(ctx, args[1:], os.Stdout, os.Stderr)
}
