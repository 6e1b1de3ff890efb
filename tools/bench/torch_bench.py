#!/usr/bin/env python3
"""PyTorch reference figures for `llmlab bench`, run by hand (not in CI).

Trains (forward, backward, AdamW) and generates (batch 1, KV cache) with the
same model shapes as llmlab's presets, in plain PyTorch, and prints one JSON
object a line in the shape `llmlab bench --json` prints. Run with 2 threads
and OpenBLAS's forced-kernel variables unset, as the issue asks:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 tools/bench/torch_bench.py
    /usr/bin/python3 tools/bench/torch_bench.py lora gpt2-124m smollm-135m   # LoRA steps, peak RSS
"""
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(2)

PRESETS = {
    "tiny": dict(arch="llama", V=512, C=128, L=4, H=4, KV=4, I=352, P=128, batch=16, ctx=128),
    "stories15m": dict(arch="llama", V=32000, C=288, L=6, H=6, KV=6, I=768, P=256, batch=8, ctx=256),
    "gpt2-124m": dict(arch="gpt2", V=50257, C=768, L=12, H=12, KV=12, I=3072, P=1024, batch=4, ctx=256),
    "smollm-135m": dict(arch="llama", V=49152, C=576, L=30, H=9, KV=3, I=1536, P=2048, batch=4, ctx=256),
}


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        C, H, KV, I = c["C"], c["H"], c["KV"], c["I"]
        self.c, self.D = c, C // H
        self.gpt2 = c["arch"] == "gpt2"
        if self.gpt2:
            self.n1, self.n2 = nn.LayerNorm(C), nn.LayerNorm(C)
            self.qkv, self.o = nn.Linear(C, 3 * C), nn.Linear(C, C)
            self.fc, self.proj = nn.Linear(C, I), nn.Linear(I, C)
        else:
            self.n1, self.n2 = nn.Parameter(torch.ones(C)), nn.Parameter(torch.ones(C))
            self.q = nn.Linear(C, H * self.D, bias=False)
            self.k = nn.Linear(C, KV * self.D, bias=False)
            self.v = nn.Linear(C, KV * self.D, bias=False)
            self.o = nn.Linear(H * self.D, C, bias=False)
            self.gate, self.up, self.down = nn.Linear(C, I, bias=False), nn.Linear(C, I, bias=False), nn.Linear(I, C, bias=False)

    def rms(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w

    def forward(self, x, cos, sin, cache=None):
        B, T, C = x.shape
        H, KV, D = self.c["H"], self.c["KV"], self.D
        if self.gpt2:
            q, k, v = self.qkv(self.n1(x)).split(C, dim=2)
        else:
            h = self.rms(x, self.n1)
            q, k, v = self.q(h), self.k(h), self.v(h)
        q = q.view(B, T, H, D).transpose(1, 2)
        k = k.view(B, T, KV, D).transpose(1, 2)
        v = v.view(B, T, KV, D).transpose(1, 2)
        if not self.gpt2:
            rot = lambda t: torch.cat((-t[..., D // 2:], t[..., : D // 2]), -1)
            q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        if cache is not None:
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], 2), torch.cat([cache["v"], v], 2)
            cache["k"], cache["v"] = k, v
        if KV < H:
            k, v = k.repeat_interleave(H // KV, 1), v.repeat_interleave(H // KV, 1)
        S = k.shape[2]
        att = (q @ k.transpose(-2, -1)) / math.sqrt(D)
        if T > 1:
            mask = torch.triu(torch.ones(T, S, dtype=torch.bool), S - T + 1)
            att = att.masked_fill(mask, float("-inf"))
        a = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.o(a)
        if self.gpt2:
            return x + self.proj(F.gelu(self.fc(self.n2(x)), approximate="tanh"))
        h = self.rms(x, self.n2)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.emb = nn.Embedding(c["V"], c["C"])
        self.pos = nn.Embedding(c["P"], c["C"]) if c["arch"] == "gpt2" else None
        self.blocks = nn.ModuleList(Block(c) for _ in range(c["L"]))
        self.norm = nn.LayerNorm(c["C"]) if c["arch"] == "gpt2" else None
        self.normw = nn.Parameter(torch.ones(c["C"]))
        D = c["C"] // c["H"]
        inv = 1.0 / (10000 ** (torch.arange(0, D, 2).float() / D))
        f = torch.outer(torch.arange(c["P"]).float(), inv)
        e = torch.cat((f, f), -1)
        self.cos, self.sin = e.cos(), e.sin()

    def forward(self, ids, past=0, caches=None):
        T = ids.shape[1]
        x = self.emb(ids)
        if self.pos is not None:
            x = x + self.pos(torch.arange(past, past + T))
        cos, sin = self.cos[past:past + T], self.sin[past:past + T]
        for i, b in enumerate(self.blocks):
            x = b(x, cos, sin, None if caches is None else caches[i])
        x = self.norm(x) if self.norm is not None else x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * self.normw
        return x @ self.emb.weight.T


def bench_train(name, c, steps=3):
    m = Model(c)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4, weight_decay=0.1)
    ids = torch.randint(0, c["V"], (c["batch"], c["ctx"]))
    tg = torch.randint(0, c["V"], (c["batch"], c["ctx"]))

    def step():
        loss = F.cross_entropy(m(ids).view(-1, c["V"]), tg.view(-1))
        loss.backward()
        opt.step()
        opt.zero_grad()
    step()
    t = time.time()
    for _ in range(steps):
        step()
    el = time.time() - t
    return dict(bench="train", preset=name, batch=c["batch"], ctx=c["ctx"], threads=2, tokens_per_s=c["batch"] * c["ctx"] * steps / el, impl="pytorch")


class LoRALinear(nn.Module):
    """PEFT's LoRA on a frozen nn.Linear: y = base(x) + (alpha/r)·B(A(x))."""

    def __init__(self, base, r=8, alpha=16):
        super().__init__()
        self.base, self.s = base, alpha / r
        self.A = nn.Linear(base.in_features, r, bias=False)
        self.B = nn.Linear(r, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.B.weight)

    def forward(self, x):
        return self.base(x) + self.s * self.B(self.A(x))


def bench_lora(name, c, steps=3):
    """LoRA r=8 on the query and value projections (GPT-2: c_attn) of a
    frozen f32 base, as PEFT would set it up; reports the peak RSS too."""
    import resource
    m = Model(c)
    for p in m.parameters():
        p.requires_grad_(False)
    for b in m.blocks:
        if b.gpt2:
            b.qkv = LoRALinear(b.qkv)
        else:
            b.q, b.v = LoRALinear(b.q), LoRALinear(b.v)
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.1)
    ids = torch.randint(0, c["V"], (c["batch"], c["ctx"]))
    tg = torch.randint(0, c["V"], (c["batch"], c["ctx"]))

    def step():
        loss = F.cross_entropy(m(ids).view(-1, c["V"]), tg.view(-1))
        loss.backward()
        opt.step()
        opt.zero_grad()
    step()
    t = time.time()
    for _ in range(steps):
        step()
    el = time.time() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(bench="lora", preset=name, batch=c["batch"], ctx=c["ctx"], threads=2, tokens_per_s=c["batch"] * c["ctx"] * steps / el,
                base="f32", peak_rss_mb=rss, impl="pytorch")


@torch.no_grad()
def bench_generate(name, c, n=64):
    m = Model(c)
    ids = torch.tensor([[1, 2, 3, 4]])
    caches = [dict() for _ in m.blocks]
    t = time.time()
    logits = m(ids, 0, caches)
    past = 4
    for _ in range(n):
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        logits = m(nxt, past, caches)
        past += 1
    el = time.time() - t
    return dict(bench="generate", preset=name, threads=2, tokens_per_s=n / el, impl="pytorch")


if __name__ == "__main__":
    only = sys.argv[1:] or list(PRESETS)
    if only[0] == "lora":
        for name in only[1:] or ["gpt2-124m"]:
            print(json.dumps(bench_lora(name, PRESETS[name])), flush=True)
        sys.exit(0)
    for name in only:
        c = PRESETS[name]
        print(json.dumps(bench_train(name, c)), flush=True)
        print(json.dumps(bench_generate(name, c)), flush=True)
