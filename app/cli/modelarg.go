package cli

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"llmlab/core/model"
	"llmlab/core/source"
	"llmlab/core/tensor"
	"llmlab/core/tokenizer"
	"llmlab/lora"
)

// modelFlags are the flags every command that runs a model shares.
type modelFlags struct {
	model, adapter, device string
	threads                int
	warn                   io.Writer // where a device fallback is reported
}

func (f *modelFlags) register(fs *flag.FlagSet, withAdapter bool) {
	fs.StringVar(&f.model, "model", "", "model: an HF folder, a .gguf file, ollama:NAME[:TAG] (ollama's store), or 'demo' for the embedded demo model; llmlab models lists what is found")
	if withAdapter {
		fs.StringVar(&f.adapter, "adapter", "", "PEFT adapter folder to apply")
	}
	fs.StringVar(&f.device, "device", "auto", "compute device: auto, cuda, vulkan, blas (large products through OpenBLAS/MKL/BLIS) or cpu (LLMLAB_CUDA_TF32=1 or LLMLAB_CUDA_BF16=1: CUDA products in TF32 or bfloat16); llmlab devices lists what this machine has")
	f.warn = fs.Output()
	fs.IntVar(&f.threads, "threads", 0, "CPU threads (0: all cores)")
}

// backend returns the compute backend for --device and --threads, open
// until the command ends.
func (f *modelFlags) backend(e *Env) (tensor.Backend, error) {
	if e.flagsOnly {
		return nil, errFlagsOnly
	}
	n := f.threads
	if n <= 0 {
		n = runtime.NumCPU()
	}
	warn := f.warn
	if warn == nil {
		warn = io.Discard
	}
	b, err := e.backend(f.device, n, warn)
	if err != nil {
		return nil, Usagef("%v", err)
	}
	return b, nil
}

// resolveModelDir maps --model to what model.Load and tokenizer.Load
// open: a folder, or a GGUF file ('demo' is the embedded demo model,
// unpacked once into the user cache; ollama:NAME a blob of ollama's store).
func resolveModelDir(arg string) (string, error) {
	if arg == "" {
		return "", Usagef("--model is required (a model folder, a .gguf file, ollama:NAME, or demo)")
	}
	if arg == "demo" {
		return demoModelDir()
	}
	src, err := source.Resolve(arg, source.OllamaDir())
	if err != nil {
		return "", BadInput(fmt.Errorf("--model %s: %w", arg, err))
	}
	return src.Path, nil
}

// loaded is a model with its tokenizer and optional adapter.
type loaded struct {
	// Name is the model as the user gave it (demo, a folder): messages
	// name it so, never by the cache folder demo unpacks into.
	Name    string
	Dir     string
	M       *model.Transformer
	Tok     *tokenizer.Tokenizer
	Adapter *lora.Adapter           // LoRA or DoRA
	IA3     *lora.IA3Adapter        // or IA3
	Prefix  *lora.PrefixAdapter     // or prefix/prompt tuning
	Neck    *lora.BottleneckAdapter // or bottleneck adapters
}

// load resolves and loads --model (and --adapter).
func (f *modelFlags) load(o model.LoadOptions) (*loaded, error) {
	dir, err := resolveModelDir(f.model)
	if err != nil {
		return nil, err
	}
	m, err := model.Load(dir, o)
	if err != nil {
		return nil, BadInput(err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil, BadInput(fmt.Errorf("%s: %w", f.model, err))
	}
	if tok.VocabSize() > m.Cfg.VocabSize {
		return nil, BadInput(fmt.Errorf("%s: the tokenizer has %d tokens but the model's vocab_size is %d", f.model, tok.VocabSize(), m.Cfg.VocabSize))
	}
	l := &loaded{Name: f.model, Dir: dir, M: m, Tok: tok}
	if f.adapter != "" {
		adir := f.adapter
		if adir == "demo" {
			if adir, err = demoAdapterDir(); err != nil {
				return nil, err
			}
		}
		kind, err := lora.PeftType(adir)
		if err != nil {
			return nil, BadInput(err)
		}
		switch kind {
		case "IA3":
			if l.IA3, err = lora.LoadIA3(m, adir); err != nil {
				return nil, BadInput(err)
			}
		case "BOTTLENECK":
			if l.Neck, err = lora.LoadBottleneck(m, adir); err != nil {
				return nil, BadInput(err)
			}
		case "PREFIX_TUNING", "PROMPT_TUNING":
			if l.Prefix, err = lora.LoadPrefix(m, adir); err != nil {
				return nil, BadInput(err)
			}
		default:
			a, err := lora.Load(m, adir)
			if err != nil {
				return nil, BadInput(err)
			}
			l.Adapter = a
		}
	}
	return l, nil
}

// cacheDir is where embedded assets are unpacked.
func cacheDir(name string) (string, error) {
	base, err := os.UserCacheDir()
	if err != nil || base == "" {
		base = os.TempDir()
	}
	return filepath.Join(base, "llmlab", name), nil
}

// mergeAdapter folds a loaded LoRA, DoRA or IA3 adapter into the base
// weights; prefix and prompt tuning have no weights to fold into.
func (l *loaded) mergeAdapter(dir string) error {
	switch {
	case l.Adapter != nil:
		return l.Adapter.Merge()
	case l.IA3 != nil:
		return l.IA3.Merge()
	case l.Prefix != nil:
		return BadInput(fmt.Errorf("%s: %s tuning adds virtual tokens and cannot be folded into the weights; use it with --adapter", dir, l.Prefix.Cfg.Method))
	case l.Neck != nil:
		return BadInput(fmt.Errorf("%s: bottleneck adapters are non-linear and cannot be folded into the weights; use them with --adapter", dir))
	}
	return nil
}

// ollamaParams maps ollama's parameter names to our flags.
var ollamaParams = map[string]string{
	"temperature": "temperature", "top_k": "top-k", "top_p": "top-p", "min_p": "min-p",
	"repeat_penalty": "repetition-penalty", "stop": "stop", "num_predict": "max-tokens", "seed": "seed",
}

// ollamaDefaults gives the flags the user left unset the values of an
// ollama model's params layer, and --system its system layer. Call it
// after parsing, before reading the flags.
func (f *modelFlags) ollamaDefaults(fs *flag.FlagSet) error {
	if !strings.HasPrefix(f.model, "ollama:") {
		return nil
	}
	src, err := source.Resolve(f.model, source.OllamaDir())
	if err != nil {
		return BadInput(fmt.Errorf("--model %s: %w", f.model, err))
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	apply := func(name string, v any) error {
		if set[name] || fs.Lookup(name) == nil {
			return nil
		}
		vals, ok := v.([]any)
		if !ok {
			vals = []any{v}
		}
		for _, x := range vals {
			if err := fs.Set(name, fmt.Sprint(x)); err != nil {
				return BadInput(fmt.Errorf("--model %s: parameter %s %v: %w", f.model, name, x, err))
			}
		}
		return nil
	}
	for k, v := range src.Params {
		if name, ok := ollamaParams[k]; ok {
			if err := apply(name, v); err != nil {
				return err
			}
		}
	}
	if src.System != "" {
		return apply("system", src.System)
	}
	return nil
}
