#!/usr/bin/env python3
"""PyTorch eager reference for bench_cpu_peers.sh (the second peer): the same Llama-family
model (RMSNorm, RoPE, causal GQA attention, SwiGLU) with LoRA adapters of the
same rank on the same linear layers, frozen base, AdamW on the adapters, the
same batch and sequence length. Prints one JSON line with tokens/s and peak
RSS. Run as its own process so that its peak RSS is its own."""
import argparse
import json
import math
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class LoRALinear(nn.Module):
    def __init__(self, d_in, d_out, r, alpha, dropout):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(d_out, d_in) * 0.02, requires_grad=False)
        self.lora_A = nn.Parameter(torch.empty(r, d_in))
        self.lora_B = nn.Parameter(torch.zeros(d_out, r))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.scaling = alpha / r
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return F.linear(x, self.weight) + F.linear(F.linear(self.drop(x), self.lora_A), self.lora_B) * self.scaling


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d), requires_grad=False)
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope(x, cos, sin):
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class Layer(nn.Module):
    def __init__(self, c, r, alpha, dropout):
        super().__init__()
        d, h, kv, hd, i = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"], c["intermediate_size"]
        self.h, self.kv, self.hd = h, kv, hd
        L = lambda a, b: LoRALinear(a, b, r, alpha, dropout)
        self.q, self.k, self.v, self.o = L(d, h * hd), L(d, kv * hd), L(d, kv * hd), L(h * hd, d)
        self.gate, self.up, self.down = L(d, i), L(d, i), L(i, d)
        self.n1, self.n2 = RMSNorm(d), RMSNorm(d)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        y = self.n1(x)
        q = self.q(y).view(b, t, self.h, self.hd).transpose(1, 2)
        k = self.k(y).view(b, t, self.kv, self.hd).transpose(1, 2)
        v = self.v(y).view(b, t, self.kv, self.hd).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        rep = self.h // self.kv
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd) + mask
        a = (s.softmax(-1) @ v).transpose(1, 2).reshape(b, t, -1)
        x = x + self.o(a)
        y = self.n2(x)
        return x + self.down(F.silu(self.gate(y)) * self.up(y))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    c = json.load(open(a.config))
    c.setdefault("num_key_value_heads", c["num_attention_heads"])
    c.setdefault("head_dim", c["hidden_size"] // c["num_attention_heads"])
    V, D = c["vocab_size"], c["hidden_size"]
    emb = nn.Embedding(V, D)
    emb.weight.requires_grad_(False)
    layers = nn.ModuleList(Layer(c, a.rank, 2 * a.rank, 0.05) for _ in range(c["num_hidden_layers"]))
    norm = RMSNorm(D)
    head = nn.Parameter(torch.randn(V, D) * 0.02, requires_grad=False)
    params = [p for p in layers.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    hd = c["head_dim"]
    inv = 1.0 / (c.get("rope_theta", 10000.0) ** (torch.arange(0, hd, 2).float() / hd))
    ang = torch.arange(a.seq).float()[:, None] * inv[None]
    cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)
    mask = torch.full((a.seq, a.seq), float("-inf")).triu(1)
    tokens = torch.randint(0, V, (a.batch, a.seq))
    targets = torch.randint(0, V, (a.batch, a.seq))
    times = []
    for step in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        x = emb(tokens)
        for l in layers:
            x = l(x, cos, sin, mask)
        logits = F.linear(norm(x), head)
        loss = F.cross_entropy(logits.view(-1, V), targets.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step >= a.warmup:
            times.append(time.perf_counter() - t0)
    tps = a.batch * a.seq * len(times) / sum(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"tokens_per_s": tps, "peak_rss_bytes": rss, "torch": torch.__version__,
                      "threads": a.threads}))


if __name__ == "__main__":
    main()
