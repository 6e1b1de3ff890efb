package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/ardanlabs/jinja"
)

// ErrNoTemplate is returned (wrapped) when a model ships no chat template.
var ErrNoTemplate = errors.New("the model has no chat template")

// Specials are the special tokens' texts a chat template may use, as
// tokenizer_config.json names them (bos_token, eos_token...). Empty ones
// are left undefined for the template, as transformers leaves them.
type Specials struct {
	BOS, EOS, UNK, PAD, SEP, CLS, Mask string
}

func (s Specials) vars(m map[string]jinja.Value) {
	for k, v := range map[string]string{
		"bos_token": s.BOS, "eos_token": s.EOS, "unk_token": s.UNK, "pad_token": s.PAD,
		"sep_token": s.SEP, "cls_token": s.CLS, "mask_token": s.Mask,
	} {
		if v != "" {
			m[k] = jinja.NewString(v)
		}
	}
}

// Model is a model's own chat template: its Jinja source, compiled, with
// the special tokens it renders. It renders a conversation exactly as
// transformers' apply_chat_template does (the template sees messages,
// add_generation_prompt and the special tokens; raise_exception and
// strftime_now are defined), and finds the assistant turns in that text for
// training masks. It is safe for concurrent use.
type Model struct {
	Source   string
	Specials Specials
	// EOSIDs are generation_config.json's eos_token_id (one id or a
	// list, as Llama 3.1 lists <|end_of_text|>, <|eom_id|> and <|eot_id|>):
	// tokens that end generation besides the template's own end of turn.
	EOSIDs []int32

	tpl     *jinja.Template
	turnEnd string // the marker the template writes after an answer (probeTurnEnd)
}

// Compile compiles a Jinja chat template: the source from a
// tokenizer_config.json, a chat_template.jinja, or a GGUF file's
// tokenizer.chat_template, with the special tokens it may use.
//
// Known differences from transformers' jinja2, all in the Go engine: tojson
// with indent= sorts keys and escapes <, > and & (templates use it for tool
// definitions only, which Text does not pass), and a float with no fraction
// prints as "2" where Python prints "2.0".
func Compile(src string, sp Specials) (*Model, error) {
	if strings.TrimSpace(src) == "" {
		return nil, fmt.Errorf("chat: %w", ErrNoTemplate)
	}
	tpl, err := jinja.Compile(jinjaSource(src))
	if err != nil {
		return nil, fmt.Errorf("chat: the chat template does not compile: %w", err)
	}
	m := &Model{Source: src, Specials: sp, tpl: tpl}
	m.turnEnd = m.probeTurnEnd()
	return m, nil
}

// jinjaSource applies what jinja2's lexer does to a template's source
// before parsing, which the Go engine does not: line ends become "\n" and
// one trailing newline is dropped (keep_trailing_newline is off in
// transformers, as by default).
func jinjaSource(src string) string {
	src = strings.ReplaceAll(src, "\r\n", "\n")
	src = strings.ReplaceAll(src, "\r", "\n")
	return strings.TrimSuffix(src, "\n")
}

// FromConfig reads the chat template and special tokens of a
// tokenizer_config.json. The template is a string or a list of
// {"name", "template"} objects, of which "default" is used (else the
// first); jinjaFile, when not empty, is the content of a chat_template.jinja
// file, which takes the place of the config's template as in transformers.
// file names the config in errors. With no template at all the error wraps
// ErrNoTemplate.
func FromConfig(tokenizerConfig []byte, file, jinjaFile string) (*Model, error) {
	var cfg struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
		BOS          json.RawMessage `json:"bos_token"`
		EOS          json.RawMessage `json:"eos_token"`
		UNK          json.RawMessage `json:"unk_token"`
		PAD          json.RawMessage `json:"pad_token"`
		SEP          json.RawMessage `json:"sep_token"`
		CLS          json.RawMessage `json:"cls_token"`
		Mask         json.RawMessage `json:"mask_token"`
	}
	if len(tokenizerConfig) > 0 {
		if err := json.Unmarshal(tokenizerConfig, &cfg); err != nil {
			return nil, fmt.Errorf("chat: %s: %w", file, err)
		}
	}
	var sp Specials
	for _, x := range []struct {
		name string
		raw  json.RawMessage
		dst  *string
	}{{"bos_token", cfg.BOS, &sp.BOS}, {"eos_token", cfg.EOS, &sp.EOS}, {"unk_token", cfg.UNK, &sp.UNK},
		{"pad_token", cfg.PAD, &sp.PAD}, {"sep_token", cfg.SEP, &sp.SEP}, {"cls_token", cfg.CLS, &sp.CLS}, {"mask_token", cfg.Mask, &sp.Mask}} {
		s, err := tokenText(x.raw)
		if err != nil {
			return nil, fmt.Errorf("chat: %s: %s: %w", file, x.name, err)
		}
		*x.dst = s
	}
	src := jinjaFile
	if src == "" {
		var err error
		if src, err = templateSource(cfg.ChatTemplate); err != nil {
			return nil, fmt.Errorf("chat: %s: %w", file, err)
		}
	}
	if strings.TrimSpace(src) == "" {
		return nil, fmt.Errorf("chat: %s: %w", file, ErrNoTemplate)
	}
	m, err := Compile(src, sp)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return m, nil
}

// Load reads the chat template of a model folder: chat_template.jinja if it
// is there, else the chat_template of tokenizer_config.json, with the
// special tokens of tokenizer_config.json and the eos_token_id of
// generation_config.json.
func Load(dir string) (*Model, error) {
	cfgPath := filepath.Join(dir, "tokenizer_config.json")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	jf, err := os.ReadFile(filepath.Join(dir, "chat_template.jinja"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if cfg == nil && jf == nil {
		return nil, fmt.Errorf("chat: %s: no tokenizer_config.json or chat_template.jinja: %w", dir, ErrNoTemplate)
	}
	m, err := FromConfig(cfg, cfgPath, string(jf))
	if err != nil {
		return nil, err
	}
	genPath := filepath.Join(dir, "generation_config.json")
	gen, err := os.ReadFile(genPath)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		if m.EOSIDs, err = generationEOS(gen, genPath); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// tokenText reads a special token: a string, an AddedToken object
// ({"content": ...}), or null.
func tokenText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var obj struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return "", errors.New("neither a string nor a token object")
	}
	return obj.Content, nil
}

// templateSource reads chat_template: a string, or named templates.
func templateSource(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var list []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return "", errors.New("chat_template is neither a string nor a list of {name, template}")
	}
	for _, e := range list {
		if e.Name == "default" {
			return e.Template, nil
		}
	}
	if len(list) > 0 {
		return list[0].Template, nil
	}
	return "", nil
}

// Text renders msgs through the template: the string a model is prompted
// (with addGenerationPrompt) or trained with.
func (m *Model) Text(msgs []Message, addGenerationPrompt bool) (string, error) {
	// Messages are ordered dicts (role, then content), as a JSON record
	// decodes in Python, so tojson writes their keys in that order.
	list := make([]jinja.Value, len(msgs))
	for i, x := range msgs {
		d := jinja.NewDict()
		d.AsDict().Set("role", jinja.NewString(x.Role))
		d.AsDict().Set("content", jinja.NewString(x.Content))
		list[i] = d
	}
	vars := map[string]jinja.Value{"messages": jinja.NewList(list), "add_generation_prompt": jinja.NewBool(addGenerationPrompt)}
	m.Specials.vars(vars)
	s, err := m.tpl.RenderValues(vars)
	if err != nil {
		return "", fmt.Errorf("chat: rendering the model's chat template: %w", err)
	}
	return s, nil
}

// endMarkers are texts that end an assistant turn in the common templates,
// used to find a turn's end when rendering a shorter conversation does not
// give it (see Render).
var endMarkers = []string{"<|eot_id|>", "<|im_end|>", "<end_of_turn>", "<|end|>", "<|eom_id|>", "<｜end▁of▁sentence｜>", "</s>", "<|endoftext|>", "<|return|>"}

// Render renders msgs and cuts the text into Segments: each assistant
// message's content and the marker that ends its turn are trained; all
// else is not. The template has no markup for this, so the spans are
// found in the rendered text: a turn starts where the conversation before
// it, rendered with the generation prompt, ends (when that text is a prefix
// of the whole); its content is searched from there (as written, else
// trimmed, as templates often trim it); the turn ends where the
// conversation up to it renders to (when a prefix), else after an end
// marker that directly follows the content. Trailing whitespace after the
// marker is not trained. A content that cannot be found is an error.
//
// Example (Llama 3), [user "Hi", assistant "Hello"]:
//
//	{"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", false}
//	{"Hello<|eot_id|>", true}
func (m *Model) Render(msgs []Message, addGenerationPrompt bool) ([]Segment, error) {
	if len(msgs) == 0 {
		return nil, fmt.Errorf("chat: empty conversation")
	}
	full, err := m.Text(msgs, addGenerationPrompt)
	if err != nil {
		return nil, err
	}
	var w segWriter
	pos := 0 // the text before pos is written
	for i, msg := range msgs {
		if msg.Role != RoleAssistant {
			continue
		}
		start := pos
		if i > 0 {
			if p, err := m.Text(msgs[:i], true); err == nil && len(p) >= pos && strings.HasPrefix(full, p) {
				start = len(p)
			}
		}
		cs, ce, ok := findContent(full, start, msg.Content)
		if !ok && start > pos {
			cs, ce, ok = findContent(full, pos, msg.Content)
		}
		if !ok {
			return nil, fmt.Errorf("chat: message %d (assistant): its content is not in the text the chat template renders", i)
		}
		end := ce
		if p, err := m.Text(msgs[:i+1], false); err == nil && len(p) >= ce && strings.HasPrefix(full, p) {
			end = len(p)
		} else {
			for _, mk := range append([]string{m.Specials.EOS}, endMarkers...) {
				if mk != "" && strings.HasPrefix(full[ce:], mk) {
					end = ce + len(mk)
					break
				}
			}
		}
		end = ce + len(strings.TrimRightFunc(full[ce:end], unicode.IsSpace))
		w.prompt(full[pos:cs])
		w.segs = append(w.segs, Segment{full[cs:end], true})
		pos = end
	}
	w.prompt(full[pos:])
	return w.segs, nil
}

// findContent finds an assistant message's content in s from start: as
// written, else with surrounding whitespace (or leading newlines) trimmed.
// Empty content is found, empty, at start.
func findContent(s string, start int, content string) (int, int, bool) {
	for _, c := range []string{content, strings.TrimSpace(content), strings.TrimLeft(content, "\n")} {
		if c == "" {
			return start, start, true
		}
		if k := strings.Index(s[start:], c); k >= 0 {
			return start + k, start + k + len(c), true
		}
	}
	return 0, 0, false
}
