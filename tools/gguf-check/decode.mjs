// Runs a GGUF file in llama.cpp (node-llama-cpp's prebuilt CPU build) and
// prints the greedy continuation of a prompt as token ids:
//
//   node decode.mjs --model FILE (--tokens 1,2,3 | --text "Once") [--n 32]
//
// prints {"prompt":[...],"ids":[...]}. No sampling: temperature 0 takes the
// arg-max each step; the KV cache is F32 so that nothing is rounded beyond
// what the file's weights carry; the sliding window stays as the file says.
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const args = process.argv.slice(2);
const opt = {};
for (let i = 0; i < args.length; i += 2) {
  if (!args[i].startsWith("--") || i + 1 >= args.length) {
    console.error(`usage: node decode.mjs --model FILE (--tokens 1,2,3 | --text TEXT) [--n 32]; bad argument ${args[i]}`);
    process.exit(2);
  }
  opt[args[i].slice(2)] = args[i + 1];
}
if (!opt.model || (!opt.tokens && opt.text === undefined)) {
  console.error("usage: node decode.mjs --model FILE (--tokens 1,2,3 | --text TEXT) [--n 32]");
  process.exit(2);
}
const n = Number(opt.n ?? 32);

const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath: opt.model, gpuLayers: 0 });
const prompt = opt.tokens
  ? opt.tokens.split(",").map((s) => Number(s.trim()))
  : model.tokenize(opt.text, false);
const context = await model.createContext({
  contextSize: Math.max(64, prompt.length + n + 8),
  batchSize: 512, flashAttention: false, threads: 1,
  experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",
});
const seq = context.getSequence();
const ids = [];
for await (const t of seq.evaluate(prompt, { temperature: 0 })) {
  ids.push(t);
  if (ids.length >= n) break;
}
console.log(JSON.stringify({ prompt, ids }));
await context.dispose();
await model.dispose();
await llama.dispose();
