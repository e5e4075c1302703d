#!/usr/bin/python3
"""PyTorch baseline for `alignkit bench train`: the same shapes, the same math, the same JSON fields.

Run with Debian's interpreter and torch (apt-get install -y python3-torch):

    /usr/bin/python3 bench/torch_train.py --preset ref [--steps 5] [--warmup 1] [--threads 2] [--peak-gflops G]
        [--lora-r N] [--gradient-checkpointing] [--batch B] [--seq-len T]
    /usr/bin/python3 bench/torch_train.py --loss-check DIR --tokens FILE.json

Model: Llama as transformers' LlamaForCausalLM computes it in float32 (RMSNorm, rotate-half RoPE with theta
10000, grouped-query attention with a causal mask, SwiGLU, tied or untied head), weights drawn normal(0, 0.02)
with RMSNorm gains 1; for a Qwen3 preset (qwen3-0.6b), Qwen3ForCausalLM: the same plus a per-head RMSNorm on
q and k before RoPE (q_norm, k_norm over head_dim), head_dim independent of d / heads, and Qwen3's rope_theta
and rms_norm_eps.A step is what alignkit's bench times: zero the gradients, forward, mean next-token
cross-entropy over every position, backward, clip_grad_norm_(1.0), AdamW (lr 1e-4, betas 0.9/0.999, eps 1e-8,
weight decay 0.01, RMSNorm gains not decayed), on one fixed batch of random tokens.

--lora-r N trains a hand-written LoRA (no peft package here) as alignkit's --lora-r does: every linear layer of
the decoder (q, k, v, o, gate, up, down; not the head) becomes LoRALinear, its float32 nn.Linear frozen
(requires_grad False) plus A (r, in) drawn as PEFT's kaiming_uniform_(a=sqrt(5)), B (out, r) zero, scaled by
lora_alpha / r with lora_alpha = 2r and no dropout; the embedding, norms and head are frozen too, and only A and
B get gradients and AdamW state. The base stays float32 (no bitsandbytes): base_dtype is "float32".
--gradient-checkpointing wraps each decoder layer in torch.utils.checkpoint (non-reentrant), as transformers'
gradient_checkpointing_enable does.

--loss-check DIR loads an HF model directory (config.json and float32 model.safetensors, as `alignkit bench init`
and alignkit's HF export write them; read here without the safetensors package) into the same modules and prints
{"loss": L}: the mean next-token cross-entropy on the batch in --tokens ({"inputs": [[...]], "targets": [[...]]}),
so a test can hold alignkit's loss on the same weights and tokens against this model (bench's TestTorchSameLoss).

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

# Same table as bench/presets.go: vocab, d, layers, heads, kv heads, SwiGLU width, tied, batch, seq_len; a preset
# may also set hd (head_dim; default d // heads), qk_norm (Qwen3's q/k RMSNorm), eps (rms_norm_eps; default 1e-5)
# and theta (rope_theta; default 10000).
PRESETS = {
    "ref": dict(vocab=4096, d=256, layers=4, heads=8, kv=4, ffn=688, tied=True, batch=8, seq=256),
    "smollm135m": dict(vocab=49152, d=576, layers=30, heads=9, kv=3, ffn=1536, tied=True, batch=4, seq=512),
    "decode512": dict(vocab=32000, d=512, layers=8, heads=8, kv=4, ffn=1376, tied=False, batch=1, seq=128),
    "stories260k": dict(vocab=512, d=64, layers=5, heads=8, kv=4, ffn=172, tied=True, batch=8, seq=256),
    "tiny": dict(vocab=512, d=64, layers=2, heads=4, kv=2, ffn=172, tied=True, batch=4, seq=64),
    "llama3-1b": dict(vocab=128256, d=2048, layers=16, heads=32, kv=8, ffn=8192, tied=True, batch=1, seq=1024),
    "llama3-8b": dict(vocab=128256, d=4096, layers=32, heads=32, kv=8, ffn=14336, tied=False, batch=1, seq=1024),
    "qwen3-0.6b": dict(vocab=151936, d=1024, layers=28, heads=16, kv=8, ffn=3072, tied=True, batch=1, seq=512,
                       hd=128, qk_norm=True, eps=1e-6, theta=1e6),
}


def head_dim(c):
    return c.get("hd") or c["d"] // c["heads"]


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
        self.hd = head_dim(c)
        eps = c.get("eps", 1e-5)
        self.input_layernorm = RMSNorm(d, eps, device=device)
        self.q_proj = nn.Linear(d, self.h * self.hd, bias=False, device=device)
        self.k_proj = nn.Linear(d, self.kv * self.hd, bias=False, device=device)
        self.v_proj = nn.Linear(d, self.kv * self.hd, bias=False, device=device)
        self.o_proj = nn.Linear(self.h * self.hd, d, bias=False, device=device)
        # Qwen3: one RMSNorm gain of head_dim shared by every q head, another by every k head.
        self.q_norm = RMSNorm(self.hd, eps, device=device) if c.get("qk_norm") else None
        self.k_norm = RMSNorm(self.hd, eps, device=device) if c.get("qk_norm") else None
        self.post_attention_layernorm = RMSNorm(d, eps, device=device)
        self.gate_proj = nn.Linear(d, c["ffn"], bias=False, device=device)
        self.up_proj = nn.Linear(d, c["ffn"], bias=False, device=device)
        self.down_proj = nn.Linear(c["ffn"], d, bias=False, device=device)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(B, T, self.h, self.hd)  # (B, T, H, hd)
        k = self.k_proj(h).view(B, T, self.kv, self.hd)  # (B, T, KV, hd)
        if self.q_norm is not None:  # Qwen3Attention: q_norm(q_proj(x).view(..., hd)) before RoPE
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = q.transpose(1, 2), k.transpose(1, 2)  # (B, H, T, hd), (B, KV, T, hd)
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
        self.norm = RMSNorm(c["d"], c.get("eps", 1e-5), device=device)
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
        hd = head_dim(self.c)
        inv = 1.0 / (self.c.get("theta", 10000.0) ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
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
    hd = head_dim(c)
    q, kv = c["heads"] * hd, c["kv"] * hd
    per_layer = c["d"] * q + 2 * c["d"] * kv + q * c["d"] + 3 * c["d"] * c["ffn"]
    return c["layers"] * per_layer + c["vocab"] * c["d"]


def lora_matmul_params(c, r):
    """r*(in+out) over q, k, v, o, gate, up, down of every layer (bench.LoRAMatmulParams)."""
    hd = head_dim(c)
    q, kv, d = c["heads"] * hd, c["kv"] * hd, c["d"]
    return c["layers"] * r * ((d + q) + 2 * (d + kv) + (q + d) + 3 * (d + c["ffn"]))


def flop_per_token(c, seq, lora_r=0, ckpt=False):
    """bench.StepFLOPsPerToken: see the module docstring."""
    hd = head_dim(c)
    n = matmul_params(c)
    nl = n - c["vocab"] * c["d"]
    a = 4 * c["layers"] * seq * c["heads"] * hd
    p = lora_matmul_params(c, lora_r) if lora_r > 0 else 0
    f = 6 * n + 3 * a if lora_r == 0 else 4 * n + 6 * p + 3 * a
    if ckpt:
        f += 2 * nl + 2 * p + a
    return f


def config_from_hf(cfg, path):
    """A preset dict from an HF config.json (LlamaForCausalLM or Qwen3ForCausalLM); anything this script's
    modules do not compute is an error naming the key."""
    arch = (cfg.get("architectures") or [""])[0]
    if arch not in ("LlamaForCausalLM", "Qwen3ForCausalLM"):
        sys.exit(f"torch_train.py: {path}: architectures {arch!r}: want LlamaForCausalLM or Qwen3ForCausalLM")
    for key in ("rope_scaling", "attention_bias", "mlp_bias"):
        if cfg.get(key):
            sys.exit(f"torch_train.py: {path}: {key} {cfg[key]!r} is not modelled here")
    return dict(vocab=cfg["vocab_size"], d=cfg["hidden_size"], layers=cfg["num_hidden_layers"],
                heads=cfg["num_attention_heads"], kv=cfg.get("num_key_value_heads") or cfg["num_attention_heads"],
                ffn=cfg["intermediate_size"], tied=bool(cfg.get("tie_word_embeddings")),
                hd=cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"],
                qk_norm=arch == "Qwen3ForCausalLM", eps=cfg["rms_norm_eps"], theta=cfg.get("rope_theta", 10000.0))


def read_safetensors(path):
    """The float32 tensors of a safetensors file: an 8-byte little-endian header length, a JSON header
    {name: {dtype, shape, data_offsets}}, then the data (safetensors' format; no package needed)."""
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    body = raw[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            sys.exit(f"torch_train.py: {path}: {name} is {info['dtype']}: want F32")
        lo, hi = info["data_offsets"]
        out[name] = torch.frombuffer(bytearray(body[lo:hi]), dtype=torch.float32).reshape(info["shape"])
    return out


def hf_to_module(name):
    """transformers' tensor name -> this script's: model.layers.0.self_attn.q_proj.weight -> layers.0.q_proj.weight."""
    return name.removeprefix("model.").replace("self_attn.", "").replace("mlp.", "")


def loss_check(model_dir, tokens_path):
    with open(os.path.join(model_dir, "config.json")) as f:
        c = config_from_hf(json.load(f), os.path.join(model_dir, "config.json"))
    model = Llama(c)
    state = {hf_to_module(k): v for k, v in read_safetensors(os.path.join(model_dir, "model.safetensors")).items()}
    want = model.state_dict()
    if set(state) != set(want):
        sys.exit(f"torch_train.py: {model_dir}: tensors {sorted(set(state) ^ set(want))} are in one of the file and the model only")
    model.load_state_dict(state)
    with open(tokens_path) as f:
        batch = json.load(f)
    inputs, targets = torch.tensor(batch["inputs"]), torch.tensor(batch["targets"])
    with torch.no_grad():
        logits = model(inputs)
        loss = F.cross_entropy(logits.reshape(-1, c["vocab"]), targets.reshape(-1))
    print(json.dumps(dict(loss=loss.item())))


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
    ap.add_argument("--loss-check", metavar="DIR", help="print the loss of the HF model in DIR on --tokens and exit (no training)")
    ap.add_argument("--tokens", metavar="FILE", help="with --loss-check: JSON {\"inputs\": [[...]], \"targets\": [[...]]}")
    ap.add_argument("--describe", action="store_true",
                    help="print every preset's parameter counts and FLOPs per token as JSON, and exit (no training)")
    a = ap.parse_args()
    if a.loss_check:
        if not a.tokens:
            ap.error("--loss-check needs --tokens FILE")
        loss_check(a.loss_check, a.tokens)
        return
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
