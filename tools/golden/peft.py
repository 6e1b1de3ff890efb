#!/usr/bin/env python3
"""Golden files for llmlab's PEFT methods, computed with PyTorch.

For each case it writes lora/testdata/golden/<case>/: an adapter folder in
HF PEFT's layout (adapter_config.json + adapter_model.safetensors with
PEFT's key names), batch.json, and expected.safetensors with the logits,
the loss and the gradient of every adapter tensor ("grad.<PEFT key>").
The base models are the engine's golden models (core/model/testdata/golden/
llama and gpt2), read from their model.safetensors.

The methods are written here in plain PyTorch after PEFT's definitions
(PEFT itself is not needed): LoRA y = base(x) + s·B(A(x)); DoRA with the
row norm of W + s·BA detached; IA3 scaling outputs, or inputs for
feed-forward modules; prefix tuning as past keys/values (not rotated) with
the real tokens at positions P..; prompt tuning as embeddings put before
the input. The Qwen3 case adapts every linear layer and computes its
logits with a separate Qwen3 forward on the merged weights W + (alpha/r)·B·A.
Run with Debian's python3-torch: `make golden`.
"""
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen import batch, gelu_new, rms_norm, rotate_half, write_safetensors  # noqa: E402
from gen import read_safetensors as gen_read_safetensors  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BASES = os.path.join(HERE, "..", "..", "core", "model", "testdata", "golden")
OUT = os.path.join(HERE, "..", "..", "lora", "testdata", "golden")
PRE = "base_model.model."
# Case names given on the command line: write only those (all when empty).
ONLY = set(sys.argv[1:])


def read_safetensors(path):
    return gen_read_safetensors(path, dtypes=("F32",))


def attention(q, k, v, P):
    """q (B,H,T,D); k, v (B,H,P+T,D): query i sees the P prefix keys and keys <= i."""
    T, D = q.shape[-2], q.shape[-1]
    att = (q @ k.transpose(-2, -1)) / math.sqrt(D)
    mask = torch.ones(T, P + T, dtype=torch.bool).triu(P + 1)
    return att.masked_fill(mask, float("-inf")).softmax(-1) @ v


def llama(p, cfg, ids, lin, prefix=None, prompt=None):
    B, T = ids.shape
    C, H, KV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D, eps = C // H, cfg["rms_norm_eps"]
    x = p["model.embed_tokens.weight"][ids]
    P0 = 0
    if prompt is not None:
        x = torch.cat([prompt.unsqueeze(0).expand(B, -1, -1), x], dim=1)
        P0 = prompt.shape[0]
    T2 = x.shape[1]
    P = prefix[0][0].shape[2] if prefix is not None else 0
    pos = torch.arange(P, P + T2).float()
    inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, D, 2).float() / D))
    emb = torch.outer(pos, inv_freq)
    emb = torch.cat((emb, emb), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    for i in range(cfg["num_hidden_layers"]):
        n = f"model.layers.{i}."
        h = rms_norm(x, p[n + "input_layernorm.weight"], eps)
        q = lin(n + "self_attn.q_proj", h).view(B, T2, H, D).transpose(1, 2)
        k = lin(n + "self_attn.k_proj", h).view(B, T2, KV, D).transpose(1, 2)
        v = lin(n + "self_attn.v_proj", h).view(B, T2, KV, D).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if prefix is not None:
            pk, pv = prefix[i]
            k = torch.cat([pk.expand(B, -1, -1, -1), k], dim=2)
            v = torch.cat([pv.expand(B, -1, -1, -1), v], dim=2)
        k = k.repeat_interleave(H // KV, dim=1)
        v = v.repeat_interleave(H // KV, dim=1)
        a = attention(q, k, v, P).transpose(1, 2).reshape(B, T2, C)
        x = x + lin(n + "self_attn.o_proj", a)
        h = rms_norm(x, p[n + "post_attention_layernorm.weight"], eps)
        x = x + lin(n + "mlp.down_proj", F.silu(lin(n + "mlp.gate_proj", h)) * lin(n + "mlp.up_proj", h))
    x = rms_norm(x, p["model.norm.weight"], eps)
    head = p["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else p["lm_head.weight"]
    return (x @ head.T)[:, P0:]


def gpt2(p, cfg, ids, lin, prefix=None, prompt=None):
    B, T = ids.shape
    C, H = cfg["n_embd"], cfg["n_head"]
    D = C // H
    x = p["wte.weight"][ids]
    P0 = 0
    if prompt is not None:
        x = torch.cat([prompt.unsqueeze(0).expand(B, -1, -1), x], dim=1)
        P0 = prompt.shape[0]
    T2 = x.shape[1]
    P = prefix[0][0].shape[2] if prefix is not None else 0
    x = x + p["wpe.weight"][torch.arange(P, P + T2)]
    for i in range(cfg["n_layer"]):
        n = f"h.{i}."
        h = F.layer_norm(x, (C,), p[n + "ln_1.weight"], p[n + "ln_1.bias"], cfg["layer_norm_epsilon"])
        q, k, v = lin(n + "attn.c_attn", h).split(C, dim=2)
        q, k, v = [t.view(B, T2, H, D).transpose(1, 2) for t in (q, k, v)]
        if prefix is not None:
            pk, pv = prefix[i]
            k = torch.cat([pk.expand(B, -1, -1, -1), k], dim=2)
            v = torch.cat([pv.expand(B, -1, -1, -1), v], dim=2)
        a = attention(q, k, v, P).transpose(1, 2).reshape(B, T2, C)
        x = x + lin(n + "attn.c_proj", a)
        h = F.layer_norm(x, (C,), p[n + "ln_2.weight"], p[n + "ln_2.bias"], cfg["layer_norm_epsilon"])
        x = x + lin(n + "mlp.c_proj", gelu_new(lin(n + "mlp.c_fc", h)))
    x = F.layer_norm(x, (C,), p["ln_f.weight"], p["ln_f.bias"], cfg["layer_norm_epsilon"])
    return (x @ p["wte.weight"].T)[:, P0:]


class Base:
    """A golden base model with a projection hook."""

    def __init__(self, name):
        folder = os.path.join(BASES, name)
        with open(os.path.join(folder, "config.json")) as f:
            self.cfg = json.load(f)
        self.p = read_safetensors(os.path.join(folder, "model.safetensors"))
        self.gpt2 = self.cfg["model_type"] == "gpt2"
        self.name = name

    def weight(self, module):
        """(W (out, in), bias or None) in math layout."""
        w = self.p[module + ".weight"]
        if self.gpt2:
            w = w.T  # Conv1D stores [in, out]
        return w, self.p.get(module + ".bias")

    def peft_module(self, module):
        return PRE + ("transformer." + module if self.gpt2 else module)

    def modules(self, shorts):
        out = []
        for m in self.p:
            if not m.endswith(".weight"):
                continue
            mod = m[: -len(".weight")]
            if any(mod == s or mod.endswith("." + s) for s in shorts) and self.p[m].ndim == 2 and "wte" not in mod and "wpe" not in mod:
                out.append(mod)
        return sorted(out)

    def logits(self, ids, lin=None, prefix=None, prompt=None):
        def plain(module, x):
            w, b = self.weight(module)
            y = x @ w.T
            return y + b if b is not None else y
        f = gpt2 if self.gpt2 else llama
        return f(self.p, self.cfg, ids, lin or plain, prefix, prompt)


def write_case(name, base, config, tensors, forward):
    """tensors: PEFT key -> tensor (requires_grad). forward(tensors, ids) -> logits."""
    if ONLY and name not in ONLY:
        return
    folder = os.path.join(OUT, name)
    os.makedirs(folder, exist_ok=True)
    g = torch.Generator().manual_seed(99)
    V = base.cfg["vocab_size"]
    ids, targets = batch(g, V)
    logits = forward(ids)
    loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=-100)
    loss.backward()
    exp = {"logits": logits.detach(), "loss": loss.detach().reshape(1)}
    for k, t in tensors.items():
        exp["grad." + k] = t.grad.detach().clone()
    config = dict(config, base_model_name_or_path=base.name, task_type="CAUSAL_LM", inference_mode=True)
    with open(os.path.join(folder, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2)
    write_safetensors(os.path.join(folder, "adapter_model.safetensors"), {k: t.detach() for k, t in tensors.items()}, {"format": "pt"})
    write_safetensors(os.path.join(folder, "expected.safetensors"), exp)
    with open(os.path.join(folder, "batch.json"), "w") as f:
        json.dump({"base": base.name, "ids": ids.tolist(), "targets": targets.tolist()}, f)
    print(f"{name}: loss {loss.item():.6f}", file=sys.stderr)


def lora_case(name, base, shorts, r, alpha, g, dora=False, rslora=False):
    s = alpha / math.sqrt(r) if rslora else alpha / r
    tensors, layers = {}, {}
    for mod in base.modules(shorts):
        w, _ = base.weight(mod)
        out, inn = w.shape
        key = base.peft_module(mod)
        A = (torch.randn(r, inn, generator=g) / math.sqrt(inn)).requires_grad_(True)
        B = (torch.randn(out, r, generator=g) * 0.1).requires_grad_(True)
        tensors[key + ".lora_A.weight"], tensors[key + ".lora_B.weight"] = A, B
        layer = {"A": A, "B": B}
        if dora:
            m = (w.norm(dim=1) * (1 + 0.1 * torch.randn(out, generator=g))).requires_grad_(True)
            tensors[key + ".lora_magnitude_vector"] = m
            layer["m"] = m
        layers[mod] = layer

    def lin(module, x):
        w, b = base.weight(module)
        y = x @ w.T
        if module not in layers:
            return y + b if b is not None else y
        L = layers[module]
        lora = (x @ L["A"].T) @ L["B"].T
        if "m" in L:
            # PEFT's DoRA: the norm of W + s·BA is a constant for autograd.
            wn = (w + s * (L["B"] @ L["A"])).norm(p=2, dim=1).detach()
            scale = L["m"] / wn
            y = y * scale + lora * s * scale
        else:
            y = y + s * lora
        return y + b if b is not None else y

    config = {"peft_type": "LORA", "r": r, "lora_alpha": alpha, "lora_dropout": 0.0, "target_modules": shorts,
              "bias": "none", "fan_in_fan_out": base.gpt2, "use_rslora": rslora, "use_dora": dora, "modules_to_save": None}
    write_case(name, base, config, tensors, lambda ids: base.logits(ids, lin=lin))


def ia3_case(name, base, shorts, ff, g):
    tensors, layers = {}, {}
    for mod in base.modules(shorts):
        w, _ = base.weight(mod)
        out, inn = w.shape
        is_ff = any(mod == s or mod.endswith("." + s) for s in ff)
        shape = (1, inn) if is_ff else (out, 1)
        l = (1 + 0.3 * torch.randn(*shape, generator=g)).requires_grad_(True)
        tensors[base.peft_module(mod) + ".ia3_l"] = l
        layers[mod] = (l, is_ff)

    def lin(module, x):
        w, b = base.weight(module)
        if module in layers and layers[module][1]:
            x = x * layers[module][0].reshape(-1)
        y = x @ w.T
        if b is not None:
            y = y + b
        if module in layers and not layers[module][1]:
            y = y * layers[module][0].reshape(-1)
        return y

    config = {"peft_type": "IA3", "target_modules": shorts, "feedforward_modules": ff, "fan_in_fan_out": base.gpt2,
              "init_ia3_weights": True}
    write_case(name, base, config, tensors, lambda ids: base.logits(ids, lin=lin))


def prefix_case(name, base, P, g):
    cfg = base.cfg
    if base.gpt2:
        L, H, D, KV = cfg["n_layer"], cfg["n_head"], cfg["n_embd"] // cfg["n_head"], cfg["n_head"]
    else:
        L, H = cfg["num_hidden_layers"], cfg["num_attention_heads"]
        D, KV = cfg["hidden_size"] // H, cfg["num_key_value_heads"]
    emb = (torch.randn(P, L * 2 * KV * D, generator=g) * 0.5).requires_grad_(True)

    def forward(ids):
        kv = emb.view(P, L * 2, KV, D).permute(1, 2, 0, 3).unsqueeze(1)  # (L*2, 1, KV, P, D)
        prefix = [(kv[2 * l], kv[2 * l + 1]) for l in range(L)]
        return base.logits(ids, prefix=prefix)

    config = {"peft_type": "PREFIX_TUNING", "num_virtual_tokens": P, "token_dim": KV * D,
              "num_transformer_submodules": 1, "num_attention_heads": KV, "num_layers": L,
              "encoder_hidden_size": KV * D, "prefix_projection": False}
    write_case(name, base, config, {"prompt_embeddings": emb}, forward)


def prompt_case(name, base, P, g):
    cfg = base.cfg
    C = cfg["n_embd"] if base.gpt2 else cfg["hidden_size"]
    L = cfg["n_layer"] if base.gpt2 else cfg["num_hidden_layers"]
    H = cfg["n_head"] if base.gpt2 else cfg["num_attention_heads"]
    emb = (torch.randn(P, C, generator=g) * 0.5).requires_grad_(True)
    config = {"peft_type": "PROMPT_TUNING", "num_virtual_tokens": P, "token_dim": C,
              "num_transformer_submodules": 1, "num_attention_heads": H, "num_layers": L,
              "prompt_tuning_init": "RANDOM"}
    write_case(name, base, config, {"prompt_embeddings": emb}, lambda ids: base.logits(ids, prompt=emb))


def qwen3(p, cfg, ids):
    """Qwen3 written out on its own (not through the hooked llama above):
    RMSNorm over each head of q and k before rotate-half RoPE, GQA,
    SwiGLU, tied or untied output. p holds the (merged) weights."""
    B, T = ids.shape
    C, H, KV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D, eps = cfg["head_dim"], cfg["rms_norm_eps"]
    inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
    ang = torch.outer(torch.arange(T).float(), inv)
    cos, sin = torch.cat((ang, ang), -1).cos(), torch.cat((ang, ang), -1).sin()
    causal = torch.ones(T, T, dtype=torch.bool).triu(1)
    x = p["model.embed_tokens.weight"][ids]
    for l in range(cfg["num_hidden_layers"]):
        n = f"model.layers.{l}."
        h = rms_norm(x, p[n + "input_layernorm.weight"], eps)
        q = (h @ p[n + "self_attn.q_proj.weight"].T).view(B, T, H, D)
        k = (h @ p[n + "self_attn.k_proj.weight"].T).view(B, T, KV, D)
        v = (h @ p[n + "self_attn.v_proj.weight"].T).view(B, T, KV, D)
        q = rms_norm(q, p[n + "self_attn.q_norm.weight"], eps).transpose(1, 2)
        k = rms_norm(k, p[n + "self_attn.k_norm.weight"], eps).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k, v = k.repeat_interleave(H // KV, 1), v.transpose(1, 2).repeat_interleave(H // KV, 1)
        att = ((q @ k.transpose(-2, -1)) / math.sqrt(D)).masked_fill(causal, float("-inf")).softmax(-1)
        a = (att @ v).transpose(1, 2).reshape(B, T, H * D)
        x = x + a @ p[n + "self_attn.o_proj.weight"].T
        h = rms_norm(x, p[n + "post_attention_layernorm.weight"], eps)
        g, u = h @ p[n + "mlp.gate_proj.weight"].T, h @ p[n + "mlp.up_proj.weight"].T
        x = x + (F.silu(g) * u) @ p[n + "mlp.down_proj.weight"].T
    x = rms_norm(x, p["model.norm.weight"], eps)
    return x @ p.get("lm_head.weight", p["model.embed_tokens.weight"]).T


def qwen3_lora_case(name, base, r, alpha, g):
    """LoRA on all seven linear layers of every Qwen3 block, as PEFT saves
    target_modules="all-linear"; expected logits from W + (alpha/r)·B·A."""
    shorts = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    s = alpha / r
    tensors, layers = {}, {}
    for mod in base.modules(shorts):
        out, inn = base.p[mod + ".weight"].shape
        key = base.peft_module(mod)
        A = (torch.randn(r, inn, generator=g) / math.sqrt(inn)).requires_grad_(True)
        B = (torch.randn(out, r, generator=g) * 0.1).requires_grad_(True)
        tensors[key + ".lora_A.weight"], tensors[key + ".lora_B.weight"] = A, B
        layers[mod] = (A, B)
    assert len(layers) == 7 * base.cfg["num_hidden_layers"], sorted(layers)

    def forward(ids):
        merged = dict(base.p)
        for mod, (A, B) in layers.items():
            merged[mod + ".weight"] = base.p[mod + ".weight"] + s * (B @ A)
        return qwen3(merged, base.cfg, ids)

    config = {"peft_type": "LORA", "r": r, "lora_alpha": alpha, "lora_dropout": 0.0, "target_modules": shorts,
              "bias": "none", "fan_in_fan_out": False, "use_rslora": False, "use_dora": False, "modules_to_save": None}
    write_case(name, base, config, tensors, forward)


def self_check():
    """The hooked forward without adapters reproduces the engine goldens' logits."""
    for name in ("llama", "gpt2"):
        base = Base(name)
        exp = read_safetensors(os.path.join(BASES, name, "expected.safetensors"))
        with open(os.path.join(BASES, name, "batch.json")) as f:
            ids = torch.tensor(json.load(f)["ids"])
        got = base.logits(ids)
        assert torch.allclose(got, exp["logits"], atol=1e-5), f"{name}: hooked forward disagrees with gen.py"
    # The Qwen3 forward reproduces families.py's logits for its golden base.
    q3 = Base("families/qwen3")
    exp = read_safetensors(os.path.join(BASES, "families", "qwen3", "expected.safetensors"))
    with open(os.path.join(BASES, "families", "qwen3", "batch.json")) as f:
        ids = torch.tensor(json.load(f)["ids"])
    got = qwen3(q3.p, q3.cfg, ids).reshape(-1, q3.cfg["vocab_size"])
    assert torch.allclose(got, exp["logits"].reshape(got.shape), atol=1e-5), "qwen3 forward disagrees with families.py"


def main():
    torch.manual_seed(0)
    self_check()
    llama, gpt = Base("llama"), Base("gpt2")
    g = torch.Generator().manual_seed(5)
    lora_case("llama_lora", llama, ["q_proj", "v_proj", "o_proj", "gate_proj", "down_proj"], 4, 8, g)
    lora_case("llama_dora", llama, ["q_proj", "k_proj", "up_proj"], 4, 6, g, dora=True, rslora=True)
    lora_case("gpt2_lora", gpt, ["c_attn", "c_proj", "c_fc"], 4, 8, g)
    lora_case("gpt2_dora", gpt, ["c_attn", "mlp.c_proj"], 2, 4, g, dora=True)
    ia3_case("llama_ia3", llama, ["k_proj", "v_proj", "down_proj"], ["down_proj"], g)
    ia3_case("gpt2_ia3", gpt, ["c_attn", "mlp.c_proj"], ["mlp.c_proj"], g)
    prefix_case("llama_prefix", llama, 3, g)
    prefix_case("gpt2_prefix", gpt, 3, g)
    prompt_case("llama_prompt", llama, 3, g)
    prompt_case("gpt2_prompt", gpt, 3, g)
    qwen3_lora_case("qwen3_lora_all_linear", Base("families/qwen3"), 4, 8, torch.Generator().manual_seed(7))


if __name__ == "__main__":
    main()
