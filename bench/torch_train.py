#!/usr/bin/python3
"""PyTorch baseline for `alignkit bench train`: the same shapes, the same math, the same JSON fields.

Run with Debian's interpreter and torch (apt-get install -y python3-torch):

    /usr/bin/python3 bench/torch_train.py --preset ref [--steps 5] [--warmup 1] [--threads 2] [--peak-gflops G]

Model: Llama as transformers' LlamaForCausalLM computes it in float32 (RMSNorm, rotate-half RoPE with theta
10000, grouped-query attention with a causal mask, SwiGLU, tied or untied head), weights drawn normal(0, 0.02)
with RMSNorm gains 1. A step is what alignkit's bench times: zero the gradients, forward, mean next-token
cross-entropy over every position, backward, clip_grad_norm_(1.0), AdamW (lr 1e-4, betas 0.9/0.999, eps 1e-8,
weight decay 0.01, RMSNorm gains not decayed), on one fixed batch of random tokens.

Counting (see bench/doc.go, identical in Go): tokens/s = batch*seq_len over the median step time after warm-up;
peak RSS = getrusage(RUSAGE_SELF).ru_maxrss (the kernel's VmHWM); FLOPs per token = 6*N + 12*L*T*H*hd with N the
matmul weights (q, k, v, o, gate, up, down per layer, plus the V*D head even when tied).
"""
import argparse
import json
import math
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# Same table as bench/presets.go: vocab, d, layers, heads, kv heads, SwiGLU width, tied, batch, seq_len.
PRESETS = {
    "ref": dict(vocab=4096, d=256, layers=4, heads=8, kv=4, ffn=688, tied=True, batch=8, seq=256),
    "smollm135m": dict(vocab=49152, d=576, layers=30, heads=9, kv=3, ffn=1536, tied=True, batch=4, seq=512),
    "decode512": dict(vocab=32000, d=512, layers=8, heads=8, kv=4, ffn=1376, tied=False, batch=1, seq=128),
    "stories260k": dict(vocab=512, d=64, layers=5, heads=8, kv=4, ffn=172, tied=True, batch=8, seq=256),
    "tiny": dict(vocab=512, d=64, layers=2, heads=4, kv=2, ffn=172, tied=True, batch=4, seq=64),
    "llama3-1b": dict(vocab=128256, d=2048, layers=16, heads=32, kv=8, ffn=8192, tied=True, batch=1, seq=1024),
    "llama3-8b": dict(vocab=128256, d=4096, layers=32, heads=32, kv=8, ffn=14336, tied=False, batch=1, seq=1024),
}


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, self.h, self.kv = c["d"], c["heads"], c["kv"]
        self.hd = d // self.h
        self.input_layernorm = RMSNorm(d)
        self.q_proj = nn.Linear(d, self.h * self.hd, bias=False)
        self.k_proj = nn.Linear(d, self.kv * self.hd, bias=False)
        self.v_proj = nn.Linear(d, self.kv * self.hd, bias=False)
        self.o_proj = nn.Linear(self.h * self.hd, d, bias=False)
        self.post_attention_layernorm = RMSNorm(d)
        self.gate_proj = nn.Linear(d, c["ffn"], bias=False)
        self.up_proj = nn.Linear(d, c["ffn"], bias=False)
        self.down_proj = nn.Linear(c["ffn"], d, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(B, T, self.h, self.hd).transpose(1, 2)  # (B, H, T, hd)
        k = self.k_proj(h).view(B, T, self.kv, self.hd).transpose(1, 2)  # (B, KV, T, hd)
        v = self.v_proj(h).view(B, T, self.kv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.h // self.kv  # transformers' repeat_kv: each KV head serves rep consecutive query heads
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(self.hd) + mask  # (B, H, T, T)
        att = att.softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, self.h * self.hd)
        x = x + self.o_proj(y)
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c["vocab"], c["d"])
        self.layers = nn.ModuleList(Block(c) for _ in range(c["layers"]))
        self.norm = RMSNorm(c["d"])
        self.lm_head = None if c["tied"] else nn.Linear(c["d"], c["vocab"], bias=False)
        for name, p in self.named_parameters():
            if p.dim() > 1:
                nn.init.normal_(p, std=0.02)

    def forward(self, tokens):
        B, T = tokens.shape
        hd = self.c["d"] // self.c["heads"]
        inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        ang = torch.outer(torch.arange(T, dtype=torch.float32), inv)
        emb = torch.cat((ang, ang), dim=-1)
        cos, sin = emb.cos(), emb.sin()  # (T, hd)
        mask = torch.full((T, T), float("-inf")).triu(1)
        x = self.embed_tokens(tokens)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        x = self.norm(x)
        w = self.embed_tokens.weight if self.lm_head is None else self.lm_head.weight
        return x @ w.t()  # (B, T, V)


def matmul_params(c):
    hd = c["d"] // c["heads"]
    q, kv = c["heads"] * hd, c["kv"] * hd
    per_layer = c["d"] * q + 2 * c["d"] * kv + q * c["d"] + 3 * c["d"] * c["ffn"]
    return c["layers"] * per_layer + c["vocab"] * c["d"]


def flop_per_token(c, seq):
    hd = c["d"] // c["heads"]
    return 6 * matmul_params(c) + 12 * c["layers"] * seq * c["heads"] * hd


def blas_in_use():
    try:
        with open("/proc/self/maps") as f:
            maps = f.read()
    except OSError:
        return "unknown"
    for name in ("openblas", "mkl", "blis", "libblas"):
        if name in maps:
            return name
    return "unknown"


def measure_peak(n=2048, reps=5):
    a = torch.rand(n, n) - 0.5
    b = torch.rand(n, n) - 0.5
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="ref", choices=sorted(PRESETS))
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--peak-gflops", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quiet", "-q", action="store_true")
    ap.add_argument("--describe", action="store_true",
                    help="print every preset's parameter counts and FLOPs per token as JSON, and exit (no training)")
    a = ap.parse_args()
    if a.describe:
        out = {}
        for name, c in PRESETS.items():
            nparams = sum(p.numel() for p in Llama(c).parameters())
            out[name] = dict(params=nparams, params_matmul=matmul_params(c), flop_per_token=float(flop_per_token(c, c["seq"])),
                             batch=c["batch"], seq_len=c["seq"])
        print(json.dumps(out))
        return
    if a.steps < 1 or a.warmup < 0:
        ap.error(f"--steps {a.steps} must be >= 1 and --warmup {a.warmup} >= 0")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    c = PRESETS[a.preset]
    B, T = c["batch"], c["seq"]
    model = Llama(c)
    decay = [p for n, p in model.named_parameters() if p.dim() > 1]
    no_decay = [p for n, p in model.named_parameters() if p.dim() == 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
    seq = torch.randint(0, c["vocab"], (B, T + 1))
    inputs, targets = seq[:, :-1].contiguous(), seq[:, 1:].contiguous()

    steps, losses = [], []
    total = a.warmup + a.steps
    for step in range(1, total + 1):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = model(inputs)
        loss = F.cross_entropy(logits.view(-1, c["vocab"]), targets.view(-1))
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        lv = loss.item()
        dt = time.perf_counter() - t
        if not math.isfinite(lv) or not math.isfinite(norm.item()):
            sys.exit(f"torch_train.py: step {step}: loss {lv}, grad norm {norm.item()}")
        steps.append(dt)
        losses.append(lv)
        if not a.quiet:
            print(f"step {step}/{total}: {dt:.3f} s, {B * T / dt:.0f} tokens/s, loss {lv:.4f}", file=sys.stderr)

    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # ru_maxrss is in KiB on Linux
    timed = sorted(steps[a.warmup:])
    mid = len(timed) // 2
    median = timed[mid] if len(timed) % 2 else (timed[mid - 1] + timed[mid]) / 2
    tps = B * T / median
    fpt = flop_per_token(c, T)
    peak = a.peak_gflops if a.peak_gflops > 0 else measure_peak()
    nparams = sum(p.numel() for p in model.parameters())
    out = dict(kind="train", engine="pytorch", preset=a.preset, batch=B, seq_len=T, params=nparams, params_matmul=matmul_params(c),
               steps=a.steps, warmup=a.warmup, step_s=steps, tokens_per_s=tps, peak_rss_mb=peak_rss_mb,
               flop_per_token=float(fpt), achieved_gflops=fpt * tps / 1e9, peak_gflops=peak,
               peak_share=fpt * tps / 1e9 / peak, loss_first=losses[0], loss_last=losses[-1],
               blas=f"torch {torch.__version__} ({blas_in_use()})", threads=torch.get_num_threads(),
               openblas_threads=os.environ.get("OPENBLAS_NUM_THREADS", ""),
               openblas_coretype=os.environ.get("OPENBLAS_CORETYPE", ""))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
