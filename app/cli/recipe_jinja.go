package cli

import "llmlab/core/chat"

// recipeJinja is a Jinja chat template that renders what llmlab's built-in
// template t writes (Template.Text), for the tokenizer of a TRL script when
// the model declares no template of its own. Each is one line, so
// transformers' trim_blocks and lstrip_blocks change nothing; a test renders
// them with Python's jinja2 against Template.Text. ChatML's is core/chat's.
func recipeJinja(t chat.Template) (string, error) {
	// A leading system message: sys is its content, rest the others.
	const split = `{% if messages[0]['role'] == 'system' %}{% set sys = messages[0]['content'] %}{% set rest = messages[1:] %}{% else %}{% set sys = '' %}{% set rest = messages %}{% endif %}`
	const hasSys = `loop.first and messages[0]['role'] == 'system'`
	switch t {
	case chat.Plain:
		return `{% for m in messages %}{{ m['content'] + '\n' }}{% endfor %}`, nil
	case chat.Llama2:
		return split + `{% for m in rest %}{% set c = m['content'] | trim %}{% if m['role'] == 'user' %}{% if ` + hasSys + ` %}{% set c = '<<SYS>>\n' + (sys | trim) + '\n<</SYS>>\n\n' + c %}{% endif %}{{ '<s>[INST] ' + c + ' [/INST]' }}{% else %}{{ ' ' + c + ' </s>' }}{% endif %}{% endfor %}`, nil
	case chat.Llama3:
		return `{{ '<|begin_of_text|>' }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' + (m['content'] | trim) + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}`, nil
	case chat.Mistral:
		return split + `{{ '<s>' }}{% for m in rest %}{% if m['role'] == 'user' %}{% set c = m['content'] %}{% if ` + hasSys + ` %}{% set c = sys + '\n\n' + c %}{% endif %}{{ '[INST] ' + c + ' [/INST]' }}{% else %}{{ m['content'] + '</s>' }}{% endif %}{% endfor %}`, nil
	case chat.Gemma:
		return split + `{{ '<bos>' }}{% for m in rest %}{% set c = m['content'] | trim %}{% if m['role'] == 'user' %}{% if ` + hasSys + ` %}{% set c = (sys | trim) + '\n\n' + c %}{% endif %}{{ '<start_of_turn>user\n' + c + '<end_of_turn>\n' }}{% else %}{{ '<start_of_turn>model\n' + c + '<end_of_turn>\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}`, nil
	case chat.Zephyr:
		return `{% for m in messages %}{{ '<|' + m['role'] + '|>\n' + m['content'] + '</s>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}`, nil
	case chat.Alpaca:
		return split + `{% if messages[0]['role'] != 'system' %}{% set sys = '` + chat.AlpacaPreamble + `' %}{% endif %}{{ sys + '\n\n' }}{% for m in rest %}{% if m['role'] == 'user' %}{{ '### Instruction:\n' + m['content'] + '\n\n### Response:\n' }}{% else %}{{ m['content'] + '\n\n' }}{% endif %}{% endfor %}`, nil
	}
	return t.Jinja()
}
