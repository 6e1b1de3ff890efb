package chat

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Format is how a command renders conversations for one model: the model's
// own Jinja template (Own) when it ships one, else a built-in template
// (Builtin). Every command (training, evaluation, generation, serving)
// renders through one Format so that a model is prompted in the format it
// was tuned in.
type Format struct {
	Own     *Model   // the model's own template; nil: Builtin renders
	Builtin Template // used when Own is nil
}

// String names the format: "model" for the model's own template, else the
// built-in template's name.
func (f Format) String() string {
	if f.Own != nil {
		return "model"
	}
	return f.Builtin.String()
}

// Text renders msgs as one string (see Model.Text and Template.Text).
func (f Format) Text(msgs []Message, addGenerationPrompt bool) (string, error) {
	if f.Own != nil {
		return f.Own.Text(msgs, addGenerationPrompt)
	}
	return f.Builtin.Text(msgs, addGenerationPrompt)
}

// Render renders msgs into segments with the trained assistant spans (see
// Model.Render and Template.Render).
func (f Format) Render(msgs []Message, addGenerationPrompt bool) ([]Segment, error) {
	if f.Own != nil {
		return f.Own.Render(msgs, addGenerationPrompt)
	}
	return f.Builtin.Render(msgs, addGenerationPrompt)
}

// IncludesBOS reports whether the rendered text carries every special
// token the model needs, so encoders must add none: always for a model's
// own template (transformers encodes apply_chat_template's text with
// add_special_tokens=False), and for the built-in templates that write
// their BOS (Template.IncludesBOS).
func (f Format) IncludesBOS() bool {
	return f.Own != nil || f.Builtin.IncludesBOS()
}

// Vocab is what Stops needs of a tokenizer (a *tokenizer.Tokenizer).
type Vocab interface {
	EOS() int32
	TokenID(s string) (int32, bool)
	Decode(ids []int32) string
}

// Stops returns what ends an assistant turn in generation: token ids and
// texts. For a built-in template they are the tokenizer's EOS and the
// template's stop strings. For a model's own template they are its
// end-of-turn tokens: the marker its template writes after an assistant's
// content (<|eot_id|>, <|im_end|>, <end_of_turn>...), its eos_token, the
// eos_token_id list of generation_config.json and the tokenizer's EOS;
// the texts are those tokens' texts, for callers that stop on text (the
// tokenizer decodes special tokens as their text). The first id is the one
// training puts after an answer (the turn's end marker, else EOS). With
// v nil only texts come back: the markers as the template writes them.
func (f Format) Stops(v Vocab) (ids []int32, texts []string) {
	addID := func(id int32) {
		if id >= 0 && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	addText := func(s string) {
		if s != "" && !slices.Contains(texts, s) {
			texts = append(texts, s)
		}
	}
	if f.Own == nil {
		if v != nil {
			addID(v.EOS())
		}
		for _, s := range f.Builtin.StopStrings() {
			addText(s)
		}
		return ids, texts
	}
	if v == nil {
		addText(f.Own.turnEnd)
		addText(f.Own.Specials.EOS)
		return nil, texts
	}
	for _, s := range []string{f.Own.turnEnd, f.Own.Specials.EOS} {
		if id, ok := v.TokenID(s); ok {
			addID(id)
			addText(s)
		}
	}
	for _, id := range f.Own.EOSIDs {
		addID(id)
	}
	addID(v.EOS())
	for _, id := range ids {
		addText(v.Decode([]int32{id}))
	}
	return ids, texts
}

// probeTurnEnd finds the text a template writes right after an assistant's
// content: the end of the trained span of a two-turn conversation, less
// the content. "" when the template does not render the probe.
func (m *Model) probeTurnEnd() string {
	const answer = "Fine."
	segs, err := m.Render([]Message{{Role: RoleUser, Content: "Hi."}, {Role: RoleAssistant, Content: answer}}, false)
	if err != nil {
		return ""
	}
	for _, s := range segs {
		if s.Train {
			_, end, ok := strings.Cut(s.Text, answer)
			if !ok {
				return ""
			}
			return strings.TrimSpace(end)
		}
	}
	return ""
}

// generationEOS reads eos_token_id of a generation_config.json: one id or
// a list. file names it in errors.
func generationEOS(raw []byte, file string) ([]int32, error) {
	var cfg struct {
		EOS json.RawMessage `json:"eos_token_id"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("chat: %s: %w", file, err)
	}
	if len(cfg.EOS) == 0 || string(cfg.EOS) == "null" {
		return nil, nil
	}
	var one int32
	if json.Unmarshal(cfg.EOS, &one) == nil {
		return []int32{one}, nil
	}
	var list []int32
	if err := json.Unmarshal(cfg.EOS, &list); err != nil {
		return nil, fmt.Errorf("chat: %s: eos_token_id is %s, want a token id or a list of ids", file, cfg.EOS)
	}
	return list, nil
}
