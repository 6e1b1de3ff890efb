#!/usr/bin/env python3
"""PyTorch anchor for the CUDA figures (tools/gpu-check.sh runs it in the
same run as TestDeviceFigures and prints llmlab/PyTorch ratios).

The same shapes and steps as gpu/cuda/figures_test.go, in plain PyTorch on
the GPU: generation at batch 1 (greedy, KV cache, 16 tokens after a
4-token prompt); full fine-tuning (forward, backward, AdamW, the loss read
back each step) in fp32, tf32 and bf16 autocast; LoRA r=8 on the query and
value projections (GPT-2: c_attn) in fp32 and bf16. Attention is
scaled_dot_product_attention, as transformers uses (prefill and training;
a decode step's one query sees every cached key). One line per figure:

    anchor PRESET KEY TOKENS_PER_S PEAK_GIB

with KEY one of generate, full-fp32, full-tf32, full-bf16, lora-fp32,
lora-bf16, the keys TestDeviceFigures prints on its "figure" lines.

    python3 tools/bench/torch_cuda.py gpt2-124m llama-1b
"""
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# (arch, vocab, hidden, layers, heads, kv heads, intermediate, positions),
# as core/model/presets.go.
PRESETS = {
    "gpt2-124m": ("gpt2", 50257, 768, 12, 12, 12, 3072, 1024),
    "smollm-135m": ("llama", 49152, 576, 30, 9, 3, 1536, 2048),
    "llama-1b": ("llama", 128256, 2048, 16, 32, 8, 8192, 2048),
}


class LoRA(nn.Module):
    """y = base(x) + (alpha/r)·B(A(x)) over a frozen base, as PEFT."""

    def __init__(self, base, r=8, alpha=16):
        super().__init__()
        self.base, self.s = base, alpha / r
        self.A = nn.Linear(base.in_features, r, bias=False, device=base.weight.device)
        self.B = nn.Linear(r, base.out_features, bias=False, device=base.weight.device)
        nn.init.kaiming_uniform_(self.A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.B.weight)

    def forward(self, x):
        return self.base(x) + self.s * self.B(self.A(x))


class RMSNorm(nn.Module):
    def __init__(self, C, eps=1e-5):
        super().__init__()
        self.w, self.eps = nn.Parameter(torch.ones(C)), eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.w


def attention(q, k, v):
    """Causal attention over q (B, H, T, D), k, v (B, H, S, D), the last T
    keys being the queries' own (a KV cache holds the first S-T)."""
    T, S = q.shape[2], k.shape[2]
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=T > 1 and T == S)
    att = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    if T > 1:
        mask = torch.triu(torch.ones(T, S, dtype=torch.bool, device=q.device), S - T + 1)
        att = att.masked_fill(mask, float("-inf"))
    return att.softmax(-1) @ v


class Block(nn.Module):
    def __init__(self, arch, C, H, KV, I):
        super().__init__()
        self.gpt2, self.H, self.KV, self.D = arch == "gpt2", H, KV, C // H
        if self.gpt2:
            self.n1, self.n2 = nn.LayerNorm(C), nn.LayerNorm(C)
            self.qkv, self.o = nn.Linear(C, 3 * C), nn.Linear(C, C)
            self.fc, self.proj = nn.Linear(C, I), nn.Linear(I, C)
        else:
            self.n1, self.n2 = RMSNorm(C), RMSNorm(C)
            self.q = nn.Linear(C, H * self.D, bias=False)
            self.k = nn.Linear(C, KV * self.D, bias=False)
            self.v = nn.Linear(C, KV * self.D, bias=False)
            self.o = nn.Linear(H * self.D, C, bias=False)
            self.gate, self.up, self.down = nn.Linear(C, I, bias=False), nn.Linear(C, I, bias=False), nn.Linear(I, C, bias=False)

    def forward(self, x, cos, sin, cache):
        B, T, C = x.shape
        H, KV, D = self.H, self.KV, self.D
        h = self.n1(x)
        if self.gpt2:
            q, k, v = self.qkv(h).split(C, dim=2)
        else:
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
        a = attention(q, k, v)
        x = x + self.o(a.transpose(1, 2).reshape(B, T, C))
        h = self.n2(x)
        if self.gpt2:
            return x + self.proj(F.gelu(self.fc(h), approximate="tanh"))
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(nn.Module):
    def __init__(self, arch, V, C, L, H, KV, I, P):
        super().__init__()
        self.emb = nn.Embedding(V, C)
        self.pos = nn.Embedding(P, C) if arch == "gpt2" else None
        self.blocks = nn.ModuleList(Block(arch, C, H, KV, I) for _ in range(L))
        self.norm = nn.LayerNorm(C) if arch == "gpt2" else RMSNorm(C)
        D = C // H
        inv = 1.0 / (10000 ** (torch.arange(0, D, 2).float() / D))
        e = torch.outer(torch.arange(P).float(), inv)
        e = torch.cat((e, e), -1)
        self.register_buffer("cos", e.cos(), persistent=False)
        self.register_buffer("sin", e.sin(), persistent=False)

    def forward(self, ids, past=0, caches=None):
        T = ids.shape[1]
        x = self.emb(ids)
        if self.pos is not None:
            x = x + self.pos(torch.arange(past, past + T, device=ids.device))
        cos, sin = self.cos[past:past + T], self.sin[past:past + T]
        for i, b in enumerate(self.blocks):
            x = b(x, cos, sin, None if caches is None else caches[i])
        return self.norm(x) @ self.emb.weight.T  # tied head


def peak():
    g = torch.cuda.max_memory_allocated() / 2**30
    torch.cuda.reset_peak_memory_stats()
    return g


@torch.no_grad()
def generate(m, n=16):
    def run(tokens):
        caches = [dict() for _ in m.blocks]
        logits = m(torch.tensor([[1, 2, 3, 4]], device="cuda"), 0, caches)
        past = 4
        for _ in range(tokens - 1):
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            logits = m(nxt, past, caches)
            past += 1
        return logits[:, -1].argmax(-1).item()  # the host reads the last token

    run(2)
    torch.cuda.synchronize()
    t = time.time()
    run(n)
    return n / (time.time() - t)


def train(m, params, B, T, V, mode, steps=2):
    torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
    torch.backends.cudnn.allow_tf32 = mode == "tf32"
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, V, (B, T), generator=g).cuda()
    tg = torch.randint(0, V, (B, T), generator=g).cuda()

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=mode == "bf16"):
            loss = F.cross_entropy(m(ids).view(-1, V).float(), tg.view(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()  # the host reads the loss, as llmlab's step does

    step()
    t = time.time()
    for _ in range(steps):
        step()
    return B * T * steps / (time.time() - t)


def main(names):
    for name in names:
        arch, V, C, L, H, KV, I, P = PRESETS[name]
        B, T = (2 if C >= 2048 else 4), min(256, P)
        torch.manual_seed(1)
        m = Model(arch, V, C, L, H, KV, I, P).cuda()
        torch.cuda.reset_peak_memory_stats()
        print(f"anchor {name} generate {generate(m):.1f} {peak():.3f}", flush=True)
        for mode in ("fp32", "tf32", "bf16"):
            tps = train(m, list(m.parameters()), B, T, V, mode)
            print(f"anchor {name} full-{mode} {tps:.1f} {peak():.3f}", flush=True)
        for p in m.parameters():
            p.requires_grad_(False)
        for b in m.blocks:
            if b.gpt2:
                b.qkv = LoRA(b.qkv)
            else:
                b.q, b.v = LoRA(b.q), LoRA(b.v)
        lora = [p for p in m.parameters() if p.requires_grad]
        for mode in ("fp32", "bf16"):
            tps = train(m, lora, B, T, V, mode)
            print(f"anchor {name} lora-{mode} {tps:.1f} {peak():.3f}", flush=True)
        del m
        torch.cuda.empty_cache()


if __name__ == "__main__":
    if not torch.cuda.is_available():
        print("torch_cuda.py: no CUDA device for PyTorch", file=sys.stderr)
        sys.exit(1)
    main(sys.argv[1:] or ["gpt2-124m"])
