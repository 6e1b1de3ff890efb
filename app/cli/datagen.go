package cli

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"llmlab/core/data/demo"
)

// runData dispatches `llmlab data <sub>`; today only gen.
func runData(e *Env) error {
	if len(e.Args) == 0 || e.Args[0] != "gen" {
		if len(e.Args) > 0 && (e.Args[0] == "-h" || e.Args[0] == "--help") {
			fmt.Fprintln(e.Stdout, "usage: llmlab data gen --kind stories|instruct|prefs|all --out FILE|DIR [--seed N]")
			return flag.ErrHelp
		}
		return Usagef("usage: llmlab data gen --kind stories|instruct|prefs|all --out FILE|DIR [--seed N]")
	}
	return runDataGen(e.shift())
}

// runDataGen writes the demo data the binary embeds, or more of it with
// another seed or size.
//
//	stories:  --out FILE (.gz: gzipped), --bytes N
//	instruct: --out TRAIN.jsonl, --eval EVAL.jsonl (default: "train" -> "eval" in the name), --n, --n-eval,
//	          --more MORE.jsonl (default: "train" -> "more"), --n-more (0: none),
//	          --sloppy PCT: that share of the training replies rude or rambling (demo.Sloppy)
//	prefs:    the same prompts as instruct with that seed; --out PREFS_TRAIN, --eval PREFS_EVAL, --kto KTO_TRAIN
//	all:      --out DIR: every embedded file, as in assets/data
func runDataGen(e *Env) error {
	fs := newFlags(e, "data gen")
	kind := fs.String("kind", "", "stories, instruct, prefs or all")
	out := fs.String("out", "", "output file (a directory for --kind all)")
	seed := fs.Uint64("seed", demo.DefaultSeed, "random seed (the embedded data uses 1)")
	evalOut := fs.String("eval", "", "held-out output for instruct/prefs (default: derived from --out)")
	ktoOut := fs.String("kto", "", "KTO output for prefs (default: derived from --out)")
	nTrain := fs.Int("n", demo.NumTrain, "training examples (instruct, prefs)")
	nEval := fs.Int("n-eval", demo.NumEval, "held-out examples (instruct, prefs)")
	moreOut := fs.String("more", "", "output for the extra training instructions (instruct; default: derived from --out)")
	nMore := fs.Int("n-more", 0, "extra training instructions, prompts disjoint from both splits (instruct; 0: none)")
	sloppy := fs.Int("sloppy", 0, "instruct: percent of the training replies (--out and --more, never --eval) said rudely or buried in rambling, the answer kept in \"answer\" and the kind in \"style\": SFT data with habits for alignment to remove")
	size := fs.Int("bytes", demo.StoryBytes, "approximate size of the story text (stories)")
	asJSON := fs.Bool("json", false, "print one JSON object per file written")
	if err := parse(fs, e.Args); err != nil {
		return err
	}
	if *out == "" {
		return Usagef("--out is required")
	}
	if *nTrain < 1 || *nEval < 0 || *nMore < 0 || *size < 1 {
		return Usagef("--n %d, --n-eval %d, --n-more %d and --bytes %d must be positive", *nTrain, *nEval, *nMore, *size)
	}
	if *sloppy < 0 || *sloppy > 100 {
		return Usagef("--sloppy %d: want a percentage, 0 to 100", *sloppy)
	}
	if *sloppy > 0 && *kind != "instruct" {
		return Usagef("--sloppy applies to --kind instruct only")
	}
	files := map[string][]byte{}
	switch *kind {
	case "stories":
		var b bytes.Buffer
		if strings.HasSuffix(*out, ".gz") {
			zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
			if err := demo.WriteStories(zw, *seed, *size); err != nil {
				return err
			}
			if err := zw.Close(); err != nil {
				return err
			}
		} else if err := demo.WriteStories(&b, *seed, *size); err != nil {
			return err
		}
		files[*out] = b.Bytes()
	case "instruct", "prefs":
		train, eval := demo.Instruct(*seed, *nTrain, *nEval)
		ev := *evalOut
		if ev == "" {
			ev = derive(*out, "train", "eval")
		}
		var tb, eb bytes.Buffer
		if *kind == "instruct" {
			if err := demo.WriteInstruct(&tb, demo.Sloppy(*seed, train, *sloppy)); err != nil {
				return err
			}
			if err := demo.WriteInstruct(&eb, eval); err != nil {
				return err
			}
			if *nMore > 0 {
				m := *moreOut
				if m == "" {
					m = derive(*out, "train", "more")
				}
				if m == *out || m == ev {
					return Usagef("the extra output %s collides with another output; give --more FILE", m)
				}
				var mb bytes.Buffer
				more := demo.Sloppy(*seed+1, demo.InstructMore(*seed, *nMore, nil, train, eval), *sloppy)
				if err := demo.WriteInstruct(&mb, more); err != nil {
					return err
				}
				files[m] = mb.Bytes()
			}
		} else {
			ps := demo.Prefs(*seed, train)
			if err := demo.WritePrefs(&tb, ps); err != nil {
				return err
			}
			if err := demo.WritePrefs(&eb, demo.Prefs(*seed+1, eval)); err != nil {
				return err
			}
			var kb bytes.Buffer
			if err := demo.WriteKTO(&kb, ps); err != nil {
				return err
			}
			k := *ktoOut
			if k == "" {
				k = derive(*out, "prefs", "kto")
			}
			if k == *out || k == ev {
				return Usagef("the KTO output %s collides with another output; give --kto FILE", k)
			}
			files[k] = kb.Bytes()
		}
		if ev == *out {
			return Usagef("the held-out output %s is the same as --out; give --eval FILE", ev)
		}
		files[*out] = tb.Bytes()
		if *nEval > 0 {
			files[ev] = eb.Bytes()
		}
	case "all":
		all, err := demo.Files(*seed)
		if err != nil {
			return err
		}
		for name, b := range all {
			files[filepath.Join(*out, name)] = b
		}
	default:
		return Usagef("--kind %q: want stories, instruct, prefs or all", *kind)
	}
	names := sortedNames(files)
	if *kind == "all" {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
	}
	for _, name := range names {
		if err := demo.WriteFileAtomic(name, files[name]); err != nil {
			return err
		}
		if *asJSON {
			b, _ := json.Marshal(map[string]any{"file": name, "bytes": len(files[name]), "kind": *kind, "seed": *seed})
			fmt.Fprintln(e.Stdout, string(b))
		} else {
			fmt.Fprintf(e.Stdout, "wrote %s (%d bytes)\n", name, len(files[name]))
		}
	}
	return nil
}

// derive names a sibling output: "x_train.jsonl" -> "x_eval.jsonl"; without
// the word, "x.jsonl" -> "x_eval.jsonl".
func derive(out, word, repl string) string {
	dir, base := filepath.Split(out)
	if strings.Contains(base, word) {
		return dir + strings.Replace(base, word, repl, 1)
	}
	ext := filepath.Ext(base)
	return dir + strings.TrimSuffix(base, ext) + "_" + repl + ext
}

func sortedNames(m map[string][]byte) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
