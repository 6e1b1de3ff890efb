// Command llmlab takes a language model through every stage of its life on
// the user's machine: tokenizer, pretraining, fine-tuning, alignment and
// inference. With no arguments it opens the desktop app; with a subcommand
// it runs headless (see app/cli).
package main

import (
	"os"

	"llmlab/app"
)

func main() { os.Exit(app.Main(os.Args)) }
