package cli

import (
	"encoding/json"
	"fmt"

	"llmlab/core/chat"
	"llmlab/core/data"
	"llmlab/core/generate"
	"llmlab/core/model"
)

// runGenerate continues a prompt with the model, streaming the text. With
// --chat the prompt is a user turn, rendered through the chat format
// (chooseFormat) with the generation prompt, and generation stops at the
// format's end of turn.
func runGenerate(e *Env) error {
	fs := newFlags(e, "generate")
	var mf modelFlags
	mf.register(fs, true)
	prompt := fs.String("prompt", "", "the text to continue (required)")
	maxTok := fs.Int("max-tokens", 128, "new tokens at most")
	temp := fs.Float64("temperature", 0.8, "sampling temperature (0: greedy)")
	topK := fs.Int("top-k", 40, "keep the k most likely tokens (0: off)")
	topP := fs.Float64("top-p", 0.95, "nucleus sampling mass (1: off)")
	minP := fs.Float64("min-p", 0, "drop tokens below min-p times the top probability (0: off)")
	rep := fs.Float64("repetition-penalty", 1, "penalty for tokens already present (1: off)")
	seed := fs.Uint64("seed", 1, "sampling seed")
	var stops stringList
	fs.Var(&stops, "stop", "stop string (repeatable)")
	jsonOut := fs.Bool("json", false, "print one JSON object per line: chunks, then the result")
	asChat := fs.Bool("chat", false, "treat --prompt as a user message and format it with the chat template")
	system := fs.String("system", "", "with --chat: a system prompt")
	tmplName := fs.String("template", "", "with --chat: chat template (default: the model's own): "+chat.Names())
	if err := parse(fs, e.Args); err != nil {
		return err
	}
	if *prompt == "" {
		return Usagef("--prompt is required")
	}
	if !*asChat && (*system != "" || *tmplName != "") {
		return Usagef("--system and --template go with --chat")
	}
	// An ollama model's layers fill in the flags the user left alone; its
	// system prompt only applies to a chat-formatted prompt.
	if err := mf.ollamaDefaults(fs); err != nil {
		return err
	}
	if !*asChat {
		*system = ""
	}
	s := generate.Sampling{Temperature: *temp, TopK: *topK, TopP: *topP, MinP: *minP, RepetitionPenalty: *rep}
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
	ids, stopIDs, stops, err := generatePrompt(l, *prompt, *asChat, *system, *tmplName, stops)
	if err != nil {
		return err
	}
	g := generate.New(l.M, b, l.Tok)
	req := generate.Request{Prompts: [][]int32{ids}, MaxTokens: *maxTok, Sampling: s, Seed: *seed, StopIDs: stopIDs, StopStrings: stops}
	enc := json.NewEncoder(e.Stdout)
	req.OnText = func(_ int, text string) bool {
		if *jsonOut {
			return enc.Encode(map[string]string{"chunk": text}) == nil
		}
		fmt.Fprint(e.Stdout, text)
		return true
	}
	if !*jsonOut && !*asChat {
		fmt.Fprint(e.Stdout, *prompt)
	}
	res, err := g.Generate(e.Ctx, req)
	if err != nil {
		return err
	}
	if *jsonOut {
		return enc.Encode(map[string]any{
			"text": res.Text[0], "ids": res.IDs[0], "tokens": res.Tokens,
			"tokens_per_s": res.TokensPerSecond(), "finish_reason": res.Finish[0],
		})
	}
	fmt.Fprintf(e.Stderr, "\n[%d tokens, %.1f tokens/s, %s]\n", res.Tokens, res.TokensPerSecond(), res.Finish[0])
	fmt.Fprintln(e.Stdout)
	return nil
}

// generatePrompt returns the prompt's ids and what stops generation: the
// text as given (with the tokenizer's BOS, stopping at EOS and at the
// --stop strings), or with asChat a user turn (after an optional system
// prompt) rendered through the chat format, stopping at its end of turn too.
func generatePrompt(l *loaded, prompt string, asChat bool, system, tmplName string, extra []string) (ids, stopIDs []int32, stops []string, err error) {
	if !asChat {
		ids = l.Tok.Encode(prompt, true)
		if len(ids) == 0 {
			return nil, nil, nil, BadInput(fmt.Errorf("the prompt encodes to no tokens"))
		}
		// Generation must not end on an EOS that the post-processor appended.
		if eos := l.Tok.EOS(); eos >= 0 && len(ids) > 1 && ids[len(ids)-1] == eos {
			ids = ids[:len(ids)-1]
		}
		if eos := l.Tok.EOS(); eos >= 0 {
			stopIDs = []int32{eos}
		}
		return ids, stopIDs, extra, nil
	}
	f, err := chooseFormat(l, tmplName)
	if err != nil {
		return nil, nil, nil, err
	}
	var msgs []chat.Message
	if system != "" {
		msgs = append(msgs, chat.Message{Role: chat.RoleSystem, Content: system})
	}
	msgs = append(msgs, chat.Message{Role: chat.RoleUser, Content: prompt})
	if ids, err = data.EncodeChatPrompt(l.Tok, f, msgs); err != nil {
		return nil, nil, nil, BadInput(err)
	}
	stopIDs, stops = f.Stops(l.Tok)
	return ids, stopIDs, append(stops, extra...), nil
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return fmt.Sprint(*s) }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
