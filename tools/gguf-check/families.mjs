// For each model family: make a tiny model of it (families/NAME.json, the
// byte-level tokenizer), pretrain it briefly on the demo stories, export it
// to GGUF (f32 and f16), and compare the greedy continuation of one prompt
// in llmlab and in llama.cpp (decode.mjs). Prints a table; exits 1 when a
// family differs.
//
//   node families.mjs --llmlab BIN [--data STORIES] [--work DIR] [--only a,b] [--update TESTDATA] [--reuse yes]
//
// --data defaults to the demo stories (assets/data/stories.txt.gz).
// --update writes each trained model and its golden.json (the llama.cpp
// ids and the SHA-256 of the f32 GGUF file it ran) under
// TESTDATA/tiny-NAME for the Go test that checks later exports without
// node. --reuse yes keeps models a previous run left in --work.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = {};
for (let i = 0; i < args.length; i += 2) opt[args[i].replace(/^--/, "")] = args[i + 1];
if (!opt.llmlab) {
  console.error("usage: node families.mjs --llmlab BIN [--data STORIES] [--work DIR] [--only a,b] [--update TESTDATA] [--reuse yes]");
  process.exit(2);
}
const llmlab = path.resolve(opt.llmlab);
const data = path.resolve(opt.data ?? path.join(here, "..", "..", "assets", "data", "stories.txt.gz"));
const work = path.resolve(opt.work ?? fs.mkdtempSync(path.join(os.tmpdir(), "gguf-families-")));
const families = (opt.only ? opt.only.split(",") : fs.readdirSync(path.join(here, "families")).map((f) => f.replace(/\.json$/, ""))).sort();

const PROMPT = "Once upon a time";
const N = 32, STEPS = 300, SEED = 1;
const EOS = 256; // the byte-level tokenizer's <|endoftext|>

const sh = (...a) => execFileSync(llmlab, a, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 1 << 26 });
const lastJSON = (s) => JSON.parse(s.trim().split("\n").pop());
const untilEOS = (ids) => (ids.indexOf(EOS) >= 0 ? ids.slice(0, ids.indexOf(EOS)) : ids);
const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const firstDiff = (a, b) => { let i = 0; while (i < a.length && i < b.length && a[i] === b[i]) i++; return i; };
const sha256 = (f) => createHash("sha256").update(fs.readFileSync(f)).digest("hex");

const rows = [];
const expectedDiff = new Set(); // families llama.cpp cannot run as llmlab does, with the reason shown
let bad = 0;
for (const fam of families) {
  const dir = path.join(work, fam);
  const model = path.join(dir, "tiny-" + fam); // general.name in the GGUF
  const reuse = opt.reuse === "yes" && fs.existsSync(path.join(model, "model.safetensors"));
  if (!reuse) {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
  }
  const cfg = path.join(here, "families", fam + ".json");
  const commands = [
    ["init", "--config", `tools/gguf-check/families/${fam}.json`, "--out", "init", "--seed", String(SEED)],
    ["pretrain", "--model", "init", "--data", "assets/data/stories.txt.gz", "--steps", String(STEPS), "--batch", "16", "--ctx", "64",
      "--lr", "1e-2", "--save-dtype", "f16", "--out", "run"],
  ];
  if (!reuse) {
    sh("init", "--config", cfg, "--out", path.join(dir, "init"), "--seed", String(SEED));
    sh("pretrain", "--model", path.join(dir, "init"), "--data", data, "--steps", String(STEPS), "--batch", "16", "--ctx", "64",
      "--lr", "1e-2", "--save-dtype", "f16", "--out", path.join(dir, "run"));
    fs.cpSync(path.join(dir, "run", "final"), model, { recursive: true });
  }
  const prompt = lastJSON(sh("tokenize", "--model", model, "--text", PROMPT, "--special", "--json")).ids;
  const ours = untilEOS(lastJSON(sh("generate", "--model", model, "--prompt", PROMPT, "--temperature", "0",
    "--max-tokens", String(N), "--json")).ids);
  const theirs = {};
  for (const dt of ["f32", "f16"]) {
    const g = path.join(dir, `${fam}-${dt}.gguf`);
    sh("export", "--model", model, "--format", "gguf", "--dtype", dt, "--out", g, "--template", "plain");
    try {
      const out = execFileSync("node", [path.join(here, "decode.mjs"), "--model", g, "--tokens", prompt.join(","), "--n", String(N)],
        { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
      theirs[dt] = untilEOS(lastJSON(out).ids);
    } catch (e) {
      const why = String(e.stderr).split("\n").find((l) => l.includes("error")) ?? String(e.stderr).split("\n")[0];
      console.error(`${fam} ${dt}: llama.cpp failed: ${String(e.stderr).slice(0, 2000)}`);
      theirs[dt] = { failed: why.replace(/^\[node-llama-cpp\] /, "") };
    }
  }
  // llama.cpp runs Mistral as architecture llama, which has no sliding
  // window: check that it matches llmlab running the same weights with
  // the window removed, so the difference is the window and nothing else.
  let note = "";
  const json = JSON.parse(fs.readFileSync(path.join(model, "config.json"), "utf8"));
  if (json.model_type === "mistral" && json.sliding_window) {
    const open = model + "-nowindow";
    fs.rmSync(open, { recursive: true, force: true });
    fs.cpSync(model, open, { recursive: true });
    fs.writeFileSync(path.join(open, "config.json"), JSON.stringify({ ...json, sliding_window: null }));
    const full = untilEOS(lastJSON(sh("generate", "--model", open, "--prompt", PROMPT, "--temperature", "0",
      "--max-tokens", String(N), "--json")).ids);
    note = `llmlab without the window: ${same(full, theirs.f32) ? "same" : "differs at " + firstDiff(full, theirs.f32)} as llama.cpp f32`;
    if (!theirs.f32.failed && same(full, theirs.f32)) expectedDiff.add(fam);
  }
  const verdict = (t) => (t.failed ? "load failed" : same(ours, t) ? "same" : `differs at ${firstDiff(ours, t)}`);
  const ok32 = verdict(theirs.f32) === "same", ok16 = verdict(theirs.f16) === "same";
  if (!ok32 && !expectedDiff.has(fam)) bad++;
  const text = Buffer.from(ours.filter((t) => t < 256)).toString("latin1");
  rows.push({ fam, n: ours.length, f32: verdict(theirs.f32), f16: verdict(theirs.f16), text, note });
  if (!ok32) {
    console.error(`${fam}: llmlab   ${JSON.stringify(ours)}\n${fam}: llama.cpp ${JSON.stringify(theirs.f32)}`);
  }
  if (opt.update && (ok32 || expectedDiff.has(fam))) {
    const dst = path.join(path.resolve(opt.update), path.basename(model));
    fs.rmSync(dst, { recursive: true, force: true });
    fs.mkdirSync(dst, { recursive: true });
    for (const f of ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]) {
      if (fs.existsSync(path.join(model, f))) fs.copyFileSync(path.join(model, f), path.join(dst, f));
    }
    const golden = {
      family: fam,
      made_by: [...commands.map((c) => "llmlab " + c.join(" ")), `cp -r run/final ${path.basename(model)}`,
        `llmlab export --model ${path.basename(model)} --format gguf --dtype f32 --out ${fam}-f32.gguf --template plain`],
      prompt: PROMPT, prompt_ids: prompt, max_tokens: N,
      gguf_f32_sha256: sha256(path.join(dir, `${fam}-f32.gguf`)),
      llamacpp_f32_ids: theirs.f32, llamacpp_f16_ids: theirs.f16, llmlab_ids: ours,
      // llama.cpp ran without the sliding window: it matched llmlab with
      // the window removed from config.json.
      without_window: expectedDiff.has(fam),
    };
    fs.writeFileSync(path.join(dst, "golden.json"), JSON.stringify(golden, null, 1) + "\n");
  }
}
const pad = (s, n) => String(s).padEnd(n);
console.log(`| ${pad("family", 8)} | tokens | llama.cpp f32 | llama.cpp f16 | llmlab greedy text | note |`);
console.log(`|${"-".repeat(10)}|--------|---------------|---------------|--------------------|------|`);
for (const r of rows) {
  console.log(`| ${pad(r.fam, 8)} | ${pad(r.n, 6)} | ${pad(r.f32, 13)} | ${pad(r.f16, 13)} | ${JSON.stringify(r.text)} | ${r.note} |`);
}
console.log(`(${STEPS} pretraining steps each, prompt ${JSON.stringify(PROMPT)}, ${N} greedy tokens)`);
process.exit(bad ? 1 : 0);
