#!/usr/bin/env python3
"""Checks the model-family golden files against transformers itself.

tools/golden/families.py writes the goldens under
core/model/testdata/golden/families/ from hand-written forward passes
(Debian's python3-torch has no transformers). Where transformers is
installed (tools/gpu-check.sh runs this on the GPU machine), this loads
each case folder with AutoModelForCausalLM, runs the case's batch and
compares with expected.safetensors: the largest logit difference, the
loss, and the 12 greedy tokens (transformers' generate with its own KV
cache). One line per case, then a summary; the exit status is 1 when a
case disagrees.

With --write it also writes transformers.json into each case folder: the
transformers version and the greedy ids its generate produced. TestFamilies
decodes through llmlab's KV cache against those ids, which differ from the
golden's recomputed ones where the RoPE table depends on the length
(longrope: keys cached before the switch keep the short factors).

    python3 tools/golden/families_transformers.py [--write] [CASE ...]
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen import read_safetensors  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "core", "model", "testdata", "golden", "families")


def text_only(folder, cfg, tmp):
    """A multimodal checkpoint's language model as a folder of its own:
    text_config as config.json, the language_model. tensors renamed (the
    part of the checkpoint llmlab reads)."""
    from safetensors.torch import save_file
    text = dict(cfg["text_config"])
    text.setdefault("torch_dtype", cfg.get("torch_dtype"))
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(text, f)
    ts = read_safetensors(os.path.join(folder, "model.safetensors"))
    ts = {k.split("language_model.", 1)[-1]: v.contiguous() for k, v in ts.items()}
    save_file(ts, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
    return tmp


def load(folder, dtype):
    import transformers
    # The goldens' vocabularies are tiny: a family's default pad id (e.g.
    # 32000) would not fit them.
    kw = dict(attn_implementation="eager", pad_token_id=0)
    try:
        m = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **kw)
    except TypeError:
        m = transformers.AutoModelForCausalLM.from_pretrained(folder, torch_dtype=dtype, **kw)
    return m.eval()


def check(name, write):
    folder = os.path.join(ROOT, name)
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(folder, "batch.json")) as f:
        batch = json.load(f)
    exp = read_safetensors(os.path.join(folder, "expected.safetensors"))
    dtype = torch.bfloat16 if cfg.get("torch_dtype") == "bfloat16" else torch.float32
    if "text_config" in cfg:
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            m = load(text_only(folder, cfg, tmp), dtype)
    else:
        m = load(folder, dtype)
    ids = torch.tensor(batch["ids"])
    targets = torch.tensor(batch["targets"])
    with torch.no_grad():
        logits = m(input_ids=ids, use_cache=False).logits.float()
        V = logits.shape[-1]
        loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=-100)
        want = exp["logits"].float().reshape(logits.shape)
        diff = (logits - want).abs().max().item()
        scale = want.abs().max().item()
        prompt = torch.tensor([batch["prompt"]])
        out = m.generate(prompt, max_new_tokens=12, min_new_tokens=12, do_sample=False,
                         pad_token_id=0, eos_token_id=None)
    got = out[0, len(batch["prompt"]):].tolist()
    if write:
        import transformers
        with open(os.path.join(folder, "transformers.json"), "w") as f:
            json.dump({"transformers": transformers.__version__, "greedy": got}, f)
            f.write("\n")
    greedy = [int(x) for x in exp["greedy"].tolist()]
    same = sum(a == b for a, b in zip(got, greedy))
    # bf16: the golden and transformers each round to bf16 after their own
    # ops, in their own order; three layers of that leave a few percent on
    # a logit (the loss and the greedy tokens still agree).
    tol = 5e-2 if dtype == torch.bfloat16 else 1e-4
    # Where the RoPE table depends on the length (longrope), the golden
    # recomputes every prefix and transformers' cache keeps the factors
    # each key was made with: only the logits are compared then.
    recompute = (cfg.get("rope_scaling") or {}).get("type", (cfg.get("rope_scaling") or {}).get("rope_type")) == "longrope"
    ok = diff <= tol * max(1.0, scale) and (same == len(greedy) or recompute)
    print(f"{'ok  ' if ok else 'FAIL'} {name:24s} max|dlogit| {diff:.2e} (of {scale:.2f})  loss {loss.item():.6f} vs {exp['loss'].item():.6f}  greedy {same}/{len(greedy)}", flush=True)
    if same != len(greedy):
        print(f"     transformers {got}\n     golden       {greedy}", flush=True)
    return ok


def main(args):
    write = "--write" in args
    names = [a for a in args if a != "--write"]
    try:
        import transformers
    except ImportError:
        print("families_transformers.py: transformers is not installed here", file=sys.stderr)
        return 2
    print(f"# transformers {transformers.__version__}, torch {torch.__version__}", flush=True)
    names = names or sorted(os.listdir(ROOT))
    bad = []
    for n in names:
        try:
            if not check(n, write):
                bad.append(n)
        except Exception as e:  # report the case and go on
            print(f"FAIL {n:24s} {type(e).__name__}: {str(e)[:300]}", flush=True)
            bad.append(n)
    print(f"families vs transformers: {len(names) - len(bad)}/{len(names)} agree" + (f"; differ: {' '.join(bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
