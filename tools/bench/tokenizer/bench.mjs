// Encoding throughput of js-tiktoken (gpt2 ranks) on a text file:
//   node bench.mjs FILE REPS    -> one JSON line: {"impl":"js-tiktoken","mbps":...,"tokens":...}
// Run through tokenizer.sh, which alternates it with the Go encoder.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "..", "..", "golden", "tokenizer", "package.json"));
const { Tiktoken } = require("js-tiktoken/lite");
const gpt2 = require("js-tiktoken/ranks/gpt2");

const [file, repsArg] = process.argv.slice(2);
const text = readFileSync(file, "utf8");
const bytes = Buffer.byteLength(text);
const enc = new Tiktoken(gpt2);
let best = Infinity, tokens = 0;
enc.encode(text.slice(0, 100000)); // warm up the JIT
for (let i = 0; i < Number(repsArg || 3); i++) {
  const t0 = process.hrtime.bigint();
  tokens = enc.encode(text).length;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  best = Math.min(best, s);
}
console.log(JSON.stringify({ impl: "js-tiktoken", mbps: bytes / best / 1e6, tokens, bytes }));
