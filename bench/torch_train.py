#!/usr/bin/python3
"""PyTorch baseline for `alignkit bench train`: the same shapes, the same math, the same JSON fields.

Run with Debian's interpreter and torch (apt-get install -y python3-torch):

    /usr/bin/python3 bench/torch_train.py --preset ref [--steps 5] [--warmup 1] [--threads 2] [--peak-gflops G]
        [--lora-r N] [--gradient-checkpointing] [--batch B] [--seq-len T]

Model: Llama as transformers' LlamaForCausalLM computes it in float32 (RMSNorm, rotate-half RoPE with theta
10000, grouped-query attention with a causal mask, SwiGLU, tied or untied head), weights drawn normal(0, 0.02)
with RMSNorm gains 1. A step is what alignkit's bench times: zero the gradients, forward, mean next-token
cross-entropy over every position, backward, clip_grad_norm_(1.0), AdamW (lr 1e-4, betas 0.9/0.999, eps 1e-8,
weight decay 0.01, RMSNorm gains not decayed), on one fixed batch of random tokens.

--lora-r N trains a hand-written LoRA (no peft package here) as alignkit's --lora-r does: every linear layer of
the decoder (q, k, v, o, gate, up, down; not the head) becomes LoRALinear, its float32 nn.Linear frozen
(requires_grad False) plus A (r, in) drawn as PEFT's kaiming_uniform_(a=sqrt(5)), B (out, r) zero, scaled by
lora_alpha / r with lora_alpha = 2r and no dropout; the embedding, norms and head are frozen too, and only A and
B get gradients and AdamW state. The base stays float32 (no bitsandbytes): base_dtype is "float32".
--gradient-checkpointing wraps each decoder layer in torch.utils.checkpoint (non-reentrant), as transformers'
gradient_checkpointing_enable does.

Counting (see bench/doc.go, identical in Go): tokens/s = batch*seq_len over the median step time after warm-up;
peak RSS = getrusage(RUSAGE_SELF).ru_maxrss (the kernel's VmHWM); FLOPs per token as bench.StepFLOPsPerToken:
6*N + 3*A for full fine-tuning, 4*N + 6*P + 3*A with LoRA, plus 2*N_L + 2*P + A with checkpointing, where N is
the matmul weights (q, k, v, o, gate, up, down per layer, plus the V*D head even when tied), N_L its layer part,
P the adapter weights (r*(in+out) per adapted layer) and A = 4*L*T*H*hd the attention products' forward.
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
from torch.utils.checkpoint import checkpoint

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
    def __init__(self, d, eps=1e-5, device=None):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d, device=device))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class LoRALinear(nn.Module):
    """A frozen nn.Linear plus PEFT's LoRA term: y = W x + (alpha / r) * B A x."""

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base = base
        self.base.weight.requires_grad_(False)
        dev = base.weight.device
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, device=dev))  # (r, in)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, device=dev))  # (out, r)
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # PEFT's reset_lora_parameters
        self.scale = alpha / r

    def forward(self, x):
        return self.base(x) + (x @ self.lora_A.t() @ self.lora_B.t()) * self.scale


LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class Block(nn.Module):
    def __init__(self, c, device=None):
        super().__init__()
        d, self.h, self.kv = c["d"], c["heads"], c["kv"]
        self.hd = d // self.h
        self.input_layernorm = RMSNorm(d, device=device)
        self.q_proj = nn.Linear(d, self.h * self.hd, bias=False, device=device)
        self.k_proj = nn.Linear(d, self.kv * self.hd, bias=False, device=device)
        self.v_proj = nn.Linear(d, self.kv * self.hd, bias=False, device=device)
        self.o_proj = nn.Linear(self.h * self.hd, d, bias=False, device=device)
        self.post_attention_layernorm = RMSNorm(d, device=device)
        self.gate_proj = nn.Linear(d, c["ffn"], bias=False, device=device)
        self.up_proj = nn.Linear(d, c["ffn"], bias=False, device=device)
        self.down_proj = nn.Linear(c["ffn"], d, bias=False, device=device)

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
    def __init__(self, c, device=None):
        super().__init__()
        self.c = c
        self.checkpointing = False
        self.embed_tokens = nn.Embedding(c["vocab"], c["d"], device=device)
        self.layers = nn.ModuleList(Block(c, device=device) for _ in range(c["layers"]))
        self.norm = RMSNorm(c["d"], device=device)
        self.lm_head = None if c["tied"] else nn.Linear(c["d"], c["vocab"], bias=False, device=device)
        for name, p in self.named_parameters():
            if p.dim() > 1:
                nn.init.normal_(p, std=0.02)

    def add_lora(self, r):
        """Freezes every base weight and wraps each decoder linear layer in LoRALinear (all-linear)."""
        for p in self.parameters():
            p.requires_grad_(False)
        for layer in self.layers:
            for name in LORA_TARGETS:
                setattr(layer, name, LoRALinear(getattr(layer, name), r, 2 * r))

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
            if self.checkpointing and torch.is_grad_enabled():
                x = checkpoint(layer, x, cos, sin, mask, use_reentrant=False)
            else:
                x = layer(x, cos, sin, mask)
        x = self.norm(x)
        w = self.embed_tokens.weight if self.lm_head is None else self.lm_head.weight
        return x @ w.t()  # (B, T, V)


def matmul_params(c):
    hd = c["d"] // c["heads"]
    q, kv = c["heads"] * hd, c["kv"] * hd
    per_layer = c["d"] * q + 2 * c["d"] * kv + q * c["d"] + 3 * c["d"] * c["ffn"]
    return c["layers"] * per_layer + c["vocab"] * c["d"]


def lora_matmul_params(c, r):
    """r*(in+out) over q, k, v, o, gate, up, down of every layer (bench.LoRAMatmulParams)."""
    hd = c["d"] // c["heads"]
    q, kv, d = c["heads"] * hd, c["kv"] * hd, c["d"]
    return c["layers"] * r * ((d + q) + 2 * (d + kv) + (q + d) + 3 * (d + c["ffn"]))


def flop_per_token(c, seq, lora_r=0, ckpt=False):
    """bench.StepFLOPsPerToken: see the module docstring."""
    hd = c["d"] // c["heads"]
    n = matmul_params(c)
    nl = n - c["vocab"] * c["d"]
    a = 4 * c["layers"] * seq * c["heads"] * hd
    p = lora_matmul_params(c, lora_r) if lora_r > 0 else 0
    f = 6 * n + 3 * a if lora_r == 0 else 4 * n + 6 * p + 3 * a
    if ckpt:
        f += 2 * nl + 2 * p + a
    return f


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
    ap.add_argument("--lora-r", type=int, default=0,
                    help="0 trains every weight; N > 0 a rank-N LoRA (alpha 2N, no dropout) on every decoder linear layer over a frozen float32 base")
    ap.add_argument("--gradient-checkpointing", action="store_true", help="recompute each decoder layer's forward in the backward pass")
    ap.add_argument("--batch", type=int, default=0, help="rows per step (default: the preset's)")
    ap.add_argument("--seq-len", type=int, default=0, help="tokens per row (default: the preset's)")
    ap.add_argument("--quiet", "-q", action="store_true")
    ap.add_argument("--describe", action="store_true",
                    help="print every preset's parameter counts and FLOPs per token as JSON, and exit (no training)")
    a = ap.parse_args()
    if a.describe:
        out = {}
        for name, c in PRESETS.items():
            m = Llama(c, device="meta")  # shapes only: llama3-8b in float32 would take 32 GB
            nparams = sum(p.numel() for p in m.parameters())
            m.add_lora(16)
            out[name] = dict(params=nparams, params_matmul=matmul_params(c), flop_per_token=float(flop_per_token(c, c["seq"])),
                             batch=c["batch"], seq_len=c["seq"],
                             lora16_trainable_params=sum(p.numel() for p in m.parameters() if p.requires_grad),
                             flop_per_token_ckpt=float(flop_per_token(c, c["seq"], 0, True)),
                             flop_per_token_lora16=float(flop_per_token(c, c["seq"], 16, False)),
                             flop_per_token_lora16_ckpt=float(flop_per_token(c, c["seq"], 16, True)))
        print(json.dumps(out))
        return
    if a.steps < 1 or a.warmup < 0:
        ap.error(f"--steps {a.steps} must be >= 1 and --warmup {a.warmup} >= 0")
    if a.lora_r < 0:
        ap.error(f"--lora-r {a.lora_r}: must be >= 0 (0 trains every weight, N > 0 a rank-N LoRA adapter)")
    if a.batch < 0 or a.seq_len < 0 or a.seq_len == 1:
        ap.error(f"--batch {a.batch} must be >= 1 and --seq-len {a.seq_len} >= 2 (0: the preset's)")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    c = PRESETS[a.preset]
    B, T = a.batch or c["batch"], a.seq_len or c["seq"]
    model = Llama(c)
    if a.lora_r > 0:
        model.add_lora(a.lora_r)
    model.checkpointing = a.gradient_checkpointing
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in trainable if p.dim() > 1]
    no_decay = [p for n, p in trainable if p.dim() == 1]
    groups = [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
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
        norm = torch.nn.utils.clip_grad_norm_([p for _, p in trainable], 1.0)
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
    fpt = flop_per_token(c, T, a.lora_r, a.gradient_checkpointing)
    peak = a.peak_gflops if a.peak_gflops > 0 else measure_peak()
    ntrain = sum(p.numel() for _, p in trainable)
    nparams = sum(p.numel() for p in model.parameters()) - (ntrain if a.lora_r > 0 else 0)  # the base's, as alignkit
    out = dict(kind="train", engine="pytorch", preset=a.preset, batch=B, seq_len=T, params=nparams, params_matmul=matmul_params(c),
               steps=a.steps, warmup=a.warmup, step_s=steps, tokens_per_s=tps, peak_rss_mb=peak_rss_mb,
               flop_per_token=float(fpt), achieved_gflops=fpt * tps / 1e9, peak_gflops=peak,
               peak_share=fpt * tps / 1e9 / peak, loss_first=losses[0], loss_last=losses[-1],
               blas=f"torch {torch.__version__} ({blas_in_use()})", threads=torch.get_num_threads(),
               openblas_threads=os.environ.get("OPENBLAS_NUM_THREADS", ""),
               openblas_coretype=os.environ.get("OPENBLAS_CORETYPE", ""),
               lora_r=a.lora_r, base_dtype="float32", trainable_params=ntrain)
    if a.gradient_checkpointing:
        out["gradient_checkpointing"] = True
    print(json.dumps(out))


if __name__ == "__main__":
    main()
