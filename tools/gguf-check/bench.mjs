// Decode speed of llama.cpp (node-llama-cpp's prebuilt CPU build) on a
// GGUF file: node bench.mjs MODEL.gguf THREADS N
// prints {"tokens_per_s": ..., "cpu_tokens_per_s": ...}: N greedy tokens
// after a 4-token prompt, timed after the first.
import { getLlama } from "node-llama-cpp";

const [path, threads, n] = process.argv.slice(2);
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const model = await llama.loadModel({ modelPath: path });
const ctx = await model.createContext({ contextSize: 512, threads: Number(threads) });
const seq = ctx.getSequence();
// Wall time, and processor time (steadier on a shared host: llama.cpp's
// threads spin while they wait, so compare at one thread there).
let count = 0, start = 0, cpu0 = null;
for await (const t of seq.evaluate([1, 2, 3, 4], { temperature: 0 })) {
  if (count === 0) { start = performance.now(); cpu0 = process.cpuUsage(); }
  count++;
  if (count > Number(n)) break;
}
const secs = (performance.now() - start) / 1000;
const cpu = process.cpuUsage(cpu0);
const cpuSecs = (cpu.user + cpu.system) / 1e6;
console.log(JSON.stringify({ tokens_per_s: (count - 1) / secs, cpu_tokens_per_s: (count - 1) / cpuSecs }));
await ctx.dispose();
await model.dispose();
