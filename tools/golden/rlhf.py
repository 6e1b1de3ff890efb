#!/usr/bin/env python3
"""Golden values for llmlab's rlhf package, computed with PyTorch autograd.

Every loss is written the way Hugging Face TRL writes it (DPOTrainer,
CPOTrainer for SimPO, ORPOTrainer, KTOTrainer, RewardTrainer, PPOTrainer,
GRPOTrainer) and differentiated by torch autograd with respect to the
policy's log-probabilities (or the values, or the logits). Inputs are drawn
from a seeded generator, rounded to float32 so Go sees the same numbers, and
everything is computed in float64. Output: rlhf/testdata/golden_rlhf.json.

Run with Debian's python3-torch: `make golden`.
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "rlhf", "testdata", "golden_rlhf.json")
rng = np.random.RandomState(20240607)


def f32(*shape, lo=-1.0, hi=1.0):
    """Uniform float32 values, returned as a float64 tensor."""
    return torch.tensor(rng.uniform(lo, hi, size=shape).astype(np.float32), dtype=torch.float64)


def leaf(x):
    return x.clone().requires_grad_(True)


def L(x):
    return [float(v) for v in x.detach().reshape(-1).tolist()]


def metrics(rc, rr):
    rc, rr = rc.detach(), rr.detach()
    return {"rewards_chosen": float(rc.mean()), "rewards_rejected": float(rr.mean()),
            "rewards_margin": float((rc - rr).mean()), "rewards_accuracy": float((rc > rr).double().mean())}


B = 6


def dpo_cases():
    out = []
    for loss_type, eps_list in [("sigmoid", [0.0, 0.1, 0.3]), ("robust", [0.0, 0.1, 0.3]), ("ipo", [0.0]), ("hinge", [0.0])]:
        for beta in [0.1, 0.5]:
            for eps in eps_list:
                pc, pr = f32(B, lo=-40, hi=-5), f32(B, lo=-40, hi=-5)
                rc, rr = pc + f32(B, lo=-4, hi=4), pr + f32(B, lo=-4, hi=4)
                rc, rr = torch.tensor(rc.numpy().astype(np.float32), dtype=torch.float64), torch.tensor(rr.numpy().astype(np.float32), dtype=torch.float64)
                c, r = leaf(pc), leaf(pr)
                logits = (c - r) - (rc - rr)
                if loss_type == "sigmoid":
                    losses = -F.logsigmoid(beta * logits) * (1 - eps) - F.logsigmoid(-beta * logits) * eps
                elif loss_type == "robust":
                    losses = (-F.logsigmoid(beta * logits) * (1 - eps) + F.logsigmoid(-beta * logits) * eps) / (1 - 2 * eps)
                elif loss_type == "hinge":
                    losses = torch.relu(1 - beta * logits)
                else:
                    losses = (logits - 1 / (2 * beta)) ** 2
                loss = losses.mean()
                loss.backward()
                out.append({"loss_type": loss_type, "beta": beta, "label_smoothing": eps,
                            "pol_c": L(pc), "pol_r": L(pr), "ref_c": L(rc), "ref_r": L(rr),
                            "loss": float(loss), "d_c": L(c.grad), "d_r": L(r.grad),
                            "metrics": metrics(beta * (pc - rc), beta * (pr - rr))})
    return out


def simpo_cases():
    out = []
    for beta, gamma, eps in [(2.0, 0.5, 0.0), (2.5, 1.4, 0.0), (10.0, 3.0, 0.1)]:
        ac, ar = f32(B, lo=-3, hi=-0.1), f32(B, lo=-3, hi=-0.1)
        c, r = leaf(ac), leaf(ar)
        logits = (c - r) - gamma / beta  # TRL CPOTrainer, loss_type "simpo"
        losses = -F.logsigmoid(beta * logits) * (1 - eps) - F.logsigmoid(-beta * logits) * eps
        loss = losses.mean()
        loss.backward()
        out.append({"beta": beta, "gamma": gamma, "label_smoothing": eps, "avg_c": L(ac), "avg_r": L(ar),
                    "loss": float(loss), "d_c": L(c.grad), "d_r": L(r.grad), "metrics": metrics(beta * ac, beta * ar)})
    return out


def orpo_cases():
    out = []
    for lam, with_len in [(0.1, True), (1.0, True), (0.5, False)]:
        ac, ar = f32(B, lo=-3, hi=-0.05), f32(B, lo=-3, hi=-0.05)
        n = torch.tensor(rng.randint(1, 20, size=B), dtype=torch.float64) if with_len else torch.ones(B, dtype=torch.float64)
        c, r = leaf(ac), leaf(ar)
        # The NLL is the token-mean cross-entropy of the chosen tokens; a
        # sequence's summed log-prob is avg*len.
        nll = -(c * n).sum() / n.sum()
        log_odds = (c - r) - (torch.log1p(-torch.exp(c)) - torch.log1p(-torch.exp(r)))
        ratio = F.logsigmoid(log_odds)
        loss = nll - (lam * ratio).mean()
        loss.backward()
        m = metrics(lam * ac, lam * ar)
        m.update({"nll_loss": float(nll), "log_odds_ratio": float(ratio.mean()), "log_odds_chosen": float(log_odds.mean())})
        out.append({"lambda": lam, "avg_c": L(ac), "avg_r": L(ar), "len_c": L(n) if with_len else None,
                    "loss": float(loss), "d_c": L(c.grad), "d_r": L(r.grad), "metrics": m})
    return out


def kto_cases():
    out = []
    for beta, wd, wu, kl_shift in [(0.1, 1.0, 1.0, 2.0), (0.5, 1.33, 1.0, 0.5), (0.2, 1.0, 0.7, -3.0)]:
        pol = f32(B, lo=-40, hi=-5)
        ref = torch.tensor((pol + f32(B, lo=-5, hi=5)).numpy().astype(np.float32), dtype=torch.float64)
        desirable = [bool(v) for v in (rng.uniform(size=B) < 0.5)]
        desirable[0], desirable[1] = True, False
        pol_kl = f32(B, lo=-40, hi=-5)
        ref_kl = torch.tensor((pol_kl - kl_shift + f32(B, lo=-1, hi=1)).numpy().astype(np.float32), dtype=torch.float64)
        kl = (pol_kl - ref_kl).mean().detach().clamp(min=0)
        p = leaf(pol)
        d = torch.tensor(desirable)
        ch_lr, rj_lr = (p - ref)[d], (p - ref)[~d]
        ch_losses = 1 - torch.sigmoid(beta * (ch_lr - kl))
        rj_losses = 1 - torch.sigmoid(beta * (kl - rj_lr))
        losses = torch.cat((wd * ch_losses, wu * rj_losses), 0)
        loss = losses.nanmean()
        loss.backward()
        r = (pol - ref).detach()
        rc, rr = beta * r[d], beta * r[~d]
        acc = float(((r > 0) & d).sum() + ((r < 0) & ~d).sum()) / B
        out.append({"beta": beta, "desirable_weight": wd, "undesirable_weight": wu, "pol": L(pol), "ref": L(ref),
                    "desirable": desirable, "pol_kl": L(pol_kl), "ref_kl": L(ref_kl), "z": float(kl),
                    "loss": float(loss), "d_pol": L(p.grad),
                    "metrics": {"rewards_chosen": float(rc.mean()), "rewards_rejected": float(rr.mean()),
                                "rewards_margin": float(rc.mean() - rr.mean()), "rewards_accuracy": acc, "kl": float(kl)}})
    return out


def bt_cases():
    out = []
    for with_margin in [False, True]:
        rc, rr = f32(B, lo=-3, hi=3), f32(B, lo=-3, hi=3)
        margin = f32(B, lo=0, hi=1) if with_margin else torch.zeros(B, dtype=torch.float64)
        c, r = leaf(rc), leaf(rr)
        loss = -F.logsigmoid(c - r - margin).mean()  # TRL RewardTrainer
        loss.backward()
        out.append({"r_c": L(rc), "r_r": L(rr), "margin": L(margin) if with_margin else None,
                    "loss": float(loss), "d_c": L(c.grad), "d_r": L(r.grad), "metrics": metrics(rc, rr)})
    return out


def masked_mean(x, m):
    return (x * m).sum() / m.sum()


def masked_whiten(x, m, shift_mean=True):
    mean = masked_mean(x, m)
    var = masked_mean((x - mean) ** 2, m)
    var = var * m.sum() / (m.sum() - 1)
    w = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        w = w + mean
    return w


def kl_est(logp, ref, kind):
    if kind == "k1":
        return logp - ref
    if kind == "k2":
        return 0.5 * (logp - ref) ** 2
    logr = ref - logp
    return (logr.exp() - 1) - logr


def ppo_case():
    Bp, T = 3, 5
    lengths = [5, 3, 4]
    mask = torch.tensor([[t < n for t in range(T)] for n in lengths])
    mf = mask.double()
    old = f32(Bp, T, lo=-4, hi=-0.2)
    logp = torch.tensor((old + f32(Bp, T, lo=-0.5, hi=0.5)).numpy().astype(np.float32), dtype=torch.float64)
    ref = torch.tensor((old + f32(Bp, T, lo=-0.6, hi=0.6)).numpy().astype(np.float32), dtype=torch.float64)
    values = f32(Bp, T, lo=-1, hi=1)
    v_new = torch.tensor((values + f32(Bp, T, lo=-0.5, hi=0.5)).numpy().astype(np.float32), dtype=torch.float64)
    scores = f32(Bp, lo=-2, hi=2)
    logits = f32(Bp * T, 7, lo=-4, hi=4)
    ent_w = f32(Bp * T)
    out = {"B": Bp, "T": T, "mask": [bool(v) for v in mask.reshape(-1).tolist()], "logp": L(logp), "old_logp": L(old),
           "ref_logp": L(ref), "values": L(values), "v_new": L(v_new), "scores": L(scores), "logits": L(logits),
           "entropy_w": L(ent_w)}
    # KL estimators and their derivatives in logp.
    for kind in ["k1", "k2", "k3"]:
        lp = leaf(logp)
        k = kl_est(lp, ref, kind)
        k.sum().backward()
        out["kl_" + kind] = L(k)
        out["dkl_" + kind] = L(lp.grad)
    # Reward shaping as TRL's PPOTrainer: −β·kl per token, score at the end.
    shaped = {}
    for kind, coef in [("k1", 0.05), ("k3", 0.2)]:
        kl = kl_est(logp, ref, kind) * mf
        rewards = -coef * kl
        for b, n in enumerate(lengths):
            rewards[b, n - 1] += scores[b]
        shaped[kind] = {"coef": coef, "rewards": L(rewards), "mean_kl": float(kl.sum(1).mean())}
    out["shaped"] = shaped
    rewards = torch.tensor(np.array(shaped["k1"]["rewards"], dtype=np.float32), dtype=torch.float64).reshape(Bp, T)
    out["rewards"] = L(rewards)
    # GAE exactly as TRL's loop over zero-filled rewards and values.
    gae = []
    for gamma, lam in [(1.0, 0.95), (0.9, 0.8)]:
        r0, v0 = rewards * mf, values * mf
        lastgaelam = torch.zeros(Bp, dtype=torch.float64)
        rev = []
        for t in reversed(range(T)):
            nextvalues = v0[:, t + 1] if t < T - 1 else 0.0
            delta = r0[:, t] + gamma * nextvalues - v0[:, t]
            lastgaelam = delta + gamma * lam * lastgaelam
            rev.append(lastgaelam)
        adv = torch.stack(rev[::-1], 1)
        ret = adv + v0
        gae.append({"gamma": gamma, "lambda": lam, "adv": L(adv * mf), "returns": L(ret * mf),
                    "whiten": L(masked_whiten(adv, mf) * mf), "whiten_noshift": L(masked_whiten(adv, mf, False) * mf)})
    out["gae"] = gae
    adv = torch.tensor(np.array(gae[0]["whiten"], dtype=np.float32), dtype=torch.float64).reshape(Bp, T)
    returns = torch.tensor(np.array(gae[0]["returns"], dtype=np.float32), dtype=torch.float64).reshape(Bp, T)
    out["adv_w"], out["returns_in"] = L(adv), L(returns)
    # Clipped policy loss.
    pol = []
    for clip in [0.2, 0.1]:
        lp = leaf(logp)
        diff = lp - old
        ratio = torch.exp(diff)
        pg1 = -adv * ratio
        pg2 = -adv * torch.clamp(ratio, 1 - clip, 1 + clip)
        loss = masked_mean(torch.max(pg1, pg2), mf)
        loss.backward()
        pol.append({"clip": clip, "loss": float(loss), "d_logp": L(lp.grad),
                    "clipfrac": float(masked_mean((pg2 > pg1).double(), mf)),
                    "approx_kl": float(masked_mean(0.5 * diff.detach() ** 2, mf)),
                    "ratio": float(masked_mean(ratio.detach(), mf))})
    out["policy"] = pol
    # Clipped value loss.
    val = []
    for clip in [0.2, 0.05]:
        v = leaf(v_new)
        vc = torch.clamp(v, values - clip, values + clip)
        l1, l2 = (v - returns) ** 2, (vc - returns) ** 2
        loss = 0.5 * masked_mean(torch.max(l1, l2), mf)
        loss.backward()
        val.append({"clip": clip, "loss": float(loss), "d_v": L(v.grad), "clipfrac": float(masked_mean((l2 > l1).double(), mf))})
    out["value"] = val
    # Entropy per row and the gradient of Σ w·H.
    z = leaf(logits)
    p = F.softmax(z, -1)
    H = torch.logsumexp(z, -1) - (p * z).sum(-1)
    (H * ent_w).sum().backward()
    out["entropy"], out["d_entropy"] = L(H), L(z.grad)
    # Adaptive KL controller (TRL's AdaptiveKLController).
    ctl = []
    value = 0.2
    for current, n in [(3.0, 64), (12.0, 64), (6.5, 128), (0.1, 32)]:
        e = float(np.clip(current / 6.0 - 1, -0.2, 0.2))
        value *= 1 + e * n / 10000.0
        ctl.append({"current": current, "n": n, "coef": value})
    out["adaptive_kl"] = {"init": 0.2, "target": 6.0, "horizon": 10000.0, "steps": ctl}
    return out


def grpo_case():
    G, groups, T = 3, 2, 5
    Bg = G * groups
    lengths = [5, 2, 4, 3, 5, 1]
    mask = torch.tensor([[t < n for t in range(T)] for n in lengths])
    mf = mask.double()
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.25, 0.25, 2.0], dtype=torch.float64)
    grouped = rewards.view(-1, G)
    mean = grouped.mean(1).repeat_interleave(G)
    std = grouped.std(1).repeat_interleave(G)
    adv = (rewards - mean) / (std + 1e-4)
    adv32 = torch.tensor(adv.numpy().astype(np.float32), dtype=torch.float64)
    old = f32(Bg, T, lo=-4, hi=-0.2)
    logp = torch.tensor((old + f32(Bg, T, lo=-0.4, hi=0.4)).numpy().astype(np.float32), dtype=torch.float64)
    ref = torch.tensor((old + f32(Bg, T, lo=-0.6, hi=0.6)).numpy().astype(np.float32), dtype=torch.float64)
    out = {"G": G, "T": T, "mask": [bool(v) for v in mask.reshape(-1).tolist()], "rewards": L(rewards), "adv": L(adv),
           "logp": L(logp), "old_logp": L(old), "ref_logp": L(ref), "cases": []}
    for beta, eps, use_old in [(0.04, 0.2, True), (0.0, 0.2, True), (0.1, 0.1, False)]:
        lp = leaf(logp)
        o = old if use_old else lp.detach()
        per_token_kl = torch.exp(ref - lp) - (ref - lp) - 1
        c1 = torch.exp(lp - o)
        c2 = torch.clamp(c1, 1 - eps, 1 + eps)
        l1, l2 = c1 * adv32.unsqueeze(1), c2 * adv32.unsqueeze(1)
        per_token = -torch.min(l1, l2)
        if beta != 0.0:
            per_token = per_token + beta * per_token_kl
        loss = ((per_token * mf).sum(1) / mf.sum(1)).mean()
        loss.backward()
        out["cases"].append({"beta": beta, "epsilon": eps, "use_old": use_old, "loss": float(loss), "d_logp": L(lp.grad),
                             "kl": float(masked_mean(per_token_kl.detach(), mf)),
                             "clipfrac": float(masked_mean((l2 < l1).double(), mf))})
    return out


def main():
    gold = {"dpo": dpo_cases(), "simpo": simpo_cases(), "orpo": orpo_cases(), "kto": kto_cases(),
            "bradley_terry": bt_cases(), "ppo": ppo_case(), "grpo": grpo_case()}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(gold, f, indent=1)
        f.write("\n")
    print("wrote", os.path.relpath(OUT))


if __name__ == "__main__":
    main()
