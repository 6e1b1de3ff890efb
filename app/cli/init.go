package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"llmlab/core/checkpoint"
	"llmlab/core/model"
	"llmlab/core/tokenizer"
)

// runInit writes a randomly initialised HF model folder from a preset or a
// config.json, with a byte-level tokenizer unless --tokenizer names one.
func runInit(e *Env) error {
	fs := newFlags(e, "init")
	arch := fs.String("arch", "llama", "parameter layout: gpt2 or llama (a family preset such as qwen3-0.6b keeps its own family with llama)")
	preset := fs.String("preset", "", "named shape: "+fmt.Sprint(model.PresetNames()))
	cfgFile := fs.String("config", "", "an HF config.json to use instead of a preset")
	out := fs.String("out", "", "output folder (required)")
	seed := fs.Uint64("seed", 1, "random seed for the initial weights")
	tokDir := fs.String("tokenizer", "", "folder or tokenizer.json whose vocabulary the model uses (default: byte-level, 257 tokens, for presets with a small vocabulary)")
	jsonOut := fs.Bool("json", false, "print a JSON summary")
	if err := parse(fs, e.Args); err != nil {
		return err
	}
	if *out == "" {
		return Usagef("--out is required")
	}
	if (*preset == "") == (*cfgFile == "") {
		return Usagef("give exactly one of --preset or --config")
	}
	var cfg model.Config
	var err error
	if *preset != "" {
		a, err := model.ParseArch(*arch)
		if err != nil {
			return BadInput(err)
		}
		if cfg, err = model.Preset(a, *preset); err != nil {
			return BadInput(err)
		}
	} else {
		data, err := os.ReadFile(*cfgFile)
		if err != nil {
			return BadInput(err)
		}
		if cfg, err = model.ParseConfig(data); err != nil {
			return BadInput(fmt.Errorf("%s: %w", *cfgFile, err))
		}
	}
	var tok *tokenizer.Tokenizer
	if *tokDir != "" {
		tok, err = loadTokenizerArg(*tokDir)
	} else {
		tok, err = tokenizer.FromJSON(tokenizer.ByteLevelJSON())
	}
	if err != nil {
		return BadInput(err)
	}
	if *tokDir != "" {
		cfg.VocabSize = tok.VocabSize()
	} else if cfg.VocabSize < tok.VocabSize() {
		return BadInput(fmt.Errorf("vocab_size %d is smaller than the tokenizer's %d", cfg.VocabSize, tok.VocabSize()))
	}
	cfg.BOS, cfg.EOS = int(tok.BOS()), int(tok.EOS())
	m, err := model.New(cfg, *seed)
	if err != nil {
		return BadInput(err)
	}
	if err := m.Save(*out, model.SaveOptions{}); err != nil {
		return err
	}
	if err := tok.Save(*out); err != nil {
		return err
	}
	gen, _ := json.MarshalIndent(map[string]any{"bos_token_id": cfg.BOS, "eos_token_id": cfg.EOS}, "", "  ")
	if err := checkpoint.WriteFileAtomic(filepath.Join(*out, "generation_config.json"), append(gen, '\n'), 0o644); err != nil {
		return err
	}
	if *jsonOut {
		return json.NewEncoder(e.Stdout).Encode(map[string]any{"out": *out, "arch": cfg.Arch.String(), "model_type": cfg.ModelType, "params": m.NumParams(), "vocab": cfg.VocabSize})
	}
	fmt.Fprintf(e.Stdout, "wrote %s: %s, %s parameters, vocabulary %d\n", *out, cfg.ModelType, human(m.NumParams()), cfg.VocabSize)
	return nil
}

// loadTokenizerArg loads a tokenizer from a folder, a tokenizer.json file
// or a SentencePiece .model file.
func loadTokenizerArg(path string) (*tokenizer.Tokenizer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return tokenizer.Load(path)
	}
	if strings.HasSuffix(path, ".model") {
		return tokenizer.LoadSentencePiece(path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := tokenizer.FromJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// human formats a count as 1.2K, 3.4M, 1.1B.
func human(n int) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}
