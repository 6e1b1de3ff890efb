// Package chat renders conversations through the chat templates that
// instruction-tuned models were trained with.
//
// A model's own template (Model) is the Jinja source its
// tokenizer_config.json or chat_template.jinja ships, rendered by a Jinja
// engine exactly as transformers renders it; the assistant spans that SFT
// trains on are found in that rendered text (Model.Render). The eight
// built-in templates (Template) are for models that ship none, and for the
// embedded demo model: each is a small Go function that writes exactly
// what its family's Jinja template would, and Detect recognises a family
// from a Jinja source by markers that only it uses.
//
// Rendering returns Segments rather than one string so that the data
// package knows which tokens are trained: the assistant's content and the
// marker that ends its turn are (Train true); system prompts, user turns
// and role headers are not.
//
// Example, ChatML, [system "Be brief.", user "Hi", assistant "Hello"]:
//
//	{"<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", false}
//	{"Hello<|im_end|>", true}
//	{"\n", false}
//
// Special tokens (<|im_start|>, <s>, <bos>...) appear as text; the tokenizer
// is expected to match its added tokens in text, as HF tokenizers do, and
// segments are encoded without adding BOS/EOS again.
package chat

import (
	"fmt"
	"strings"
)

// Roles a Message may have.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// Message is one turn of a conversation.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Segment is a piece of rendered text and whether the model is trained to
// produce it.
type Segment struct {
	Text  string
	Train bool
}

// Template is one of the built-in chat formats.
type Template int

// The built-in templates.
const (
	Plain   Template = iota // contents one a line, no markup
	ChatML                  // <|im_start|>role\n...<|im_end|> (Qwen, many others)
	Llama2                  // <s>[INST] <<SYS>>...<</SYS>> ... [/INST] ... </s>
	Llama3                  // <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>
	Mistral                 // <s>[INST] ... [/INST]...</s>
	Gemma                   // <start_of_turn>user\n...<end_of_turn>, model role
	Zephyr                  // <|user|>\n...</s>
	Alpaca                  // ### Instruction: / ### Response:
	numTemplates
)

var templateNames = [numTemplates]string{"plain", "chatml", "llama2", "llama3", "mistral", "gemma", "zephyr", "alpaca"}

// String returns the template's name as Parse accepts it.
func (t Template) String() string {
	if t < 0 || t >= numTemplates {
		return fmt.Sprintf("Template(%d)", int(t))
	}
	return templateNames[t]
}

// Templates lists every built-in template.
func Templates() []Template {
	ts := make([]Template, numTemplates)
	for i := range ts {
		ts[i] = Template(i)
	}
	return ts
}

// Names returns the built-in template names, for usage messages.
func Names() string {
	return strings.Join(templateNames[:], ", ")
}

// Parse returns the template called name (case-insensitive; "llama-3" and
// "llama_3" are accepted for "llama3").
func Parse(name string) (Template, error) {
	n := strings.ToLower(strings.NewReplacer("-", "", "_", "", ".", "").Replace(strings.TrimSpace(name)))
	for i, s := range templateNames {
		if n == s {
			return Template(i), nil
		}
	}
	return 0, fmt.Errorf("chat: unknown template %q (known: %s)", name, Names())
}

// MarshalText and UnmarshalText let a Template sit in JSON configs by name.
func (t Template) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText parses a template name.
func (t *Template) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// StopStrings are the texts that end an assistant turn in t, for generation
// to stop on (besides the tokenizer's EOS token).
func (t Template) StopStrings() []string {
	switch t {
	case ChatML:
		return []string{"<|im_end|>"}
	case Llama2, Mistral, Zephyr:
		return []string{"</s>"}
	case Llama3:
		return []string{"<|eot_id|>"}
	case Gemma:
		return []string{"<end_of_turn>"}
	case Alpaca:
		return []string{"### Instruction:"}
	}
	return nil
}

// IncludesBOS reports whether t's text starts with the BOS token's text
// (<s>, <|begin_of_text|>, <bos>), so that encoders must not add another.
func (t Template) IncludesBOS() bool {
	switch t {
	case Llama2, Llama3, Mistral, Gemma:
		return true
	}
	return false
}

// RoleError reports a conversation the template cannot render: roles that
// do not alternate where the template requires it, a misplaced system
// prompt, or an unknown role.
type RoleError struct {
	Template Template
	Index    int    // the offending message, from 0
	Role     string // its role
	Want     string // what the template needs there
}

func (e *RoleError) Error() string {
	return fmt.Sprintf("chat: the %s template needs %s, but message %d has role %q", e.Template, e.Want, e.Index, e.Role)
}

// Render renders msgs through t. With addGenerationPrompt the text that
// opens an assistant turn is appended (as for inference), when the template
// has one. It fails with a *RoleError when the conversation does not fit the
// template.
func (t Template) Render(msgs []Message, addGenerationPrompt bool) ([]Segment, error) {
	if len(msgs) == 0 {
		return nil, fmt.Errorf("chat: empty conversation")
	}
	if err := t.check(msgs); err != nil {
		return nil, err
	}
	var w segWriter
	switch t {
	case Plain:
		renderPlain(&w, msgs)
	case ChatML:
		renderChatML(&w, msgs, addGenerationPrompt)
	case Llama2:
		renderLlama2(&w, msgs)
	case Llama3:
		renderLlama3(&w, msgs, addGenerationPrompt)
	case Mistral:
		renderMistral(&w, msgs)
	case Gemma:
		renderGemma(&w, msgs, addGenerationPrompt)
	case Zephyr:
		renderZephyr(&w, msgs, addGenerationPrompt)
	case Alpaca:
		renderAlpaca(&w, msgs, addGenerationPrompt)
	default:
		return nil, fmt.Errorf("chat: unknown template %d", int(t))
	}
	return w.segs, nil
}

// Text renders msgs and joins the segments: the prompt string for inference.
func (t Template) Text(msgs []Message, addGenerationPrompt bool) (string, error) {
	segs, err := t.Render(msgs, addGenerationPrompt)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, s := range segs {
		b.WriteString(s.Text)
	}
	return b.String(), nil
}

// alternates reports whether t requires user/assistant alternation starting
// with user, with at most one system message first (the HF templates of
// these families raise an exception otherwise).
func (t Template) alternates() bool {
	switch t {
	case Llama2, Mistral, Gemma, Alpaca:
		return true
	}
	return false
}

func (t Template) check(msgs []Message) error {
	for i, m := range msgs {
		switch m.Role {
		case RoleSystem, RoleUser, RoleAssistant:
		default:
			return &RoleError{t, i, m.Role, `roles "system", "user" or "assistant"`}
		}
	}
	if !t.alternates() {
		return nil
	}
	start := 0
	if msgs[0].Role == RoleSystem {
		start = 1
	}
	for i := start; i < len(msgs); i++ {
		want := RoleUser
		if (i-start)%2 == 1 {
			want = RoleAssistant
		}
		if msgs[i].Role != want {
			return &RoleError{t, i, msgs[i].Role, fmt.Sprintf("roles alternating user/assistant after an optional first system message (%q here)", want)}
		}
	}
	return nil
}

// segWriter accumulates segments, merging neighbours with the same Train.
type segWriter struct{ segs []Segment }

func (w *segWriter) add(text string, train bool) {
	if text == "" {
		return
	}
	if n := len(w.segs); n > 0 && w.segs[n-1].Train == train {
		w.segs[n-1].Text += text
		return
	}
	w.segs = append(w.segs, Segment{text, train})
}

func (w *segWriter) prompt(s ...string) {
	for _, x := range s {
		w.add(x, false)
	}
}

// answer writes an assistant turn's trained text: content then end marker.
// An assistant turn is always its own segment, even when empty, so that
// callers can count turns (and append EOS after each).
func (w *segWriter) answer(content, end string) {
	w.segs = append(w.segs, Segment{content + end, true})
}

// splitSystem returns the leading system prompt (if any) and the rest.
func splitSystem(msgs []Message) (string, bool, []Message) {
	if msgs[0].Role == RoleSystem {
		return msgs[0].Content, true, msgs[1:]
	}
	return "", false, msgs
}

// Plain: each message's content then a newline, no role markers; a prompt
// ends with its newline, so the generation prompt adds nothing.
func renderPlain(w *segWriter, msgs []Message) {
	for _, m := range msgs {
		if m.Role == RoleAssistant {
			w.answer(m.Content, "")
		} else {
			w.prompt(m.Content)
		}
		w.prompt("\n")
	}
}

// ChatML: no alternation required; generation prompt "<|im_start|>assistant\n".
func renderChatML(w *segWriter, msgs []Message, gen bool) {
	for _, m := range msgs {
		w.prompt("<|im_start|>", m.Role, "\n")
		if m.Role == RoleAssistant {
			w.answer(m.Content, "<|im_end|>")
			w.prompt("\n")
		} else {
			w.prompt(m.Content, "<|im_end|>\n")
		}
	}
	if gen {
		w.prompt("<|im_start|>assistant\n")
	}
}

// Llama 2 chat (Meta's format): the system prompt is folded into the first
// user turn; every exchange is wrapped in BOS ... EOS; contents stripped.
func renderLlama2(w *segWriter, msgs []Message) {
	sys, hasSys, rest := splitSystem(msgs)
	for i, m := range rest {
		c := strings.TrimSpace(m.Content)
		if m.Role == RoleUser {
			if i == 0 && hasSys {
				c = "<<SYS>>\n" + strings.TrimSpace(sys) + "\n<</SYS>>\n\n" + c
			}
			w.prompt("<s>[INST] ", c, " [/INST]")
		} else {
			w.prompt(" ")
			w.answer(c, " </s>")
		}
	}
}

// Llama 3: headers per turn, contents trimmed, BOS text first.
func renderLlama3(w *segWriter, msgs []Message, gen bool) {
	w.prompt("<|begin_of_text|>")
	for _, m := range msgs {
		w.prompt("<|start_header_id|>", m.Role, "<|end_header_id|>\n\n")
		c := strings.TrimSpace(m.Content)
		if m.Role == RoleAssistant {
			w.answer(c, "<|eot_id|>")
		} else {
			w.prompt(c, "<|eot_id|>")
		}
	}
	if gen {
		w.prompt("<|start_header_id|>assistant<|end_header_id|>\n\n")
	}
}

// Mistral instruct (v0.1/v0.2 HF template): one BOS, [INST] ... [/INST]
// around user turns, the answer directly after with EOS; a system prompt is
// prepended to the first user turn (as later Mistral templates do).
func renderMistral(w *segWriter, msgs []Message) {
	sys, hasSys, rest := splitSystem(msgs)
	w.prompt("<s>")
	for i, m := range rest {
		if m.Role == RoleUser {
			c := m.Content
			if i == 0 && hasSys {
				c = sys + "\n\n" + c
			}
			w.prompt("[INST] ", c, " [/INST]")
		} else {
			w.answer(m.Content, "</s>")
		}
	}
}

// Gemma: "model" is the assistant's role name; contents trimmed; a system
// prompt is prepended to the first user turn (Gemma 2/3 behaviour).
func renderGemma(w *segWriter, msgs []Message, gen bool) {
	sys, hasSys, rest := splitSystem(msgs)
	w.prompt("<bos>")
	for i, m := range rest {
		c := strings.TrimSpace(m.Content)
		if m.Role == RoleUser {
			if i == 0 && hasSys {
				c = strings.TrimSpace(sys) + "\n\n" + c
			}
			w.prompt("<start_of_turn>user\n", c, "<end_of_turn>\n")
		} else {
			w.prompt("<start_of_turn>model\n")
			w.answer(c, "<end_of_turn>")
			w.prompt("\n")
		}
	}
	if gen {
		w.prompt("<start_of_turn>model\n")
	}
}

// Zephyr: <|role|>\n content EOS \n.
func renderZephyr(w *segWriter, msgs []Message, gen bool) {
	for _, m := range msgs {
		w.prompt("<|", m.Role, "|>\n")
		if m.Role == RoleAssistant {
			w.answer(m.Content, "</s>")
			w.prompt("\n")
		} else {
			w.prompt(m.Content, "</s>\n")
		}
	}
	if gen {
		w.prompt("<|assistant|>\n")
	}
}

// AlpacaPreamble is the Alpaca prompt's opening when there is no system
// message.
const AlpacaPreamble = "Below is an instruction that describes a task. Write a response that appropriately completes the request."

// Alpaca: the system message (or the standard preamble), then
// "### Instruction:" / "### Response:" blocks. A user turn is always
// followed by the response header, so it is part of the prompt; the
// generation prompt flag changes nothing.
func renderAlpaca(w *segWriter, msgs []Message, _ bool) {
	sys, hasSys, rest := splitSystem(msgs)
	if !hasSys {
		sys = AlpacaPreamble
	}
	w.prompt(sys, "\n\n")
	for _, m := range rest {
		if m.Role == RoleUser {
			w.prompt("### Instruction:\n", m.Content, "\n\n### Response:\n")
		} else {
			w.answer(m.Content, "")
			w.prompt("\n\n")
		}
	}
}
