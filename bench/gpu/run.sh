#!/usr/bin/env bash
# The GPU benchmark (issue #5), run on the GPU machine from a directory made
# by bench/gpu/prepare.sh: lorart's QLoRA training step (random base weights
# of CONFIG, NF4, LoRA r=16) against Hugging Face transformers + peft (bf16
# LoRA r=16, the same config, batch and sequence length), tokens/s (real
# tokens), MFU and peak device memory, printed as a table; where the step's
# time goes (`lorart profile`); and the kernel benchmarks (kernels.py): the
# fused NF4 GEMM against cuBLAS bf16 on Llama-2-7B layer shapes at M = 4096
# and 16384, attention against PyTorch's scaled_dot_product_attention.
# PARTS (default all): a comma list of step (the step against transformers
# + peft), profile (where the step's time goes) and kernels (the kernel
# benchmarks), so that a second run in a short GPU lease can repeat only
# what a change touched.
# Usage: bench/gpu/run.sh DIR|DIR.tar.xz [STEPS] [PARTS]
set -euo pipefail
bundle="$1"; steps="${2:-20}"; parts=",${3:-step,profile,kernels},"
here=$(cd "$(dirname "$0")" && pwd)
if [ -f "$bundle" ]; then  # the .tar.xz of prepare.sh
  mkdir -p /tmp/lorac-gpu-bench
  tar -C /tmp/lorac-gpu-bench -xJf "$bundle"
  bundle="/tmp/lorac-gpu-bench/$(basename "$bundle" .tar.xz)"
fi
dir=$(cd "$bundle" && pwd)
export LD_LIBRARY_PATH="$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
cd "$dir"
./lorart version
rm -rf model
./lorart init-model --config config.json -o model --dtype bf16 --tokenizer tokenizer.model > /dev/null
if [[ $parts == *,step,* ]]; then
rm -rf out
./lorart run plan.bin --device "${LORART_DEVICE:-cuda}" --data train.jsonl --base model -o out \
  --steps "$steps" --warmup-steps 1 --no-progress --seed 1 --kernel-cache "$dir/kernels" > lorart.log 2>&1 || { cat lorart.log; exit 1; }
grep "^device:" lorart.log
python3 "$here/hf_peft_step.py" config.json --plan-report report.json --steps "$steps" > hf.json
python3 - "$steps" <<'PY'
import json, statistics, sys
steps = int(sys.argv[1])
report = json.load(open("report.json"))
grid = report["grid"]
flops = report["flops"]["train_step"] if "flops" in report and "train_step" in report["flops"] else None
m = [json.loads(l) for l in open("out/metrics.jsonl") if '"tokens_per_s"' in l]
# Steady state: per-step tokens over per-step time, after the first (compile/warm-up) step.
rates = []
for a, b in zip(m, m[1:]):
    dt = b["elapsed_s"] - a["elapsed_s"]
    if dt > 0:
        rates.append((b["tokens"] - a["tokens"]) / dt)
lorart_tps = statistics.median(rates) if rates else m[-1]["tokens_per_s"]
hf = json.load(open("hf.json"))
dev = open("lorart.log").read().split("device: ", 1)[1].splitlines()[0]
mem = dev.rsplit("), ", 1)[-1].replace(" of device memory", "") if "of device memory" in dev else "?"
peak = 989e12  # dense bf16, H100/H200 SXM (datasheet)
def mfu(tps):
    if not flops:
        return "?"
    tokens = grid["micro_batch"] * grid["seq_len"]
    return "%.1f%%" % (100 * flops / tokens * tps / peak)
print("| runtime | tokens/s (real) | MFU | peak device memory |")
print("| --- | --- | --- | --- |")
print("| lorart (QLoRA NF4, bf16, CUDA) | %.0f | %s | %s |" % (lorart_tps, mfu(lorart_tps), mem))
print("| transformers %s + peft %s (bf16 LoRA) | %.0f | %s | %.2f GiB |" % (
    hf["transformers"], hf["peft"], hf["tokens_per_s"], mfu(hf["tokens_per_s"]), hf["peak_gib"]))
print("ratio lorart / HF: %.2fx tokens/s" % (lorart_tps / hf["tokens_per_s"]))
PY
fi

# Where the QLoRA step's time goes, by kernel kind.
[[ $parts == *,profile,* ]] && ./lorart profile plan.bin --base model --device "${LORART_DEVICE:-cuda}" --iters 5 --top 10 \
  --kernel-cache "$dir/kernels" --json profile_step.json
# The kernel benchmarks on one Llama-2-7B layer.
[[ $parts == *,kernels,* ]] || exit 0
rm -rf model7b
./lorart init-model --config 7b/config.json -o model7b --dtype bf16 > /dev/null
for m in 4096 16384; do
  ./lorart profile 7b/m$m.bin --base model7b --device "${LORART_DEVICE:-cuda}" --program train_step \
    --iters 10 --top 0 --kernel-cache "$dir/kernels" --json profile_7b_m$m.json > profile_7b_m$m.log
done
python3 "$here/kernels.py" profile_7b_m4096.json profile_7b_m16384.json
