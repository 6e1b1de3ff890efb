"""Goldens for app/cli's GGUF tests: what llama.cpp does with the files
`llmlab export --quant` writes.

Builds llmlab, exports the embedded demo model at every --quant type and
runs llama.cpp greedy on each (tools/gguf-check/generate.mjs, node-llama-cpp's
prebuilt CPU build: `NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install` in
tools/gguf-check). Writes app/cli/testdata/gguf_llamacpp.json: per type the
sha256 of the file (the Go test checks its own export is the same file),
llama.cpp's prompt ids and its greedy ids.
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "app", "cli", "testdata", "gguf_llamacpp.json")
PROMPTS = ["Once upon a time", "The little dog"]
N = 32
TYPES = ["f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0"]


def main():
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "llmlab")
        env = dict(os.environ, CGO_ENABLED="0")
        subprocess.run(["go", "build", "-tags", "nogui", "-o", exe, "."], cwd=ROOT, env=env, check=True)
        golden = {"prompts": PROMPTS, "n": N, "types": {}}
        for q in TYPES:
            path = os.path.join(tmp, f"demo-{q}.gguf")
            subprocess.run([exe, "export", "--model", "demo", "--quant", q, "--out", path], check=True, stdout=subprocess.DEVNULL)
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            runs = []
            for p in PROMPTS:
                out = subprocess.run(["node", "generate.mjs", path, p, str(N)], cwd=os.path.join(ROOT, "tools", "gguf-check"),
                                     check=True, capture_output=True, text=True).stdout
                runs.append(json.loads(out.strip().splitlines()[-1]))
            golden["types"][q] = {"sha256": digest, "runs": runs}
            print(q, digest[:12], [r["text"][:40] for r in runs], file=sys.stderr)
    with open(OUT, "w") as f:
        # one line per type: small diffs when a type changes
        f.write("{\"prompts\": %s, \"n\": %d, \"types\": {\n" % (json.dumps(PROMPTS), N))
        f.write(",\n".join("%s: %s" % (json.dumps(q), json.dumps(v, ensure_ascii=False)) for q, v in golden["types"].items()))
        f.write("\n}}\n")


if __name__ == "__main__":
    main()
