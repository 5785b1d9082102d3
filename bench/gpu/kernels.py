#!/usr/bin/env python3
"""Kernel benchmarks against PyTorch on the GPU (issue #5), from `lorart profile` JSON.

For every distinct GEMM shape of the plan's train_step (`fused_linear_fwd`:
the NF4 dequantize -> matmul -> adapter kernel, and `linear_fwd`), times a
plain bf16 cuBLAS product of the same m, n, k through torch.matmul (median of
--reps after warm-up, CUDA events) and prints both in TFLOP/s with the ratio
ours / cuBLAS. Our FLOP count includes the adapter's products; the ratio uses
the base product 2·m·n·k for both, i.e. it asks "how close to a bf16 GEMM is
a GEMM that also dequantizes NF4 and adds the adapter".

For the attention kernels (`attention_fwd`, `attention_bwd`), times PyTorch's
scaled_dot_product_attention (causal, grouped-query heads, bf16) forward and
forward + backward on the same batch, sequence, heads and head size.

Usage: kernels.py PROFILE.json [PROFILE.json ...] [--reps N]
"""
import argparse
import json
import statistics

import torch
import torch.nn.functional as F


def timed(fn, reps, warmup=3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def cublas_ms(m, n, k, reps):
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
    return timed(lambda: torch.matmul(x, w.t()), reps)


def sdpa_ms(b, t, h, kv, d, reps):
    q = torch.randn(b, h, t, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    k = torch.randn(b, kv, t, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    v = torch.randn(b, kv, t, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    gqa = h != kv

    def fwd():
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)

    out = fwd()
    dout = torch.randn_like(out)

    def fwd_bwd():
        o = fwd()
        torch.autograd.grad(o, (q, k, v), dout)

    with torch.no_grad():
        f = timed(fwd, reps)
    fb = timed(fwd_bwd, reps)
    return f, max(fb - f, 0.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("profiles", nargs="+")
    ap.add_argument("--reps", type=int, default=20)
    a = ap.parse_args()
    print("device:", torch.cuda.get_device_name(), "| torch", torch.__version__)
    gemm_rows, attn_rows = [], []
    for path in a.profiles:
        prof = json.load(open(path))
        launches = prof["programs"]["train_step"]["launches"]
        seen = {}
        for l in launches:
            if l["kind"] not in ("fused_linear_fwd", "linear_fwd"):
                continue
            p = l["params"]
            key = (p["m"], p["n"], p["k"], p.get("rank", 0), p.get("weight_format", "dense"))
            seen.setdefault(key, []).append(l["ms"])
        for (m, n, k, r, fmt), times in sorted(seen.items()):
            ours = statistics.median(times)
            ref = cublas_ms(m, n, k, a.reps)
            base = 2.0 * m * n * k
            gemm_rows.append((m, n, k, r, fmt, ours, ref, base / ours / 1e9, base / ref / 1e9))
        fwd = [l for l in launches if l["kind"] == "attention_fwd"]
        bwd = [l for l in launches if l["kind"] == "attention_bwd"]
        if fwd:
            p = fwd[0]["params"]
            ours_f = statistics.median(l["ms"] for l in fwd)
            ours_b = statistics.median(l["ms"] for l in bwd) if bwd else float("nan")
            ref_f, ref_b = sdpa_ms(p["batch"], p["seq"], p["num_heads"], p["num_kv_heads"],
                                   p["head_dim"], a.reps)
            attn_rows.append((p["batch"], p["seq"], p["num_heads"], p["num_kv_heads"],
                              p["head_dim"], ours_f, ref_f, ours_b, ref_b))
    print("\n| m | n | k | rank | weight | lorart ms | cuBLAS bf16 ms | lorart TFLOP/s (base) "
          "| cuBLAS TFLOP/s | lorart / cuBLAS |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for m, n, k, r, fmt, ours, ref, tf, tr in gemm_rows:
        print("| %d | %d | %d | %d | %s | %.4f | %.4f | %.0f | %.0f | %.0f%% |"
              % (m, n, k, r, fmt, ours, ref, tf, tr, 100 * ref / ours))
    print("\n| batch | seq | heads | kv heads | head dim | lorart fwd ms | SDPA fwd ms | "
          "lorart bwd ms | SDPA bwd ms | fwd ratio | bwd ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for b, t, h, kv, d, of, rf, ob, rb in attn_rows:
        print("| %d | %d | %d | %d | %d | %.3f | %.3f | %.3f | %.3f | %.0f%% | %.0f%% |"
              % (b, t, h, kv, d, of, rf, ob, rb, 100 * rf / of, 100 * rb / ob))


if __name__ == "__main__":
    main()
