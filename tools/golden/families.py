#!/usr/bin/env python3
"""Golden files for the model families llmlab reads (Llama 3.x, Mistral,
Qwen3, Gemma 2/3, Phi-3/Phi-4-mini, SmolLM3), computed with PyTorch.

For each case it writes, under core/model/testdata/golden/families/<case>/,
a tiny random model as the Hub ships one (config.json in that family's own
form and model.safetensors with its tensor names), batch.json (ids,
targets, the greedy prompt) and expected.safetensors: the logits of the
batch, the mean loss, the gradient of every parameter ("grad.<name>", f32
cases) and the 12 ids greedy decoding appends to the prompt ("greedy").

The forward passes below are written here from the math of each family's
Hugging Face modeling code (RMSNorm variants, rotate-half RoPE with each
rope_type's frequencies, grouped-query attention with sliding windows and
softcaps, the MLP kinds); transformers is not needed. Run with Debian's
python3-torch: `make golden`.
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen import write_safetensors  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "core", "model", "testdata", "golden", "families")


# ---- RoPE frequencies, one function per HF rope_type ----

def default_inv_freq(base, dim):
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def rope_inv_freq(cfg, rs, dim, base, seq_len):
    """(inv_freq, attention_factor) for a pass of seq_len positions."""
    kind = (rs or {}).get("rope_type", (rs or {}).get("type", "default"))
    if kind == "default":
        return default_inv_freq(base, dim), 1.0
    if kind == "linear":
        return default_inv_freq(base, dim) / rs["factor"], 1.0
    if kind == "dynamic":
        maxp, factor = cfg["max_position_embeddings"], rs["factor"]
        seq = seq_len if seq_len > maxp else maxp
        base = base * ((factor * seq / maxp) - (factor - 1)) ** (dim / (dim - 2))
        return default_inv_freq(base, dim), 1.0
    if kind == "llama3":
        inv = default_inv_freq(base, dim)
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        low_wave, high_wave = old / lo, old / hi
        wave = 2 * math.pi / inv
        out = torch.where(wave > low_wave, inv / factor, inv)
        smooth = (old / wave - lo) / (hi - lo)
        smoothed = (1 - smooth) * out / factor + smooth * out
        medium = ~(wave < high_wave) & ~(wave > low_wave)
        return torch.where(medium, smoothed, out), 1.0
    if kind == "yarn":
        factor = rs["factor"]
        orig = rs.get("original_max_position_embeddings") or cfg["max_position_embeddings"]
        attn = rs.get("attention_factor") or (0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0)
        beta_fast, beta_slow = rs.get("beta_fast") or 32, rs.get("beta_slow") or 1

        def corr_dim(rot):
            return (dim * math.log(orig / (rot * 2 * math.pi))) / (2 * math.log(base))
        low = max(math.floor(corr_dim(beta_fast)), 0)
        high = min(math.ceil(corr_dim(beta_slow)), dim - 1)
        if low == high:
            high += 0.001
        ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
        pos = base ** (torch.arange(0, dim, 2).float() / dim)
        extra, inter = 1.0 / pos, 1.0 / (factor * pos)
        keep = 1 - ramp
        return inter * (1 - keep) + extra * keep, attn
    if kind == "longrope":
        orig = cfg.get("original_max_position_embeddings") or rs.get("original_max_position_embeddings")
        factor = cfg["max_position_embeddings"] / orig
        attn = rs.get("attention_factor") or (math.sqrt(1 + math.log(factor) / math.log(orig)) if factor > 1 else 1.0)
        ext = torch.tensor(rs["long_factor"] if seq_len > orig else rs["short_factor"], dtype=torch.float32)
        shape = torch.arange(0, dim, 2, dtype=torch.int64).float() / dim
        return 1.0 / (ext * base ** shape), attn
    raise ValueError(kind)


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x, inv, attn, rot_dim):
    # x (B, H, T, D); rotates the first rot_dim values of each head.
    T = x.shape[2]
    freqs = torch.outer(torch.arange(T).float(), inv)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos() * attn, emb.sin() * attn
    xr, xp = x[..., :rot_dim], x[..., rot_dim:]
    return torch.cat((xr * cos + rotate_half(xr) * sin, xp), dim=-1)


# ---- the decoder pieces ----

def rms(x, w, eps, offset):
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return y * (1.0 + w) if offset else y * w


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def attention(q, k, v, scale, window, softcap):
    # q (B, H, T, D), k and v (B, H, T, D) already repeated for GQA.
    T = q.shape[2]
    s = (q @ k.transpose(-2, -1)) * scale
    if softcap:
        s = torch.tanh(s / softcap) * softcap
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    masked = j > i
    if window:
        masked = masked | (i - j >= window)
    return s.masked_fill(masked, float("-inf")).softmax(-1) @ v


class Spec:
    """What a family computes, read from its config the way HF reads it."""

    def __init__(self, cfg):
        mt = cfg["model_type"]
        self.cfg = cfg
        self.mt = mt
        self.C, self.L = cfg["hidden_size"], cfg["num_hidden_layers"]
        self.H, self.KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
        self.D = cfg.get("head_dim") or self.C // self.H
        self.I, self.V = cfg["intermediate_size"], cfg["vocab_size"]
        self.eps = cfg["rms_norm_eps"]
        self.gemma = mt in ("gemma2", "gemma3_text")
        self.qk_norm = mt in ("qwen3", "gemma3_text")
        self.fused = mt == "phi3"
        self.rot = int(self.D * cfg.get("partial_rotary_factor", 1.0))
        rp = cfg.get("rope_parameters")
        self.theta = cfg.get("rope_theta") or (rp or {}).get("rope_theta", 10000.0)
        self.rs = cfg.get("rope_scaling") or rp
        self.tie = cfg.get("tie_word_embeddings", self.gemma or mt == "smollm3")
        # per-layer attention type
        if "layer_types" in cfg:
            self.sliding = [t == "sliding_attention" for t in cfg["layer_types"]]
        elif mt == "gemma3_text":
            pat = cfg.get("sliding_window_pattern", 6)
            self.sliding = [bool((i + 1) % pat) for i in range(self.L)]
        elif mt == "gemma2":
            self.sliding = [not bool(i % 2) for i in range(self.L)]
        elif cfg.get("sliding_window") and cfg.get("use_sliding_window", True):
            self.sliding = [True] * self.L
        else:
            self.sliding = [False] * self.L
        self.window = cfg.get("sliding_window") or 0
        if mt == "smollm3":
            nr = cfg.get("no_rope_layers")
            if nr is None:
                every = cfg.get("no_rope_layer_interval", 4)
                nr = [int((i + 1) % every != 0) for i in range(self.L)]
            self.use_rope = [bool(x) for x in nr]
        else:
            self.use_rope = [True] * self.L
        self.scale = cfg["query_pre_attn_scalar"] ** -0.5 if self.gemma else self.D ** -0.5
        self.attn_cap = cfg.get("attn_logit_softcapping") or 0
        self.final_cap = cfg.get("final_logit_softcapping") or 0
        self.local_theta = cfg.get("rope_local_base_freq")

    def names(self):
        """The parameter names and shapes in HF order."""
        C, D, H, KV, I = self.C, self.D, self.H, self.KV, self.I
        out = [("model.embed_tokens.weight", (self.V, C))]
        for i in range(self.L):
            n = f"model.layers.{i}."
            out.append((n + "input_layernorm.weight", (C,)))
            if self.fused:
                out.append((n + "self_attn.qkv_proj.weight", ((H + 2 * KV) * D, C)))
            else:
                out += [(n + "self_attn.q_proj.weight", (H * D, C)), (n + "self_attn.k_proj.weight", (KV * D, C)),
                        (n + "self_attn.v_proj.weight", (KV * D, C))]
            out.append((n + "self_attn.o_proj.weight", (C, H * D)))
            if self.qk_norm:
                out += [(n + "self_attn.q_norm.weight", (D,)), (n + "self_attn.k_norm.weight", (D,))]
            if self.gemma:
                out += [(n + "post_attention_layernorm.weight", (C,)), (n + "pre_feedforward_layernorm.weight", (C,)),
                        (n + "post_feedforward_layernorm.weight", (C,))]
            else:
                out.append((n + "post_attention_layernorm.weight", (C,)))
            if self.fused:
                out.append((n + "mlp.gate_up_proj.weight", (2 * I, C)))
            else:
                out += [(n + "mlp.gate_proj.weight", (I, C)), (n + "mlp.up_proj.weight", (I, C))]
            out.append((n + "mlp.down_proj.weight", (C, I)))
        out.append(("model.norm.weight", (C,)))
        if not self.tie:
            out.append(("lm_head.weight", (self.V, C)))
        return out

    def params(self, g):
        p = {}
        for name, shape in self.names():
            if len(shape) == 1:  # norms: around 1, or around 0 for (1+w)
                base = 0.0 if self.gemma else 1.0
                p[name] = base + torch.randn(*shape, generator=g) * 0.1
            else:
                p[name] = torch.randn(*shape, generator=g) * 0.08
        return p

    def forward(self, p, ids, embed_scale_dtype=torch.float32):
        B, T = ids.shape
        C, H, KV, D, I = self.C, self.H, self.KV, self.D, self.I
        norm = lambda x, w: rms(x, w, self.eps, self.gemma)  # noqa: E731
        x = p["model.embed_tokens.weight"][ids]
        if self.gemma:
            x = x * torch.tensor(C ** 0.5).to(embed_scale_dtype).float()
        for i in range(self.L):
            n = f"model.layers.{i}."
            h = norm(x, p[n + "input_layernorm.weight"])
            if self.fused:
                qkv = h @ p[n + "self_attn.qkv_proj.weight"].T
                q, k, v = qkv.split([H * D, KV * D, KV * D], dim=-1)
            else:
                q = h @ p[n + "self_attn.q_proj.weight"].T
                k = h @ p[n + "self_attn.k_proj.weight"].T
                v = h @ p[n + "self_attn.v_proj.weight"].T
            q = q.view(B, T, H, D).transpose(1, 2)
            k = k.view(B, T, KV, D).transpose(1, 2)
            v = v.view(B, T, KV, D).transpose(1, 2)
            if self.qk_norm:
                q = norm(q, p[n + "self_attn.q_norm.weight"])
                k = norm(k, p[n + "self_attn.k_norm.weight"])
            if self.use_rope[i]:
                if self.local_theta and self.sliding[i]:
                    inv, af = default_inv_freq(self.local_theta, self.rot), 1.0
                else:
                    inv, af = rope_inv_freq(self.cfg, self.rs, self.rot, self.theta, T)
                q = apply_rope(q, inv, af, self.rot)
                k = apply_rope(k, inv, af, self.rot)
            k = k.repeat_interleave(H // KV, dim=1)
            v = v.repeat_interleave(H // KV, dim=1)
            w = self.window if self.sliding[i] else 0
            a = attention(q, k, v, self.scale, w, self.attn_cap).transpose(1, 2).reshape(B, T, H * D)
            a = a @ p[n + "self_attn.o_proj.weight"].T
            if self.gemma:
                a = norm(a, p[n + "post_attention_layernorm.weight"])
                x = x + a
                h = norm(x, p[n + "pre_feedforward_layernorm.weight"])
            else:
                x = x + a
                h = norm(x, p[n + "post_attention_layernorm.weight"])
            if self.fused:
                gate, up = (h @ p[n + "mlp.gate_up_proj.weight"].T).chunk(2, dim=-1)
            else:
                gate, up = h @ p[n + "mlp.gate_proj.weight"].T, h @ p[n + "mlp.up_proj.weight"].T
            act = gelu_tanh(gate) if self.gemma else F.silu(gate)
            m = (act * up) @ p[n + "mlp.down_proj.weight"].T
            if self.gemma:
                m = norm(m, p[n + "post_feedforward_layernorm.weight"])
            x = x + m
        x = norm(x, p["model.norm.weight"])
        head = p["model.embed_tokens.weight"] if self.tie else p["lm_head.weight"]
        logits = x @ head.T
        if self.final_cap:
            logits = torch.tanh(logits / self.final_cap) * self.final_cap
        return logits


def run_case(name, cfg, seed, dtype=torch.float32, wrap=None, prefix=None):
    """Writes one case. wrap(cfg) gives the config.json written (e.g. a
    multimodal wrapper), prefix(name) the stored tensor names."""
    folder = os.path.join(ROOT, name)
    os.makedirs(folder, exist_ok=True)
    spec = Spec(cfg)
    params = spec.params(torch.Generator().manual_seed(seed))
    params = {k: v.to(dtype).float() for k, v in params.items()}
    g = torch.Generator().manual_seed(1234 + seed)
    B, T = 2, 12
    ids = torch.randint(0, spec.V, (B, T), generator=g)
    targets = torch.full((B, T), -100, dtype=torch.long)
    targets[:, :-1] = ids[:, 1:]
    targets[1, -4:] = -100
    p = {k: v.clone().requires_grad_(dtype == torch.float32) for k, v in params.items()}
    logits = spec.forward(p, ids, dtype)
    loss = F.cross_entropy(logits.reshape(-1, spec.V), targets.reshape(-1), ignore_index=-100)
    exp = {"logits": logits.detach().reshape(B * T, spec.V), "loss": loss.detach().reshape(1)}
    if dtype == torch.float32:
        loss.backward()
        for k, v in p.items():
            exp["grad." + k] = v.grad.detach().clone()
    prompt = ids[0, :4].tolist()
    seq = list(prompt)
    with torch.no_grad():
        for _ in range(12):
            out = spec.forward(params, torch.tensor([seq]), dtype)
            seq.append(int(out[0, -1].argmax()))
    exp["greedy"] = torch.tensor(seq[len(prompt):], dtype=torch.float32)
    stored = {(prefix(k) if prefix else k): v.to(dtype) for k, v in params.items()}
    write_safetensors(os.path.join(folder, "model.safetensors"), stored, {"format": "pt"})
    doc = dict(cfg)
    doc["torch_dtype"] = {torch.float32: "float32", torch.bfloat16: "bfloat16"}[dtype]
    if wrap:
        doc = wrap(doc)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(doc, f, indent=2)
    with open(os.path.join(folder, "batch.json"), "w") as f:
        json.dump({"ids": ids.tolist(), "targets": targets.tolist(), "prompt": prompt}, f)
    write_safetensors(os.path.join(folder, "expected.safetensors"), exp)
    print(f"{name}: loss {loss.item():.6f} greedy {seq[len(prompt):]}", file=sys.stderr)


def self_check():
    """The oracle's masked attention against a loop over queries."""
    g = torch.Generator().manual_seed(7)
    q, k, v = (torch.randn(1, 2, 6, 4, generator=g) for _ in range(3))
    got = attention(q, k, v, 0.5, 3, 2.0)
    for t in range(6):
        lo = max(0, t - 2)
        s = torch.tanh((q[:, :, t:t + 1] @ k[:, :, lo:t + 1].transpose(-2, -1)) * 0.5 / 2.0) * 2.0
        ref = s.softmax(-1) @ v[:, :, lo:t + 1]
        assert torch.allclose(got[:, :, t:t + 1], ref, atol=1e-6), "attention self-check failed"


def base(model_type, arch, **kw):
    cfg = {"architectures": [arch], "model_type": model_type, "vocab_size": 300, "hidden_size": 32,
           "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2,
           "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "hidden_act": "silu",
           "attention_bias": False, "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2,
           "initializer_range": 0.02, "use_cache": True}
    cfg.update(kw)
    return cfg


def main():
    torch.manual_seed(0)
    self_check()
    llama3_rope = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"}
    l3 = base("llama", "LlamaForCausalLM", rope_theta=500000.0, rope_scaling=llama3_rope, tie_word_embeddings=True,
              mlp_bias=False, pretraining_tp=1, head_dim=8)
    run_case("llama3", l3, 11)
    # The same model as transformers 5 writes it: rope_parameters holds the theta.
    l3v5 = dict(l3)
    del l3v5["rope_theta"], l3v5["rope_scaling"]
    l3v5["rope_parameters"] = dict(llama3_rope, rope_theta=500000.0)
    run_case("llama3_rope_parameters", l3v5, 11)
    run_case("llama_linear", base("llama", "LlamaForCausalLM", rope_scaling={"type": "linear", "factor": 4.0}), 12)
    run_case("llama_dynamic", base("llama", "LlamaForCausalLM", max_position_embeddings=8,
                                   rope_scaling={"rope_type": "dynamic", "factor": 2.0}), 13)
    run_case("mistral_window", base("mistral", "MistralForCausalLM", sliding_window=4, num_key_value_heads=1), 14)

    q3 = base("qwen3", "Qwen3ForCausalLM", head_dim=16, rope_theta=1000000.0, tie_word_embeddings=True,
              use_sliding_window=False, sliding_window=None, max_window_layers=3)
    run_case("qwen3", q3, 21)
    run_case("qwen3_yarn", dict(q3, rope_scaling={"rope_type": "yarn", "factor": 4.0,
                                                  "original_max_position_embeddings": 16}), 22)

    g3 = base("gemma3_text", "Gemma3ForCausalLM", head_dim=16, hidden_activation="gelu_pytorch_tanh",
              query_pre_attn_scalar=16, sliding_window=4, rope_theta=1000000.0, rope_local_base_freq=10000.0,
              rope_scaling={"rope_type": "linear", "factor": 8.0}, tie_word_embeddings=True,
              layer_types=["sliding_attention", "sliding_attention", "full_attention"],
              final_logit_softcapping=None, attn_logit_softcapping=None)
    del g3["hidden_act"]
    run_case("gemma3", g3, 31)
    # A multimodal Gemma 3 checkpoint, in bf16: the text model in
    # text_config, its tensors under language_model., an older config
    # without layer_types (sliding_window_pattern instead).
    g3m = dict(g3, sliding_window_pattern=2)
    del g3m["layer_types"]

    def wrap(text):
        return {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
                "text_config": text, "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 16},
                "mm_tokens_per_image": 4, "torch_dtype": text["torch_dtype"]}
    run_case("gemma3_multimodal_bf16", g3m, 32, dtype=torch.bfloat16, wrap=wrap,
             prefix=lambda k: "language_model." + k)
    g2 = dict(g3, model_type="gemma2", architectures=["Gemma2ForCausalLM"], final_logit_softcapping=3.0,
              attn_logit_softcapping=5.0, hidden_act="gelu_pytorch_tanh")
    for k in ("layer_types", "rope_local_base_freq", "rope_scaling"):
        del g2[k]
    run_case("gemma2", g2, 33)

    rd = 8  # 16 * partial_rotary_factor
    ph = base("phi3", "Phi3ForCausalLM", head_dim=None, hidden_size=64, num_attention_heads=4,
              num_key_value_heads=2, partial_rotary_factor=0.5, max_position_embeddings=32,
              original_max_position_embeddings=8, sliding_window=32, tie_word_embeddings=True,
              rope_scaling={"type": "longrope", "short_factor": [1.0 + 0.1 * i for i in range(rd // 2)],
                            "long_factor": [1.0 + 2.0 * i for i in range(rd // 2)]},
              resid_pdrop=0.0, embd_pdrop=0.0, attention_dropout=0.0)
    del ph["head_dim"]
    run_case("phi3_longrope", ph, 41)

    run_case("smollm3", base("smollm3", "SmolLM3ForCausalLM", no_rope_layers=[1, 0, 1], tie_word_embeddings=True,
                             use_sliding_window=False, sliding_window=None, rope_theta=2000000.0), 51)
    run_case("smollm3_interval", base("smollm3", "SmolLM3ForCausalLM", no_rope_layer_interval=2, num_hidden_layers=4,
                                      use_sliding_window=False, sliding_window=None), 52)


if __name__ == "__main__":
    main()
