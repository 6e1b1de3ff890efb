// Greedy generation with llama.cpp (node-llama-cpp's prebuilt CPU build):
//   node generate.mjs MODEL.gguf "PROMPT" N
// prints {"prompt_ids": [...], "ids": [...], "text": "..."} on one line.
// The prompt is tokenized by llama.cpp from the file's own vocabulary.
import { getLlama } from "node-llama-cpp";

const [path, prompt, n] = process.argv.slice(2);
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const model = await llama.loadModel({ modelPath: path });
const ctx = await model.createContext({ contextSize: 256, threads: 1 });
const seq = ctx.getSequence();
const promptIds = model.tokenize(prompt);
const ids = [];
for await (const t of seq.evaluate(promptIds, { temperature: 0 })) {
  ids.push(t);
  if (ids.length >= Number(n ?? 32)) break;
}
console.log(JSON.stringify({ prompt_ids: Array.from(promptIds), ids: Array.from(ids), text: model.detokenize(ids) }));
await ctx.dispose();
await model.dispose();
