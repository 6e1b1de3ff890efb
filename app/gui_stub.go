package app

import (
	"fmt"
	"os"

	"llmlab/app/cli"
)

// runGUI opens the desktop app. Until it exists (and always without a
// display) it prints the help and exits 2, as the CLI contract says.
func runGUI() int {
	fmt.Fprintln(os.Stderr, "llmlab: no desktop front end in this build; use a subcommand")
	cli.Usage(os.Stderr)
	return 2
}
