"""Goldens for the browser build's GGUF test (wasm/main_test.go): what the
CLI decodes from the GGUF files `llmlab export --quant` writes.

Builds llmlab, exports the embedded demo model at q8_0 and q4_0, and runs
`llmlab generate --temperature 0` on each file, once on a plain prompt and
once with --chat (the file's own chat template). Writes
wasm/testdata/gguf_greedy.json: per type the sha256 of the file (the wasm
test checks that its own export is the same file) and the CLI's greedy ids
per prompt. Needs only Go.
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "wasm", "testdata", "gguf_greedy.json")
PROMPTS = [{"prompt": "Once upon a time", "chat": False}, {"prompt": "What is 2+3?", "chat": True}]
N = 32
TYPES = ["q8_0", "q4_0"]


def main():
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "llmlab")
        env = dict(os.environ, CGO_ENABLED="0")
        subprocess.run(["go", "build", "-tags", "nogui", "-o", exe, "."], cwd=ROOT, env=env, check=True)
        types = {}
        for q in TYPES:
            path = os.path.join(tmp, f"demo-{q}.gguf")
            subprocess.run([exe, "export", "--model", "demo", "--quant", q, "--out", path], check=True, stdout=subprocess.DEVNULL)
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            runs = []
            for p in PROMPTS:
                cmd = [exe, "generate", "--model", path, "--prompt", p["prompt"], "--temperature", "0",
                       "--max-tokens", str(N), "--json"] + (["--chat"] if p["chat"] else [])
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                res = json.loads(out.strip().splitlines()[-1])
                runs.append({"ids": res["ids"], "text": res["text"]})
            types[q] = {"sha256": digest, "runs": runs}
            print(q, digest[:12], [r["text"][:40] for r in runs], file=sys.stderr)
    with open(OUT, "w") as f:
        f.write("{\"prompts\": %s, \"n\": %d, \"types\": {\n" % (json.dumps(PROMPTS), N))
        f.write(",\n".join("%s: %s" % (json.dumps(q), json.dumps(v, ensure_ascii=False)) for q, v in types.items()))
        f.write("\n}}\n")


if __name__ == "__main__":
    main()
