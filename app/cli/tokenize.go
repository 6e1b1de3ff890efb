package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"llmlab/core/chat"
	"llmlab/core/data"
	"llmlab/core/tokenizer"
)

// runTokenize prints the token ids of a text (with --json, the pieces too).
func runTokenize(e *Env) error {
	fs := newFlags(e, "tokenize")
	modelArg := fs.String("model", "", "model folder whose tokenizer to use, or demo")
	tokFile := fs.String("tokenizer", "", "a tokenizer.json file or folder (instead of --model)")
	text := fs.String("text", "", "text to encode")
	file := fs.String("file", "", "file to encode")
	special := fs.Bool("special", false, "add BOS/EOS as the tokenizer's post-processor says")
	chatFile := fs.String("chat", "", "a JSONL file of conversations ({\"messages\": [...]}) to render through the model's chat template and encode, one line each")
	genPrompt := fs.Bool("add-generation-prompt", false, "with --chat: end each rendering with the text that opens an assistant turn")
	tmplName := fs.String("template", "", "with --chat: a built-in template instead of the model's own ("+chat.Names()+")")
	jsonOut := fs.Bool("json", false, "print {\"ids\":[...],\"pieces\":[...]} (with --chat: {\"text\",\"ids\",\"train_mask\"})")
	if err := parse(fs, e.Args); err != nil {
		return err
	}
	if (*modelArg == "") == (*tokFile == "") {
		return Usagef("give exactly one of --model or --tokenizer")
	}
	inputs := 0
	for _, s := range []string{*text, *file, *chatFile} {
		if s != "" {
			inputs++
		}
	}
	if inputs != 1 {
		return Usagef("give exactly one of --text, --file or --chat")
	}
	if *chatFile == "" && (*genPrompt || *tmplName != "") {
		return Usagef("--add-generation-prompt and --template go with --chat")
	}
	var tk *tokenizer.Tokenizer
	var err error
	dir := *tokFile // where the chat template is looked for
	if *modelArg != "" {
		if dir, err = resolveModelDir(*modelArg); err != nil {
			return err
		}
		tk, err = tokenizer.Load(dir)
		if err != nil {
			return BadInput(err)
		}
	} else if tk, err = loadTokenizerArg(*tokFile); err != nil {
		return BadInput(err)
	}
	if *chatFile != "" {
		if st, err := os.Stat(dir); err == nil && !st.IsDir() {
			dir = filepath.Dir(dir)
		}
		return tokenizeChat(e, tk, dir, *chatFile, *tmplName, *genPrompt, *jsonOut)
	}
	s := *text
	if *file != "" {
		b, err := os.ReadFile(*file)
		if err != nil {
			return BadInput(err)
		}
		s = string(b)
	}
	ids := tk.Encode(s, *special)
	if *jsonOut {
		// pieces are the vocabulary strings ("Ġworld", "▁the", "<0xE4>"),
		// text what each token decodes to on its own.
		pieces, texts := make([]string, len(ids)), make([]string, len(ids))
		for i, id := range ids {
			pieces[i], texts[i] = tk.Piece(id), tk.Decode([]int32{id})
		}
		enc := json.NewEncoder(e.Stdout)
		enc.SetEscapeHTML(false)
		return enc.Encode(map[string]any{"ids": ids, "pieces": pieces, "text": texts, "tokens": len(ids)})
	}
	w := bufio.NewWriter(e.Stdout)
	for i, id := range ids {
		if i > 0 {
			w.WriteByte(' ')
		}
		fmt.Fprint(w, id)
	}
	w.WriteByte('\n')
	return w.Flush()
}

// tokenizeChat renders each conversation of a JSONL file through the
// model's own chat template (or a built-in one) and prints the text, its
// ids (special tokens parsed, none added: the template writes BOS itself
// when the model wants one) and which ids are trained (the assistant
// spans), one line per conversation.
func tokenizeChat(e *Env, tk *tokenizer.Tokenizer, dir, path, tmplName string, gen, jsonOut bool) error {
	var render func([]chat.Message, bool) ([]chat.Segment, error)
	if tmplName != "" {
		t, err := chat.Parse(tmplName)
		if err != nil {
			return BadInput(err)
		}
		render = t.Render
	} else {
		m, err := chat.Load(dir)
		if errors.Is(err, chat.ErrNoTemplate) {
			return BadInput(fmt.Errorf("%w; pass --template NAME (one of %s)", err, chat.Names()))
		}
		if err != nil {
			return BadInput(err)
		}
		render = m.Render
	}
	ds, err := data.LoadJSONL(path)
	if err != nil {
		return BadInput(err)
	}
	out := json.NewEncoder(e.Stdout)
	out.SetEscapeHTML(false)
	w := bufio.NewWriter(e.Stdout)
	for i := range ds.Records {
		r := &ds.Records[i]
		segs, err := render(r.Conversation(), gen)
		if err != nil {
			return BadInput(&data.LineError{File: path, Line: r.Line, Err: err})
		}
		ids, train := data.EncodeJoined(tk, segs)
		if !jsonOut {
			for k, id := range ids {
				if k > 0 {
					w.WriteByte(' ')
				}
				fmt.Fprint(w, id)
			}
			w.WriteByte('\n')
			continue
		}
		var text strings.Builder
		for _, s := range segs {
			text.WriteString(s.Text)
		}
		mask := make([]int, len(train))
		for k, tr := range train {
			if tr {
				mask[k] = 1
			}
		}
		line := struct {
			Text      string  `json:"text"`
			IDs       []int32 `json:"ids"`
			TrainMask []int   `json:"train_mask"`
		}{text.String(), ids, mask}
		if err := out.Encode(line); err != nil {
			return err
		}
	}
	return w.Flush()
}

// runTokenizer handles `tokenizer train`.
func runTokenizer(e *Env) error {
	if len(e.Args) == 0 || e.Args[0] != "train" {
		return Usagef("usage: llmlab tokenizer train --data FILE... --vocab N --out DIR")
	}
	fs := newFlags(e, "tokenizer train")
	var data stringList
	fs.Var(&data, "data", "training text file (repeatable)")
	vocab := fs.Int("vocab", 4096, "vocabulary size (bytes + merges + special tokens)")
	out := fs.String("out", "", "output folder for tokenizer.json (required)")
	specials := fs.String("special", "<|endoftext|>", "comma-separated special tokens; the first is EOS")
	tmpl := fs.String("chat-template", "", "write this built-in chat template into tokenizer_config.json (chatml)")
	jsonOut := fs.Bool("json", false, "print a JSON summary")
	strict := fs.Bool("strict-utf8", false, "fail on invalid UTF-8 (default: replace each invalid run with U+FFFD)")
	if err := parse(fs, e.Args[1:]); err != nil {
		return err
	}
	if len(data) == 0 || *out == "" {
		return Usagef("--data and --out are required")
	}
	var texts []string
	for _, f := range data {
		b, err := os.ReadFile(f)
		if err != nil {
			return BadInput(err)
		}
		if len(b) == 0 {
			return BadInput(fmt.Errorf("%s: empty file", f))
		}
		if !utf8.Valid(b) {
			if *strict {
				return BadInput(fmt.Errorf("%s: invalid UTF-8 at byte %d", f, firstInvalidUTF8(b)))
			}
			fmt.Fprintf(e.Stderr, "%s: invalid UTF-8 replaced with U+FFFD (--strict-utf8 makes this an error)\n", f)
		}
		texts = append(texts, strings.ToValidUTF8(string(b), "\uFFFD"))
	}
	start := time.Now()
	tk, err := tokenizer.Train(chunks(texts), tokenizer.TrainOptions{VocabSize: *vocab, SpecialTokens: splitList(*specials)})
	if err != nil {
		return BadInput(err)
	}
	if sp := splitList(*specials); len(sp) > 0 {
		eos, _ := tk.TokenID(sp[0])
		tk.SetSpecial(-1, eos, -1)
	}
	if *tmpl != "" {
		tm, err := chat.Parse(*tmpl)
		if err != nil {
			return BadInput(err)
		}
		src, err := tm.Jinja()
		if err != nil {
			return BadInput(err)
		}
		tk.SetChatTemplate(src)
	}
	if err := tk.Save(*out); err != nil {
		return err
	}
	el := time.Since(start)
	if *jsonOut {
		return json.NewEncoder(e.Stdout).Encode(map[string]any{"out": *out, "vocab": tk.VocabSize(), "seconds": el.Seconds()})
	}
	fmt.Fprintf(e.Stdout, "wrote %s/tokenizer.json: %d tokens in %.1fs\n", *out, tk.VocabSize(), el.Seconds())
	return nil
}

// chunks yields texts in pieces of about 64 KiB cut at line ends, so
// pre-tokenisation runs in parallel.
func chunks(texts []string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for _, t := range texts {
			for len(t) > 0 {
				n := min(len(t), 1<<16)
				if n < len(t) {
					if i := strings.LastIndexByte(t[:n], '\n'); i > 0 {
						n = i + 1
					}
				}
				if !yield(t[:n]) {
					return
				}
				t = t[n:]
			}
		}
	}
}

// firstInvalidUTF8 returns the offset of the first byte that does not
// start a valid UTF-8 sequence.
func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}
