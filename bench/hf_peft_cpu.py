#!/usr/bin/env python3
"""The fair CPU peer of bench/bench_cpu_peers.sh: transformers' LlamaForCausalLM
(SDPA attention) with PEFT LoRA on every linear layer of the decoder, on
PyTorch from PyPI (MKL + oneDNN), the way a user fine-tunes on a CPU:
frozen base, AdamW on the adapters, gradient clipping, loss over the batch.

  --dtype f32   float32 weights and compute
  --dtype bf16  bfloat16 base weights and torch.autocast(bfloat16) compute
                (PEFT keeps the adapters in float32, its default)

Prints one JSON line: mean tokens/s over the timed steps and peak RSS. Run
as its own process so that its peak RSS is its own."""
import argparse
import json
import resource
import time

import peft
import torch
import transformers


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", required=True)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    c = json.load(open(a.config))
    keys = ["hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers",
            "num_key_value_heads", "rms_norm_eps", "rope_theta", "vocab_size",
            "max_position_embeddings", "tie_word_embeddings", "head_dim"]
    cfg = transformers.LlamaConfig(**{k: c[k] for k in keys if k in c})
    cfg._attn_implementation = "sdpa"
    model = transformers.LlamaForCausalLM(cfg)
    if a.dtype == "bf16":
        model = model.to(torch.bfloat16)
    model = peft.get_peft_model(model, peft.LoraConfig(
        r=a.rank, lora_alpha=2 * a.rank, lora_dropout=0.05, target_modules="all-linear",
        task_type="CAUSAL_LM"))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-4)
    ids = torch.randint(0, cfg.vocab_size, (a.batch, a.seq))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.dtype == "bf16"):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(a.warmup):
        step()
    start = time.perf_counter()
    for _ in range(a.steps):
        step()
    seconds = time.perf_counter() - start
    print(json.dumps({
        "tokens_per_s": a.batch * a.seq * a.steps / seconds,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "torch": torch.__version__, "transformers": transformers.__version__,
        "peft": peft.__version__, "mkl": torch.backends.mkl.is_available(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "sdpa": model.base_model.model.config._attn_implementation,
    }))


if __name__ == "__main__":
    main()
