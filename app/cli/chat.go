package cli

import (
	"bufio"
	"fmt"
	"strings"

	"llmlab/core/chat"
	"llmlab/core/generate"
	"llmlab/core/model"
)

// chooseTemplate returns --template if given, else the template the
// model's tokenizer_config.json declares.
func chooseTemplate(l *loaded, name string) (chat.Template, error) {
	if name != "" {
		t, err := chat.Parse(name)
		if err != nil {
			return 0, BadInput(err)
		}
		return t, nil
	}
	t, err := chat.Detect(l.Tok.ChatTemplate())
	if err != nil {
		return 0, BadInput(fmt.Errorf("%s: %w", l.Name, err))
	}
	return t, nil
}

// runChat is an interactive conversation on the terminal: each line you
// type is a user turn; the reply streams back. /reset clears the history,
// /quit (or end of input) leaves.
func runChat(e *Env) error {
	fs := newFlags(e, "chat")
	var mf modelFlags
	mf.register(fs, true)
	tmplName := fs.String("template", "", "chat template (default: the model's own): "+chat.Names())
	system := fs.String("system", "", "system prompt")
	maxTok := fs.Int("max-tokens", 256, "new tokens per reply at most")
	temp := fs.Float64("temperature", 0.7, "sampling temperature (0: greedy)")
	topK := fs.Int("top-k", 40, "top-k (0: off)")
	topP := fs.Float64("top-p", 0.95, "top-p (1: off)")
	seed := fs.Uint64("seed", 1, "sampling seed")
	if err := parse(fs, e.Args); err != nil {
		return err
	}
	if err := mf.ollamaDefaults(fs); err != nil {
		return err
	}
	s := generate.Sampling{Temperature: *temp, TopK: *topK, TopP: *topP}
	if err := s.Validate(); err != nil {
		return BadInput(err)
	}
	b, err := mf.backend(e)
	if err != nil {
		return err
	}
	l, err := mf.load(model.LoadOptions{KeepStored: true})
	if err != nil {
		return err
	}
	tmpl, err := chooseTemplate(l, *tmplName)
	if err != nil {
		return err
	}
	g := generate.New(l.M, b, l.Tok)
	var history []chat.Message
	if *system != "" {
		history = append(history, chat.Message{Role: chat.RoleSystem, Content: *system})
	}
	in := bufio.NewScanner(stdinOf(e))
	in.Buffer(make([]byte, 1<<20), 1<<20)
	fmt.Fprintf(e.Stderr, "chatting with %s (template %s); /reset clears, /quit leaves\n", l.Name, tmpl)
	for turn := 0; ; turn++ {
		fmt.Fprint(e.Stdout, "> ")
		if !in.Scan() {
			fmt.Fprintln(e.Stdout)
			return in.Err()
		}
		line := strings.TrimSpace(in.Text())
		switch line {
		case "":
			continue
		case "/quit", "/exit":
			return nil
		case "/reset":
			history = history[:0]
			if *system != "" {
				history = append(history, chat.Message{Role: chat.RoleSystem, Content: *system})
			}
			continue
		}
		history = append(history, chat.Message{Role: chat.RoleUser, Content: line})
		prompt, err := tmpl.Text(history, true)
		if err != nil {
			history = history[:len(history)-1]
			fmt.Fprintln(e.Stderr, err)
			continue
		}
		ids := l.Tok.Encode(prompt, false)
		if len(ids) >= l.M.Cfg.MaxPos-1 {
			fmt.Fprintf(e.Stderr, "the conversation (%d tokens) no longer fits the context of %d; /reset to start over\n", len(ids), l.M.Cfg.MaxPos)
			history = history[:len(history)-1]
			continue
		}
		req := generate.Request{Prompts: [][]int32{ids}, MaxTokens: *maxTok, Sampling: s, Seed: *seed + uint64(turn), StopStrings: tmpl.StopStrings()}
		if eos := l.Tok.EOS(); eos >= 0 {
			req.StopIDs = []int32{eos}
		}
		req.OnText = func(_ int, text string) bool { fmt.Fprint(e.Stdout, text); return true }
		res, err := g.Generate(e.Ctx, req)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.Stdout, "\n")
		fmt.Fprintf(e.Stderr, "[%d tokens, %.1f tokens/s]\n", res.Tokens, res.TokensPerSecond())
		history = append(history, chat.Message{Role: chat.RoleAssistant, Content: strings.TrimSpace(res.Text[0])})
	}
}
