package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrUnknownTemplate is returned (wrapped) by Detect when the Jinja source
// matches no built-in template, or there is none.
var ErrUnknownTemplate = errors.New("chat template not recognised")

// Detect recognises a built-in template from the Jinja source of a
// tokenizer_config.json chat_template, by markers that only that family
// uses. Order matters: Llama 3 before ChatML-like checks, Llama 2 (<<SYS>>)
// before Mistral (both use [INST]), and Zephyr is refused when Phi-3's
// <|end|> shows it is a different format with the same role tags.
func Detect(jinja string) (Template, error) {
	has := func(s ...string) bool {
		for _, x := range s {
			if !strings.Contains(jinja, x) {
				return false
			}
		}
		return true
	}
	switch {
	case strings.TrimSpace(jinja) == "":
		return 0, fmt.Errorf("chat: the model has no chat_template; pass --template NAME (one of %s): %w", Names(), ErrUnknownTemplate)
	case has("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"):
		return Llama3, nil
	case has("<|im_start|>", "<|im_end|>"):
		return ChatML, nil
	case has("<start_of_turn>", "<end_of_turn>"):
		return Gemma, nil
	case has("[INST]", "<<SYS>>"):
		return Llama2, nil
	case has("[INST]", "[/INST]") && !has("[AVAILABLE_TOOLS]") && !has("[SYSTEM_PROMPT]"):
		return Mistral, nil
	case has("<|user|>", "<|assistant|>") && !has("<|end|>"):
		return Zephyr, nil
	case has("### Instruction:", "### Response:"):
		return Alpaca, nil
	}
	return 0, fmt.Errorf("chat: the model's chat_template is not one of the built-in templates; pass --template NAME (one of %s): %w", Names(), ErrUnknownTemplate)
}

// DetectConfig reads the chat_template of a tokenizer_config.json (a string,
// or a list of {"name","template"} objects of which "default" is used) and
// calls Detect on it. file names the config in errors.
func DetectConfig(tokenizerConfig []byte, file string) (Template, error) {
	var cfg struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
	}
	if err := json.Unmarshal(tokenizerConfig, &cfg); err != nil {
		return 0, fmt.Errorf("chat: %s: %w", file, err)
	}
	src := ""
	if len(cfg.ChatTemplate) > 0 && string(cfg.ChatTemplate) != "null" {
		if err := json.Unmarshal(cfg.ChatTemplate, &src); err != nil {
			var list []struct{ Name, Template string }
			if err2 := json.Unmarshal(cfg.ChatTemplate, &list); err2 != nil {
				return 0, fmt.Errorf("chat: %s: chat_template is neither a string nor a list of {name, template}", file)
			}
			for _, e := range list {
				if e.Name == "default" {
					src = e.Template
				}
			}
			if src == "" && len(list) > 0 {
				src = list[0].Template
			}
		}
	}
	t, err := Detect(src)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", file, err)
	}
	return t, nil
}
