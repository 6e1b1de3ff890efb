package cli

import "fmt"

func runVersion(e *Env) error {
	fs := newFlags(e, "version")
	if err := parse(fs, e.Args); err != nil {
		return err
	}
	fmt.Fprintln(e.Stdout, "llmlab", Version)
	return nil
}
