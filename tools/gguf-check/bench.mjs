// Decode speed of llama.cpp (node-llama-cpp's prebuilt CPU build) on a
// GGUF file: node bench.mjs MODEL.gguf THREADS N
// prints {"tokens_per_s": ...}: N greedy tokens after a 4-token prompt,
// timed after the first (as llmlab bench times its own).
import { getLlama } from "node-llama-cpp";

const [path, threads, n] = process.argv.slice(2);
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const model = await llama.loadModel({ modelPath: path });
const ctx = await model.createContext({ contextSize: 512, threads: Number(threads) });
const seq = ctx.getSequence();
let count = 0, start = 0;
for await (const t of seq.evaluate([1, 2, 3, 4], { temperature: 0 })) {
  if (count === 0) start = performance.now();
  count++;
  if (count > Number(n)) break;
}
const secs = (performance.now() - start) / 1000;
console.log(JSON.stringify({ tokens_per_s: (count - 1) / secs }));
await ctx.dispose();
await model.dispose();
