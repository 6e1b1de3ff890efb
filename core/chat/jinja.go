package chat

import "fmt"

// Jinja returns a Jinja chat template equivalent to t, for writing into
// the tokenizer_config.json of models llmlab makes (Detect recognises
// it, and HF tokenizers render the same text).
func (t Template) Jinja() (string, error) {
	switch t {
	case ChatML:
		return "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}", nil
	}
	return "", fmt.Errorf("chat: no Jinja source for template %s (have chatml)", t)
}
