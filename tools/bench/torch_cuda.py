#!/usr/bin/env python3
"""PyTorch anchor for the CUDA figures (tools/gpu-check.sh runs it in the
same run as TestDeviceFigures and prints llmlab/PyTorch ratios).

It reads the plan TestDeviceFigures writes (LLMLAB_CUDA_BENCH_PLAN: for
each preset its config.json and the rows to measure) and measures the same
rows on the same GPU:

- generate: greedy generation at batch 1 (16 new tokens after a 4-token
  prompt) with transformers' generate;
- full-MODE: full fine-tuning (forward, cross-entropy, backward, AdamW,
  the loss read back each step) in fp32, tf32 or bf16 autocast;
- lora-MODE[-BxT]: LoRA r=8 (alpha 16) through peft on the row's target
  modules, the base frozen.

The model is transformers' own for the config's model_type (made on the
GPU, random weights, scaled_dot_product_attention). Without transformers
(or peft) a hand-written Llama/GPT-2 stands in for those families. One
line per figure:

    anchor PRESET KEY TOKENS_PER_S PEAK_GIB

    python3 tools/bench/torch_cuda.py PLAN.json [PRESET ...]
"""
import json
import math
import os
import sys
import tempfile
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

try:
    import transformers
except ImportError:  # the hand-written stand-in below
    transformers = None
try:
    import peft
except ImportError:
    peft = None


# ---- a hand-written stand-in for Llama and GPT-2 (no transformers) ----

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


class Block(nn.Module):
    def __init__(self, gpt2, C, H, KV, D, I):
        super().__init__()
        self.gpt2, self.H, self.KV, self.D = gpt2, H, KV, D
        if gpt2:
            self.n1, self.n2 = nn.LayerNorm(C), nn.LayerNorm(C)
            self.c_attn, self.o = nn.Linear(C, 3 * C), nn.Linear(C, C)
            self.fc, self.proj = nn.Linear(C, I), nn.Linear(I, C)
        else:
            self.n1, self.n2 = RMSNorm(C), RMSNorm(C)
            self.q_proj = nn.Linear(C, H * D, bias=False)
            self.k_proj = nn.Linear(C, KV * D, bias=False)
            self.v_proj = nn.Linear(C, KV * D, bias=False)
            self.o = nn.Linear(H * D, C, bias=False)
            self.gate, self.up, self.down = nn.Linear(C, I, bias=False), nn.Linear(C, I, bias=False), nn.Linear(I, C, bias=False)

    def forward(self, x, cos, sin, cache):
        B, T, C = x.shape
        H, KV, D = self.H, self.KV, self.D
        h = self.n1(x)
        if self.gpt2:
            q, k, v = self.c_attn(h).split(C, dim=2)
        else:
            q, k, v = self.q_proj(h), self.k_proj(h), self.v_proj(h)
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
        a = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1 and T == k.shape[2])
        x = x + self.o(a.transpose(1, 2).reshape(B, T, H * D))
        h = self.n2(x)
        if self.gpt2:
            return x + self.proj(F.gelu(self.fc(h), approximate="tanh"))
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Plain(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        gpt2 = cfg["model_type"] == "gpt2"
        V = cfg["vocab_size"]
        C = cfg["n_embd"] if gpt2 else cfg["hidden_size"]
        L = cfg["n_layer"] if gpt2 else cfg["num_hidden_layers"]
        H = cfg["n_head"] if gpt2 else cfg["num_attention_heads"]
        KV = H if gpt2 else cfg.get("num_key_value_heads", H)
        I = 4 * C if gpt2 else cfg["intermediate_size"]
        P = cfg["n_positions"] if gpt2 else cfg["max_position_embeddings"]
        D = cfg.get("head_dim") or C // H
        P = min(P, 4096)
        self.emb = nn.Embedding(V, C)
        self.pos = nn.Embedding(P, C) if gpt2 else None
        self.layers = nn.ModuleList(Block(gpt2, C, H, KV, D, I) for _ in range(L))
        self.norm = nn.LayerNorm(C) if gpt2 else RMSNorm(C)
        inv = 1.0 / (cfg.get("rope_theta", 10000.0) ** (torch.arange(0, D, 2).float() / D))
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
        for i, b in enumerate(self.layers):
            x = b(x, cos, sin, None if caches is None else caches[i])
        return self.norm(x) @ self.emb.weight.T  # tied head

    def add_lora(self, targets):
        for p in self.parameters():
            p.requires_grad_(False)
        for b in self.layers:
            for t in targets:
                setattr(b, t, LoRA(getattr(b, t)))
        return self

    @torch.no_grad()
    def greedy(self, n):
        caches = [dict() for _ in self.layers]
        logits = self(torch.tensor([[1, 2, 3, 4]], device="cuda"), 0, caches)
        past = 4
        for _ in range(n - 1):
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            logits = self(nxt, past, caches)
            past += 1
        return logits[:, -1].argmax(-1).item()  # the host reads the last token


# ---- transformers + peft ----

class HF:
    """A transformers model made from the plan's config.json."""

    def __init__(self, cfg):
        cfg = dict(cfg)
        # llmlab trains without dropout; so does the anchor.
        for k in ("resid_pdrop", "embd_pdrop", "attn_pdrop", "attention_dropout", "hidden_dropout"):
            cfg[k] = 0.0
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(cfg, f)
            conf = transformers.AutoConfig.from_pretrained(d)
        conf.use_cache = True
        torch.set_default_dtype(torch.float32)
        with torch.device("cuda"):
            self.m = transformers.AutoModelForCausalLM.from_config(conf, attn_implementation="sdpa")
        self.m.float()

    def __call__(self, ids):
        return self.m(input_ids=ids, use_cache=False).logits

    def parameters(self):
        return self.m.parameters()

    def add_lora(self, targets):
        c = peft.LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=targets,
                            fan_in_fan_out=self.m.config.model_type == "gpt2")
        self.m = peft.get_peft_model(self.m, c)
        return self

    @torch.no_grad()
    def greedy(self, n):
        self.m.eval()
        ids = torch.tensor([[1, 2, 3, 4]], device="cuda")
        out = self.m.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                              pad_token_id=0, eos_token_id=None)
        self.m.train()
        return out[0, -1].item()


def peak():
    g = torch.cuda.max_memory_allocated() / 2**30
    torch.cuda.reset_peak_memory_stats()
    return g


def generate(m, n):
    m.greedy(2)
    torch.cuda.synchronize()
    t = time.time()
    m.greedy(n)
    return n / (time.time() - t)


def train(m, B, T, V, mode, steps=2):
    torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
    torch.backends.cudnn.allow_tf32 = mode == "tf32"
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, V, (B, T), generator=g).cuda()
    tg = torch.randint(0, V, (B, T), generator=g).cuda()

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=mode == "bf16"):
            logits = m(ids)
        loss = F.cross_entropy(logits.float().view(-1, V), tg.view(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()  # the host reads the loss, as llmlab's step does

    step()
    t = time.time()
    for _ in range(steps):
        step()
    tps = B * T * steps / (time.time() - t)
    del opt
    return tps


def main(plan_path, only):
    with open(plan_path) as f:
        plans = json.load(f)
    use_hf = transformers is not None and peft is not None
    print(f"# anchor: {'transformers ' + transformers.__version__ + ' + peft ' + peft.__version__ if use_hf else 'hand-written PyTorch model'}, torch {torch.__version__}", flush=True)
    for p in plans:
        name, cfg = p["preset"], p["config"]
        if only and name not in only:
            continue
        torch.manual_seed(1)
        try:
            if use_hf:
                m = HF(cfg)
            elif cfg["model_type"] in ("gpt2", "llama"):
                m = Plain(cfg).cuda()
            else:
                print(f"# anchor {name}: needs transformers for model_type {cfg['model_type']}", flush=True)
                continue
        except Exception as e:  # report and go on with the next preset
            print(f"# anchor {name}: {type(e).__name__}: {e}", flush=True)
            continue
        V = cfg["vocab_size"]
        torch.cuda.reset_peak_memory_stats()
        lora = None  # the dtype of the frozen base under the adapters
        for r in p["rows"]:
            try:
                if r["kind"] == "generate":
                    tps = generate(m, r["seq"])
                else:
                    # LoRA in bf16 trains over a base held in bf16 (as
                    # PEFT users load it, and as llmlab's sft --quant bf16
                    # holds it); fp32 LoRA over the float32 base.
                    want = torch.bfloat16 if r["mode"] == "bf16" else torch.float32
                    if r["kind"] == "lora" and lora != want:
                        if lora is not None or want != torch.float32:
                            del m
                            torch.cuda.empty_cache()
                            torch.manual_seed(1)
                            m = HF(cfg) if use_hf else Plain(cfg).cuda()
                        torch.cuda.reset_peak_memory_stats()
                        if want == torch.bfloat16:
                            (m.m if use_hf else m).to(torch.bfloat16)
                        m.add_lora(r["targets"])
                        if not use_hf:
                            for mod in m.modules():  # the adapters train in float32
                                if isinstance(mod, LoRA):
                                    mod.A.float(), mod.B.float()
                        lora = want
                        torch.cuda.empty_cache()
                        torch.cuda.reset_peak_memory_stats()
                    tps = train(m, r["batch"], r["seq"], V, r["mode"])
                print(f"anchor {name} {r['key']} {tps:.1f} {peak():.3f}", flush=True)
            except Exception as e:
                print(f"# anchor {name} {r['key']}: {type(e).__name__}: {e}", flush=True)
                torch.cuda.empty_cache()
        del m
        torch.cuda.empty_cache()


if __name__ == "__main__":
    if not torch.cuda.is_available():
        print("torch_cuda.py: no CUDA device for PyTorch", file=sys.stderr)
        sys.exit(1)
    if len(sys.argv) < 2:
        print("usage: torch_cuda.py PLAN.json [PRESET ...]", file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1], set(sys.argv[2:]))
