package cli

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"

	"llmlab/core/autograd"
	"llmlab/core/data"
	"llmlab/core/model"
)

// runEval reports mean next-token loss and perplexity of a model on a
// file: JSONL {"text"} lines (one sequence each), a plain text file (read
// in context-length windows), or chat/SFT records (loss on completions).
func runEval(e *Env) error {
	fs := newFlags(e, "eval")
	var mf modelFlags
	mf.register(fs, true)
	path := fs.String("data", "", "JSONL or text file (required)")
	tmplName := fs.String("template", "", "chat template for chat/SFT records (default: the model's own)")
	batch := fs.Int("batch", 8, "sequences per forward pass")
	jsonOut := fs.Bool("json", false, "print {\"loss\":…, \"ppl\":…, \"tokens\":…}")
	if err := parse(fs, e.Args); err != nil {
		return err
	}
	if *path == "" {
		return Usagef("--data is required")
	}
	if *batch <= 0 {
		return Usagef("--batch must be positive")
	}
	b, err := mf.backend(e)
	if err != nil {
		return err
	}
	l, err := mf.load(model.LoadOptions{KeepStored: true})
	if err != nil {
		return err
	}
	ctxLen := l.M.Cfg.MaxPos
	var exs []data.Example
	if strings.HasSuffix(*path, ".jsonl") || strings.HasSuffix(*path, ".json") {
		ds, err := data.LoadJSONL(*path)
		if err != nil {
			return BadInput(err)
		}
		if ds.Shape == data.ShapeText {
			for _, r := range ds.Records {
				ids := l.Tok.Encode(r.Text, true)
				if len(ids) > ctxLen {
					ids = ids[:ctxLen]
				}
				if len(ids) < 2 {
					continue
				}
				exs = append(exs, data.Example{IDs: ids, Labels: ids})
			}
		} else {
			tmpl, err := chooseFormat(l, *tmplName)
			if err != nil {
				return err
			}
			if ds.Shape.Pairwise() {
				return BadInput(fmt.Errorf("%s holds preference pairs; eval wants text or SFT records", *path))
			}
			if exs, _, err = data.BuildSFT(l.Tok, ds, data.BuildOpts{Ctx: ctxLen}.With(tmpl)); err != nil {
				return BadInput(err)
			}
		}
	} else {
		raw, err := os.ReadFile(*path)
		if err != nil {
			return BadInput(err)
		}
		ids := l.Tok.Encode(strings.ToValidUTF8(string(raw), "\uFFFD"), true)
		for i := 0; i+1 < len(ids); i += ctxLen - 1 {
			w := ids[i:min(i+ctxLen, len(ids))]
			if len(w) >= 2 {
				exs = append(exs, data.Example{IDs: w, Labels: w})
			}
		}
	}
	if len(exs) == 0 {
		return BadInput(fmt.Errorf("%s: no sequence of at least 2 tokens", *path))
	}
	pad := max(l.Tok.PAD(), 0)
	tp := autograd.NewTape(b)
	tp.NoGrad = true
	var sum float64
	var n int
	// Rows per forward pass: --batch, fewer when the logits (rows x
	// longest x vocabulary floats) would pass logitBudget bytes.
	const logitBudget = 1 << 30
	V := int64(l.M.Cfg.VocabSize)
	for i := 0; i < len(exs); {
		if err := e.Ctx.Err(); err != nil {
			return err
		}
		rows, longest := 0, 0
		for i+rows < len(exs) && rows < *batch {
			width := max(longest, len(exs[i+rows].IDs))
			if rows > 0 && int64(rows+1)*int64(width)*V*4 > logitBudget {
				break
			}
			rows, longest = rows+1, width
		}
		chunk := exs[i : i+rows]
		i += rows
		bt, err := data.Collate(chunk, longest, pad)
		if err != nil {
			return err
		}
		k := bt.Tokens()
		if k == 0 {
			continue
		}
		tp.Reset()
		loss, _, err := l.M.Loss(tp, model.Inputs{B: bt.B, T: bt.T, IDs: bt.IDs, Pos: bt.Pos, Seg: bt.Seg}, bt.Labels)
		if err != nil {
			return err
		}
		sum += float64(loss.Value.At(0)) * float64(k)
		n += k
	}
	if n == 0 {
		return BadInput(fmt.Errorf("%s: no tokens to score", *path))
	}
	loss := sum / float64(n)
	if *jsonOut {
		return json.NewEncoder(e.Stdout).Encode(map[string]any{"loss": loss, "ppl": math.Exp(loss), "tokens": n})
	}
	fmt.Fprintf(e.Stdout, "loss %.4f  perplexity %.2f  over %d tokens\n", loss, math.Exp(loss), n)
	return nil
}
