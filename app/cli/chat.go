package cli

import (
	"bufio"
	"errors"
	"fmt"
	"strings"

	"llmlab/app/serve"
	"llmlab/core/chat"
	"llmlab/core/checkpoint"
	"llmlab/core/data"
	"llmlab/core/generate"
	"llmlab/core/model"
	"llmlab/core/source"
)

// chooseFormat picks the chat format every command renders with, from
// --template (name) and the model:
//   - a built-in template named by --template;
//   - else the model's own Jinja template when its folder ships one
//     (tokenizer_config.json's chat_template or chat_template.jinja),
//     rendered as transformers renders it, with its end-of-turn tokens;
//   - else a GGUF file's own template (tokenizer.chat_template), likewise;
//   - else, for a model that ships none, the built-in Plain template.
//
// The embedded demo model keeps the built-in template its chat_template is
// recognised as (ChatML), so that its results do not change.
func chooseFormat(l *loaded, name string) (chat.Format, error) {
	if name != "" {
		t, err := chat.Parse(name)
		if err != nil {
			return chat.Format{}, BadInput(err)
		}
		return chat.Format{Builtin: t}, nil
	}
	if l.Name == "demo" {
		t, err := chat.Detect(l.Tok.ChatTemplate())
		if err != nil {
			return chat.Format{}, BadInput(fmt.Errorf("%s: %w", l.Name, err))
		}
		return chat.Format{Builtin: t}, nil
	}
	if checkpoint.IsGGUF(l.Dir) { // the template is in the file's metadata
		f, err := source.GGUFChat(l.Tok)
		if err != nil {
			return chat.Format{}, BadInput(fmt.Errorf("%s: %w (pass --template NAME to use a built-in one: %s)", l.Name, err, chat.Names()))
		}
		return f, nil
	}
	m, err := chat.Load(l.Dir)
	if errors.Is(err, chat.ErrNoTemplate) {
		return chat.Format{Builtin: chat.Plain}, nil
	}
	if err != nil {
		return chat.Format{}, BadInput(fmt.Errorf("%s: %w (pass --template NAME to use a built-in one: %s)", l.Name, err, chat.Names()))
	}
	return chat.Format{Own: m}, nil
}

// serveChat renders a chat completion request through f with the
// generation prompt; the server stops on the tokenizer's EOS id and on the
// texts this returns: those of f's end-of-turn tokens.
func serveChat(f chat.Format, v chat.Vocab) serve.ChatFunc {
	_, stops := f.Stops(v)
	return func(msgs []serve.Message) (string, []string, error) {
		cm := make([]chat.Message, len(msgs))
		for i, m := range msgs {
			cm[i] = chat.Message{Role: m.Role, Content: m.Content}
		}
		text, err := f.Text(cm, true)
		return text, stops, err
	}
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
	tmpl, err := chooseFormat(l, *tmplName)
	if err != nil {
		return err
	}
	stopIDs, stops := tmpl.Stops(l.Tok)
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
		ids, err := data.EncodeChatPrompt(l.Tok, tmpl, history)
		if err != nil {
			history = history[:len(history)-1]
			fmt.Fprintln(e.Stderr, err)
			continue
		}
		if len(ids) >= l.M.Cfg.MaxPos-1 {
			fmt.Fprintf(e.Stderr, "the conversation (%d tokens) no longer fits the context of %d; /reset to start over\n", len(ids), l.M.Cfg.MaxPos)
			history = history[:len(history)-1]
			continue
		}
		req := generate.Request{Prompts: [][]int32{ids}, MaxTokens: *maxTok, Sampling: s, Seed: *seed + uint64(turn), StopIDs: stopIDs, StopStrings: stops}
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
