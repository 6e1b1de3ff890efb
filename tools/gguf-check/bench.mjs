// Speed of llama.cpp (node-llama-cpp's prebuilt CPU build) on a GGUF file:
//   node bench.mjs MODEL.gguf THREADS N [PREFILL]
// prints {"tokens_per_s": ..., "cpu_tokens_per_s": ...}: N greedy tokens
// after a 4-token prompt, timed after the first. With PREFILL > 0 it then
// reads a prompt of PREFILL tokens (ids 3, 4, ... as llmlab's bench uses)
// in batches of up to 512, once to warm up and once timed, and adds
// "prefill_tokens_per_s" and "prefill_cpu_tokens_per_s".
import { getLlama } from "node-llama-cpp";

const [path, threads, n, prefill = "0"] = process.argv.slice(2);
const P = Number(prefill);
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const model = await llama.loadModel({ modelPath: path });
const ctx = await model.createContext({ contextSize: Math.max(512, P + Number(n) + 8), batchSize: 512, threads: Number(threads) });
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
const out = { tokens_per_s: (count - 1) / secs, cpu_tokens_per_s: (count - 1) / ((cpu.user + cpu.system) / 1e6) };
if (P > 0) {
  const prompt = Array.from({ length: P }, (_, i) => 3 + (i % 250));
  for (let round = 0; round < 2; round++) {
    await seq.clearHistory();
    const t0 = performance.now(), c0 = process.cpuUsage();
    await seq.evaluateWithoutGeneratingNewTokens(prompt);
    const s = (performance.now() - t0) / 1000;
    const c = process.cpuUsage(c0);
    out.prefill_tokens_per_s = P / s;
    out.prefill_cpu_tokens_per_s = P / ((c.user + c.system) / 1e6);
  }
}
console.log(JSON.stringify(out));
await ctx.dispose();
await model.dispose();
