"""Jinja feature goldens for core/chat (needs python3-jinja2 or pip jinja2).

Small templates, each using Jinja features that chat templates rely on
(loop controls and loop variables, tojson, filters, namespace, string and
dict methods, macros, tests, whitespace control with trim_blocks and
lstrip_blocks, raise_exception), rendered the way transformers renders a
chat template: jinja2's ImmutableSandboxedEnvironment with trim_blocks,
lstrip_blocks and the loopcontrols extension, tojson as json.dumps with
ensure_ascii=False, and raise_exception. Writes
core/chat/testdata/jinja_features.json; models.mjs compares
@huggingface/jinja with it and prints where they differ.

    /usr/bin/python3 tools/golden/tokenizer/jinja_features.py   (make golden)
"""
import json
import os

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "..", "..", "core", "chat", "testdata", "jinja_features.json"))

MESSAGES = [
    {"role": "system", "content": 'You are "helpful" <b>&</b> é 😀'},
    {"role": "user", "content": "Hi\nthere"},
    {"role": "assistant", "content": "Hello!"},
]

CASES = [
    ("loop controls", "{% for m in messages %}{% if loop.index0 == 2 %}{% break %}{% endif %}{% if m.role == 'system' %}{% continue %}{% endif %}[{{ loop.index }}/{{ loop.length }}{{ '*' if loop.first }}{{ '$' if loop.last }}]{{ m.content }}{% endfor %}"),
    ("loop previtem and cycle", "{% for m in messages %}{{ loop.revindex }}{{ loop.cycle('a', 'b') }}{% if loop.previtem is defined %}<{{ loop.previtem.role }}{% endif %};{% endfor %}"),
    ("tojson", "{{ messages | tojson }}|{{ {'k': 'é<&>', 'n': [1, 2.5, none, true]} | tojson }}"),
    ("filters", "{{ '  x  ' | trim }}|{{ messages | map(attribute='role') | join(',') }}|{{ messages | selectattr('role', 'equalto', 'user') | list | length }}|{{ messages | rejectattr('role', 'eq', 'user') | map(attribute='role') | list }}|{{ 'abc' | upper }}|{{ 'A B' | lower | replace(' ', '_') }}|{{ messages | length }}|{{ 'hi\nthere' | indent(2) }}|{{ [3,1,2] | sort | first }}|{{ 'x' | default('d') }}|{{ undefined_var | default('d') }}|{{ 'ab' | capitalize }}|{{ [1, 2] | last }}"),
    ("namespace and strings", "{% set ns = namespace(n=0, s='') %}{% for m in messages[1:] %}{% set ns.n = ns.n + m.content | length %}{% set ns.s = ns.s ~ m.role[0] %}{% endfor %}{{ ns.n }} {{ ns.s }} {{ messages[0].content.split(' ')[0] }} {{ messages[0].content.startswith('You') | string | lower }} {{ '  a '.strip() }}{{ 'x,y'.split(',') | join('+') }} {{ messages[-1].content[:5] }} {{ 'a\n\n'.rstrip('\n') }}{{ '\nb'.lstrip() }} {{ 'Hello' .endswith('lo') | string | lower }}"),
    ("macro and tests", "{% macro fmt(m, p='>') %}{{ p }}{{ m.role }}:{{ m.content }}{% endmacro %}{% for m in messages %}{{ fmt(m) }}{{ fmt(m, p='#') if m.content is string }}{% if m.tool_calls is defined %}T{% endif %}{% if m.content is none %}N{% endif %}{% endfor %}{{ (3 is odd) | string | lower }}{{ ('a' in 'cat') | string | lower }}"),
    ("whitespace control", "{%- for m in messages -%}\n  {{- m.role }}\n  {%- if not loop.last %}, {% endif -%}\n{%- endfor %}\n{{ bos_token }}  {{- eos_token -}}  !"),
    ("trim_blocks and lstrip_blocks", "{% for m in messages %}\n    {% if m.role == 'user' %}\n<{{ m.role }}>\n    {% else %}\n[{{ m.role }}]\n    {% endif %}\n{% endfor %}\nend\n"),
    ("dict items and slices", "{% for k, v in {'b': 1, 'a': 2}.items() %}{{ k }}={{ v }};{% endfor %}{{ messages[1:] | length }}{{ messages[::-1][0].role }}{{ (messages | last).role }}{{ range(3) | list }}{{ 7 // 2 }}{{ 7 % 3 }}{{ 2 ** 3 }}"),
    ("set block and if expressions", "{% set sys = messages[0].content if messages[0].role == 'system' else '' %}{% set rest = messages[1:] if sys else messages %}{{ sys | length > 0 }}{{ rest | length }}{% if sys and rest[0].role == 'user' %}ok{% elif rest %}mid{% else %}no{% endif %}"),
    ("raise_exception", "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}ok"),
]


def environment():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def main():
    env = environment()
    out = []
    for name, src in CASES:
        text, error = None, None
        try:
            text = env.from_string(src).render(messages=MESSAGES, bos_token="<s>", eos_token="</s>", add_generation_prompt=False)
        except jinja2.exceptions.TemplateError as e:
            error = str(e)
        out.append({"name": name, "template": src, "messages": MESSAGES, "text": text, "error": error})
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"jinja features: {len(out)} templates")
    check_models(env)


def check_models(env):
    """Renders the real models' conversations of jinja_golden.json (written
    by models.mjs with @huggingface/jinja) with jinja2 and says where the
    two differ."""
    chat = os.path.join(os.path.dirname(OUT), "jinja_golden.json")
    if not os.path.exists(chat):
        return
    with open(chat, encoding="utf-8") as f:
        cases = json.load(f)
    models = os.path.normpath(os.path.join(os.path.dirname(OUT), "..", "..", "tokenizer", "testdata", "models"))
    differ = 0
    for c in cases:
        with open(os.path.join(models, c["model"], "tokenizer_config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        special = {}
        for k in ("bos_token", "eos_token", "unk_token", "pad_token"):
            v = cfg.get(k)
            if isinstance(v, dict):
                v = v.get("content")
            if v:
                special[k] = v
        text = env.from_string(cfg["chat_template"]).render(messages=c["messages"], add_generation_prompt=c["add_generation_prompt"], **special)
        if text != c["text"]:
            differ += 1
            print(f"{c['model']}: jinja2 and @huggingface/jinja differ:\n{text!r}\n{c['text']!r}")
    print(f"real chat templates: jinja2 agrees with @huggingface/jinja on {len(cases) - differ} of {len(cases)} renderings")


if __name__ == "__main__":
    main()
