#!/usr/bin/env python3
"""Golden files for llmlab's engine, computed with PyTorch (the oracle).

For each case it writes, under core/model/testdata/golden/<case>/, an HF
model folder (config.json, model.safetensors, tokenizer.json), batch.json
(ids and targets) and expected.safetensors: the logits, the loss, the
gradient of every parameter ("grad.<name>", in the file's layout) and the
parameters after one torch.optim.AdamW step ("adamw.<name>").

The models are written here in plain PyTorch following Hugging Face's math
(transformers is not needed): GPT-2 with Conv1D weights stored [in, out],
and Llama with RMSNorm, rotate-half RoPE, grouped-query attention and
SwiGLU. Run with Debian's python3-torch: `make golden`.
"""
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "core", "model", "testdata", "golden")
DT = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}


def read_safetensors(path, dtypes=("F32", "F16", "BF16")):
    """The tensors of a safetensors file, by name (copies); a tensor whose
    dtype is not in dtypes is an error naming it."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    types = {v: k for k, v in DT.items()}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in dtypes:
            raise ValueError(f"{path}: tensor {name} is {info['dtype']}, want one of {dtypes}")
        a, b = info["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[a:b]), dtype=types[info["dtype"]]).reshape(info["shape"]).clone()
    return out


def write_safetensors(path, tensors, metadata=None):
    """Our own writer: 8-byte header length, JSON header, data; names sorted."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        raw = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[name] = {"dtype": DT[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def write_tokenizer(folder):
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    doc = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": 256, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}],
        "normalizer": None, "pre_tokenizer": bl, "post_processor": bl, "decoder": bl,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": []},
    }
    with open(os.path.join(folder, "tokenizer.json"), "w") as f:
        json.dump(doc, f)


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def causal_attention(q, k, v):
    # q (B, H, T, D); k, v (B, H, T, D)
    T, D = q.shape[-2], q.shape[-1]
    att = (q @ k.transpose(-2, -1)) / math.sqrt(D)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    att = att.masked_fill(mask, float("-inf")).softmax(-1)
    return att @ v


def gpt2_forward(p, cfg, ids, pre=""):
    B, T = ids.shape
    C, H = cfg["n_embd"], cfg["n_head"]
    x = p[pre + "wte.weight"][ids] + p[pre + "wpe.weight"][torch.arange(T)]
    for i in range(cfg["n_layer"]):
        n = f"{pre}h.{i}."
        h = F.layer_norm(x, (C,), p[n + "ln_1.weight"], p[n + "ln_1.bias"], cfg["layer_norm_epsilon"])
        qkv = h @ p[n + "attn.c_attn.weight"] + p[n + "attn.c_attn.bias"]
        q, k, v = qkv.split(C, dim=2)
        q, k, v = [t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v)]
        a = causal_attention(q, k, v).transpose(1, 2).reshape(B, T, C)
        x = x + a @ p[n + "attn.c_proj.weight"] + p[n + "attn.c_proj.bias"]
        h = F.layer_norm(x, (C,), p[n + "ln_2.weight"], p[n + "ln_2.bias"], cfg["layer_norm_epsilon"])
        h = gelu_new(h @ p[n + "mlp.c_fc.weight"] + p[n + "mlp.c_fc.bias"])
        x = x + h @ p[n + "mlp.c_proj.weight"] + p[n + "mlp.c_proj.bias"]
    x = F.layer_norm(x, (C,), p[pre + "ln_f.weight"], p[pre + "ln_f.bias"], cfg["layer_norm_epsilon"])
    return x @ p[pre + "wte.weight"].T


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def llama_forward(p, cfg, ids):
    B, T = ids.shape
    C, H, KV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = C // H
    eps = cfg["rms_norm_eps"]
    inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, D, 2).float() / D))
    freqs = torch.outer(torch.arange(T).float(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    bias = cfg["model_type"] == "qwen2"
    x = p["model.embed_tokens.weight"][ids]
    for i in range(cfg["num_hidden_layers"]):
        n = f"model.layers.{i}."
        h = rms_norm(x, p[n + "input_layernorm.weight"], eps)

        def proj(name, t):
            y = t @ p[n + name + ".weight"].T
            if bias and name in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
                y = y + p[n + name + ".bias"]
            return y

        q = proj("self_attn.q_proj", h).view(B, T, H, D).transpose(1, 2)
        k = proj("self_attn.k_proj", h).view(B, T, KV, D).transpose(1, 2)
        v = proj("self_attn.v_proj", h).view(B, T, KV, D).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KV, dim=1)
        v = v.repeat_interleave(H // KV, dim=1)
        a = causal_attention(q, k, v).transpose(1, 2).reshape(B, T, C)
        x = x + a @ p[n + "self_attn.o_proj.weight"].T
        h = rms_norm(x, p[n + "post_attention_layernorm.weight"], eps)
        g = h @ p[n + "mlp.gate_proj.weight"].T
        u = h @ p[n + "mlp.up_proj.weight"].T
        x = x + (F.silu(g) * u) @ p[n + "mlp.down_proj.weight"].T
    x = rms_norm(x, p["model.norm.weight"], eps)
    head = p["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else p["lm_head.weight"]
    return x @ head.T


def gpt2_params(cfg, g):
    C, V, L, P = cfg["n_embd"], cfg["vocab_size"], cfg["n_layer"], cfg["n_positions"]
    r = lambda *s, std=0.02: torch.randn(*s, generator=g) * std
    p = {"wte.weight": r(V, C), "wpe.weight": r(P, C)}
    for i in range(L):
        n = f"h.{i}."
        p.update({
            n + "ln_1.weight": 1 + r(C, std=0.1), n + "ln_1.bias": r(C, std=0.1),
            n + "attn.c_attn.weight": r(C, 3 * C), n + "attn.c_attn.bias": r(3 * C, std=0.1),
            n + "attn.c_proj.weight": r(C, C), n + "attn.c_proj.bias": r(C, std=0.1),
            n + "ln_2.weight": 1 + r(C, std=0.1), n + "ln_2.bias": r(C, std=0.1),
            n + "mlp.c_fc.weight": r(C, 4 * C), n + "mlp.c_fc.bias": r(4 * C, std=0.1),
            n + "mlp.c_proj.weight": r(4 * C, C), n + "mlp.c_proj.bias": r(C, std=0.1),
        })
    p["ln_f.weight"], p["ln_f.bias"] = 1 + r(C, std=0.1), r(C, std=0.1)
    return p


def llama_params(cfg, g):
    C, V, L, I = cfg["hidden_size"], cfg["vocab_size"], cfg["num_hidden_layers"], cfg["intermediate_size"]
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = C // H
    r = lambda *s, std=0.05: torch.randn(*s, generator=g) * std
    p = {"model.embed_tokens.weight": r(V, C)}
    for i in range(L):
        n = f"model.layers.{i}."
        p.update({
            n + "input_layernorm.weight": 1 + r(C, std=0.1),
            n + "self_attn.q_proj.weight": r(H * D, C), n + "self_attn.k_proj.weight": r(KV * D, C),
            n + "self_attn.v_proj.weight": r(KV * D, C), n + "self_attn.o_proj.weight": r(C, H * D),
            n + "post_attention_layernorm.weight": 1 + r(C, std=0.1),
            n + "mlp.gate_proj.weight": r(I, C), n + "mlp.up_proj.weight": r(I, C), n + "mlp.down_proj.weight": r(C, I),
        })
        if cfg["model_type"] == "qwen2":
            for t, s in (("q", H * D), ("k", KV * D), ("v", KV * D)):
                p[n + f"self_attn.{t}_proj.bias"] = r(s, std=0.1)
    p["model.norm.weight"] = 1 + r(C, std=0.1)
    if not cfg["tie_word_embeddings"]:
        p["lm_head.weight"] = r(V, C)
    return p


def batch(g, V, B=2, T=12):
    ids = torch.randint(0, V, (B, T), generator=g)
    targets = torch.full((B, T), -100, dtype=torch.long)
    targets[:, :-1] = ids[:, 1:]
    targets[1, -4:] = -100  # a padded row: no loss on its tail
    return ids, targets


def run_case(name, cfg, params, forward, stored=None, grads=True, dtype=torch.float32):
    folder = os.path.join(ROOT, name)
    os.makedirs(folder, exist_ok=True)
    g = torch.Generator().manual_seed(1234)
    ids, targets = batch(g, cfg["vocab_size"])
    if dtype != torch.float32:
        params = {k: v.to(dtype).float() for k, v in params.items()}
    p = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    logits = forward(p, ids)
    loss = F.cross_entropy(logits.reshape(-1, cfg["vocab_size"]), targets.reshape(-1), ignore_index=-100)
    exp = {"logits": logits.detach(), "loss": loss.detach().reshape(1)}
    if grads:
        loss.backward()
        names = list(p)
        decay = [p[n] for n in names if p[n].ndim >= 2]
        nodecay = [p[n] for n in names if p[n].ndim < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": nodecay, "weight_decay": 0.0}],
                                lr=1e-3, betas=(0.9, 0.95), eps=1e-8, foreach=False)
        for n in names:
            exp["grad." + n] = p[n].grad.detach().clone()
        opt.step()
        for n in names:
            exp["adamw." + n] = p[n].detach().clone()
    save = stored(params) if stored else params
    write_safetensors(os.path.join(folder, "model.safetensors"), {k: v.to(dtype) for k, v in save.items()}, {"format": "pt"})
    cfg = dict(cfg)
    cfg["torch_dtype"] = {torch.float32: "float32", torch.bfloat16: "bfloat16"}[dtype]
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_tokenizer(folder)
    with open(os.path.join(folder, "batch.json"), "w") as f:
        json.dump({"ids": ids.tolist(), "targets": targets.tolist()}, f)
    write_safetensors(os.path.join(folder, "expected.safetensors"), exp)
    print(f"{name}: loss {loss.item():.6f}", file=sys.stderr)


def self_check():
    """The oracle's batched attention against a plain loop over queries."""
    g = torch.Generator().manual_seed(7)
    q, k, v = (torch.randn(2, 3, 5, 4, generator=g) for _ in range(3))
    ref = torch.zeros_like(q)
    for t in range(q.shape[2]):
        w = torch.softmax((q[:, :, t:t + 1] @ k[:, :, : t + 1].transpose(-2, -1)) / 2.0, -1)
        ref[:, :, t:t + 1] = w @ v[:, :, : t + 1]
    assert torch.allclose(causal_attention(q, k, v), ref, atol=1e-6), "attention self-check failed"


def main():
    torch.manual_seed(0)
    self_check()
    gcfg = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": 257, "n_positions": 32,
            "n_embd": 32, "n_layer": 2, "n_head": 4, "n_inner": None, "layer_norm_epsilon": 1e-5,
            "activation_function": "gelu_new", "tie_word_embeddings": True}
    gp = gpt2_params(gcfg, torch.Generator().manual_seed(1))
    run_case("gpt2", gcfg, gp, lambda p, ids: gpt2_forward(p, gcfg, ids))
    # The same model saved as GPT2LMHeadModel does: prefixed names and an explicit tied head.
    pre = {"transformer." + k: v for k, v in gp.items()}

    def with_head(params):
        out = dict(params)
        out["lm_head.weight"] = params["transformer.wte.weight"]
        return out
    run_case("gpt2_prefixed", gcfg, pre, lambda p, ids: gpt2_forward(p, gcfg, ids, "transformer."), stored=with_head)

    lcfg = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 257, "hidden_size": 32,
            "intermediate_size": 80, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
            "tie_word_embeddings": False, "attention_bias": False, "hidden_act": "silu"}
    lp = llama_params(lcfg, torch.Generator().manual_seed(2))
    run_case("llama", lcfg, lp, lambda p, ids: llama_forward(p, lcfg, ids))
    run_case("llama_bf16", lcfg, lp, lambda p, ids: llama_forward(p, lcfg, ids), grads=False, dtype=torch.bfloat16)

    qcfg = dict(lcfg, model_type="qwen2", architectures=["Qwen2ForCausalLM"], num_key_value_heads=1,
                tie_word_embeddings=True, rope_theta=1000000.0)
    qcfg.pop("attention_bias")
    qp = llama_params(qcfg, torch.Generator().manual_seed(3))
    run_case("qwen2", qcfg, qp, lambda p, ids: llama_forward(p, qcfg, ids))


if __name__ == "__main__":
    main()
