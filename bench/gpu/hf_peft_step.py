#!/usr/bin/env python3
"""The Hugging Face baseline of bench/gpu/run.sh: transformers'
LlamaForCausalLM built from CONFIG (random weights, bf16, SDPA attention),
peft LoRA r=16 / alpha 32 on every linear layer of the decoder, AdamW on the
adapters, full batches of random tokens (every token real) of the plan's
micro_batch x seq_len. Prints JSON: tokens/s (median over the steps after
the first), peak device memory, versions. Runs on the GPU (or the CPU when
there is none, for a smoke test).
Usage: hf_peft_step.py CONFIG --plan-report report.json [--steps N]"""
import argparse
import json
import statistics
import time

import torch
import transformers
import peft
from transformers import LlamaConfig, LlamaForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("config")
ap.add_argument("--plan-report", required=True)
ap.add_argument("--steps", type=int, default=20)
a = ap.parse_args()
grid = json.load(open(a.plan_report))["grid"]
batch, seq = grid["micro_batch"], grid["seq_len"]
dev = "cuda" if torch.cuda.is_available() else "cpu"
dtype = torch.bfloat16 if dev == "cuda" else torch.float32
cfg = LlamaConfig(**{k: v for k, v in json.load(open(a.config)).items() if k != "architectures"})
cfg._attn_implementation = "sdpa"
model = LlamaForCausalLM(cfg).to(device=dev, dtype=dtype)
lora = peft.LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM",
                       target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                       "up_proj", "down_proj"])
model = peft.get_peft_model(model, lora)
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
g = torch.Generator(device="cpu").manual_seed(0)
times = []
for step in range(a.steps):
    ids = torch.randint(0, cfg.vocab_size, (batch, seq), generator=g).to(dev)
    if dev == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    if dev == "cuda":
        torch.cuda.synchronize()
    times.append(time.perf_counter() - t0)
steady = times[1:] or times
tps = batch * seq / statistics.median(steady)
peak = torch.cuda.max_memory_allocated() / 2**30 if dev == "cuda" else float("nan")
print(json.dumps({"tokens_per_s": tps, "peak_gib": peak, "device": dev,
                  "transformers": transformers.__version__, "peft": peft.__version__,
                  "torch": torch.__version__, "batch": batch, "seq_len": seq}))
