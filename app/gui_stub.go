//go:build nogui

package app

import (
	"fmt"
	"os"

	"llmlab/app/cli"
)

// runGUI in a build without the desktop front end (-tags nogui: no cgo,
// for servers) prints the help and exits 2, as the CLI contract says.
func runGUI() int {
	fmt.Fprintln(os.Stderr, "llmlab: this build has no desktop front end (built with -tags nogui); use a subcommand")
	cli.Usage(os.Stderr)
	return 2
}
