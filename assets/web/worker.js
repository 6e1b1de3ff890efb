// llmlab's browser worker: runs the WebAssembly build of the engine off the
// page's thread. Messages in: loadDemo, loadFiles, loadGGUF (a File the
// user picked: read here, not on the page's thread), tokenize, adapter,
// generate, tune, stop. Messages out: status, loaded, adapter, tokens, chunk, done,
// error. Generation advances one token per step() with a yield to the event
// loop between steps, so Stop is seen at once.
importScripts("wasm_exec.js");

const ready = new Promise((resolve) => { self.llmlabReady = resolve; });
const go = new Go();
WebAssembly.instantiateStreaming(fetch("llmlab.wasm"), go.importObject)
  .then((r) => go.run(r.instance))
  .catch((e) => postMessage({ type: "error", error: "could not start the WebAssembly engine: " + e }));

async function bytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(url + ": HTTP " + r.status);
  return new Uint8Array(await r.arrayBuffer());
}

let stopping = false;

// Steps run in slices of about 25 ms; between slices the worker yields
// (through a MessageChannel, which, unlike setTimeout, is not clamped to
// 4 ms) so that a Stop message gets in.
const tick = new MessageChannel();
tick.port1.onmessage = () => runSteps();

function runSteps() {
  const t0 = performance.now();
  let text = "";
  for (;;) {
    if (stopping) llmlab.stop();
    const s = llmlab.step();
    if (!s.ok) { postMessage({ type: "error", error: s.error }); return; }
    text += s.text || "";
    if (s.done) {
      if (text) postMessage({ type: "chunk", text });
      postMessage({ type: "done", ids: s.ids, tokens: s.tokens, tokensPerSecond: s.tokensPerSecond, finish: s.finish, text: s.fullText });
      return;
    }
    if (performance.now() - t0 > 25) break;
  }
  if (text) postMessage({ type: "chunk", text });
  tick.port2.postMessage(0);
}

// Tuning runs in slices too, so Stop and the page's updates get through.
const tuneTick = new MessageChannel();
tuneTick.port1.onmessage = () => tuneSteps();

function tuneSteps() {
  const t0 = performance.now();
  for (;;) {
    const s = llmlab.tuneStep();
    if (!s.ok) { postMessage({ type: "error", error: s.error }); return; }
    postMessage({ type: "tuneLoss", step: s.step, steps: s.steps, loss: s.loss });
    if (s.done) { postMessage({ type: "tuned", steps: s.steps }); postMessage({ type: "adapter", available: true, on: true }); return; }
    if (stopping || performance.now() - t0 > 50) break;
  }
  if (stopping) { postMessage({ type: "error", error: "tuning stopped" }); return; }
  tuneTick.port2.postMessage(0);
}

onmessage = async (e) => {
  const m = e.data;
  try {
    await ready;
    switch (m.type) {
      case "loadDemo": {
        postMessage({ type: "status", text: "loading the demo model…" });
        const [c, w, t, tc] = await Promise.all(["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"].map((f) => bytes("model/" + f)));
        const r = llmlab.load(c, w, t, tc);
        if (!r.ok) throw new Error(r.error);
        postMessage({ type: "loaded", params: r.params, vocab: r.vocab, context: r.context, chat: r.chat, name: "demo" });
        try {
          const [ac, aw] = await Promise.all([bytes("adapter/adapter_config.json"), bytes("adapter/adapter_model.safetensors")]);
          const a = llmlab.loadAdapter(ac, aw);
          if (a.ok) { llmlab.setAdapter(false); postMessage({ type: "adapter", available: true, on: false }); }
        } catch (err) {
          postMessage({ type: "adapter", available: false, on: false });
        }
        break;
      }
      case "loadFiles": {
        const r = llmlab.load(m.config, m.weights, m.tokenizer, m.tokenizerConfig || null);
        if (!r.ok) throw new Error(r.error);
        postMessage({ type: "loaded", params: r.params, vocab: r.vocab, context: r.context, chat: r.chat, name: m.name });
        postMessage({ type: "adapter", available: false, on: false });
        break;
      }
      case "loadGGUF": {
        // Size and magic first, from the File alone: a wrong or too large
        // file is refused before its bytes are read.
        const f = m.file;
        const head = new Uint8Array(await f.slice(0, 4).arrayBuffer());
        const c = llmlab.checkFile(f.name, f.size, head);
        if (!c.ok) throw new Error(c.error);
        // Copied into the engine 16 MiB at a time, so the whole file is
        // never held twice.
        const b = llmlab.fileBegin(f.name, f.size);
        if (!b.ok) throw new Error(b.error);
        const chunk = 16 << 20;
        try {
          for (let off = 0; off < f.size; off += chunk) {
            postMessage({ type: "status", text: `reading ${f.name}: ${(off / 1048576).toFixed(0)} of ${(f.size / 1048576).toFixed(1)} MiB…` });
            const w = llmlab.fileWrite(off, new Uint8Array(await f.slice(off, off + chunk).arrayBuffer()));
            if (!w.ok) throw new Error(w.error);
          }
        } catch (err) {
          llmlab.fileBegin(f.name, 0); // let the partial copy go
          throw err;
        }
        postMessage({ type: "status", text: `opening ${f.name}…` });
        const r = llmlab.loadGGUF(f.name);
        if (!r.ok) throw new Error(r.error);
        postMessage({ type: "loaded", params: r.params, vocab: r.vocab, context: r.context, chat: r.chat,
          name: `${r.name} (GGUF, ${r.arch} ${r.type})` });
        postMessage({ type: "adapter", available: false, on: false });
        break;
      }
      case "tokenize":
        postMessage({ type: "tokens", ...llmlab.tokenize(m.text) });
        break;
      case "adapter":
        postMessage({ type: "adapter", available: true, on: llmlab.setAdapter(m.on) });
        break;
      case "generate": {
        stopping = false;
        const r = llmlab.start(m.prompt, m.opts);
        if (!r.ok) throw new Error(r.error);
        runSteps();
        break;
      }
      case "tune": {
        stopping = false;
        postMessage({ type: "status", text: "tuning…" });
        const data = await bytes("data/instruct_train.jsonl");
        const r = llmlab.tuneStart(data, m.opts);
        if (!r.ok) throw new Error(r.error);
        tuneSteps();
        break;
      }
      case "stop":
        stopping = true;
        break;
    }
  } catch (err) {
    postMessage({ type: "error", error: String(err.message || err) });
  }
};
