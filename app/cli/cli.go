// Package cli is llmlab's command-line front end: one file per subcommand,
// each parsing its flags into the same typed configs the GUI builds, then
// calling into core, lora and rlhf. Exit codes: 0 done, 1 failed, 2 bad
// usage or bad input.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"llmlab/core/tensor"
	"llmlab/gpu"
)

// Env is what a command gets: its arguments and its output streams.
type Env struct {
	Ctx    context.Context
	Args   []string
	Stdout io.Writer
	Stderr io.Writer
	Stdin  io.Reader // nil: os.Stdin

	// devices are the compute backends the command opened, one per
	// --device and thread count; RunIO closes them when the command ends,
	// so the desktop app, which runs command after command in one
	// process, does not keep a GPU device and its memory per job.
	devices map[deviceKey]openDevice
	parent  *Env // a subcommand's Env opens its devices in its command's

	// flagsOnly makes a training command stop with errFlagsOnly once its
	// flags are parsed and checked, before it opens a device or loads a
	// model; flags is then its FlagSet. `llmlab recipe CMD FLAGS` reads a
	// command's flags this way, so it never keeps a copy of them.
	flagsOnly bool
	flags     *flag.FlagSet
}

// errFlagsOnly stops a command run with Env.flagsOnly.
var errFlagsOnly = errors.New("flags parsed")

// shift returns the Env of a subcommand: the arguments after the first,
// the same context, streams and devices.
func (e *Env) shift() *Env {
	return &Env{Ctx: e.Ctx, Args: e.Args[1:], Stdin: e.Stdin, Stdout: e.Stdout, Stderr: e.Stderr, parent: e}
}

type deviceKey struct {
	device  string
	threads int
}

type openDevice struct {
	b     tensor.Backend
	close func()
}

// backend opens the compute backend for device and threads once per
// command; later calls get the same one.
func (e *Env) backend(device string, threads int, warn io.Writer) (tensor.Backend, error) {
	if e.parent != nil {
		return e.parent.backend(device, threads, warn)
	}
	key := deviceKey{device, threads}
	if d, ok := e.devices[key]; ok {
		return d.b, nil
	}
	b, closeFn, err := gpu.Open(device, threads, warn)
	if err != nil {
		return nil, err
	}
	if e.devices == nil {
		e.devices = map[deviceKey]openDevice{}
	}
	e.devices[key] = openDevice{b, closeFn}
	return b, nil
}

// closeDevices closes the backends the command opened.
func (e *Env) closeDevices() {
	for k, d := range e.devices {
		d.close()
		delete(e.devices, k)
	}
}

type command struct {
	summary string
	run     func(e *Env) error
}

// commands is the dispatch table. It is built on each call: no globals.
func commands() map[string]command {
	return map[string]command{
		"version":   {"print the version", runVersion},
		"init":      {"write a randomly initialised HF model folder from a preset", runInit},
		"devices":   {"list compute backends found and chosen", runDevices},
		"generate":  {"continue a prompt with a model", runGenerate},
		"chat":      {"chat with a model on the terminal", runChat},
		"serve":     {"serve a model over an OpenAI-compatible HTTP API", runServe},
		"bench":     {"print headline speed figures (GEMM, training, generation)", runBench},
		"tokenize":  {"print the token ids of a text", runTokenize},
		"tokenizer": {"train a BPE tokenizer (tokenizer train)", runTokenizer},
		"pretrain":  {"train a model on raw text", runPretrain},
		"sft":       {"instruction-tune a model (full or LoRA)", runSFT},
		"eval":      {"loss and perplexity of a model on a file", runEval},
		"merge":     {"fold a LoRA adapter into its base model", runMerge},
		"dpo":       {"align a model on preference pairs (DPO, cDPO, IPO, hinge, robust)", runDPO},
		"export":    {"write a model as GGUF for llama.cpp and ollama", runExport},
		"models":    {"list the models --model can open (ollama's store, models folders)", runModels},
		"rm":        {"train a reward model on preference pairs", runRM},
		"grpo":      {"improve a policy with GRPO against verifiable rewards", runGRPO},
		"ppo":       {"improve a policy with PPO (value head, KL to the reference) against a reward model, rule or endpoint", runPPO},
		"rlaif":     {"make preference pairs from a policy's answers, judged by a model or an HTTP endpoint", runRLAIF},
		"kto":       {"align a model on unpaired desirable/undesirable examples (KTO)", runKTO},
		"score":     {"score preference pairs with a reward model", runScore},
		"web":       {"serve the browser demo (WebAssembly) from the binary", runWeb},
		"demo":      {"the main job: LoRA fine-tune of the embedded demo model, accuracy before and after", runDemo},
		"data":      {"generate the demo data (data gen --kind stories|instruct|prefs|all)", runData},

		"recipe": {"turn a run (run.json) or a training command's flags into an Axolotl config or a TRL script", runRecipe},

		"align-eval": {"compare a policy with a reference: reward-model win rate, task accuracy, KL", runAlignEval},
	}
}

// Version is llmlab's version string.
const Version = "0.1.0"

// UsageError marks bad usage or bad input: exit code 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError with a formatted message.
func Usagef(format string, a ...any) error { return &UsageError{fmt.Errorf(format, a...)} }

// BadInput wraps err (a file that does not parse, a config that does not
// fit) so that it exits with code 2.
func BadInput(err error) error {
	if err == nil {
		return nil
	}
	return &UsageError{err}
}

// Run executes one subcommand and returns the exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return RunIO(ctx, args, nil, stdout, stderr)
}

// RunIO is Run with an explicit standard input (nil: os.Stdin).
func RunIO(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		Usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmds := commands()
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "llmlab: unknown command %q\n", args[0])
		Usage(stderr)
		return 2
	}
	env := &Env{Ctx: ctx, Args: args[1:], Stdin: stdin, Stdout: stdout, Stderr: stderr}
	err := c.run(env)
	env.closeDevices()
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "llmlab %s: %v\n", args[0], err)
	var ue *UsageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// Usage prints the list of subcommands.
func Usage(w io.Writer) {
	fmt.Fprintln(w, "usage: llmlab <command> [flags]   (no command: the desktop app)")
	fmt.Fprintln(w, "\ncommands:")
	cmds := commands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nrun 'llmlab <command> -h' for its flags")
}

// newFlags returns a FlagSet that reports errors instead of exiting.
func newFlags(e *Env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("llmlab "+name, flag.ContinueOnError)
	fs.SetOutput(e.Stderr)
	e.flags = fs
	return fs
}

// parse parses flags, turning flag errors into usage errors.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &UsageError{err}
	}
	if fs.NArg() > 0 {
		return Usagef("unexpected argument %q", strings.Join(fs.Args(), " "))
	}
	return nil
}

func stdinOf(e *Env) io.Reader {
	if e.Stdin != nil {
		return e.Stdin
	}
	return os.Stdin
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
