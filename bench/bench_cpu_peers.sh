#!/usr/bin/env bash
# CPU LoRA training, lorart against the peers a user would run, in one run on
# one machine (issue #17): lorart's f32 and bf16 plans (through the C API,
# bench/lorart_step_bench.cc), transformers + PEFT on PyTorch from PyPI (MKL +
# oneDNN, SDPA) in f32 and bf16 (bench/hf_peft_cpu.py), and the hand-written
# PyTorch model in f32 (bench/llama_lora_torch.py). LoRA r16, alpha 32,
# dropout 0.05 on every linear layer of the decoder; AdamW; same batch,
# sequence and threads; every runtime in its own process (peak RSS is its own),
# one after the other. Prints a markdown table per shape.
#
#   bash bench/bench_cpu_peers.sh [BUILD] [STEPS] [THREADS]
#
# PYTHON (default /usr/bin/python3) with PYTHONPATH must import torch (from
# PyPI: `pip install torch`), transformers and peft; by default PYTHONPATH is
# the folders scripts/setup.sh fills (/opt/lorac-hf5: transformers 5, peft).
set -euo pipefail
build=${1:-build}
steps=${2:-3}
threads=${3:-$(nproc)}
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-/usr/bin/python3}
export PYTHONPATH=${PYTHONPATH:-/opt/lorac-hf5:/opt/lorac-pydeps}
work="$build/bench_peers"
mkdir -p "$work"

# name config batch seq
shapes=(
  "bench-45M:$root/bench/bench_config.json:4:256"
  "bench-45M-seq1024:$root/bench/bench_config.json:1:1024"
  "tinyllama-4-layers:$root/bench/bench_tinyllama_4l.json:4:256"
)

for shape in "${shapes[@]}"; do
  IFS=: read -r name cfg batch seq <<< "$shape"
  dir="$work/$name"
  mkdir -p "$dir"
  results=()
  for dtype in f32 bf16; do
    rm -rf "$dir/model_$dtype"
    "$build/bin/lorart" init-model --config "$cfg" -o "$dir/model_$dtype" --dtype "$dtype" > /dev/null
    "$build/bin/lorac" compile "$cfg" --dtype "$dtype" --lora-r 16 --lora-alpha 32 \
      --lora-dropout 0.05 --micro-batch "$batch" --seq-len "$seq" -o "$dir/plan_$dtype.bin"
    results+=("lorart $dtype plan=$("$build/bin/lorart_step_bench" "$dir/plan_$dtype.bin" \
      "$dir/model_$dtype" "$steps" 1 "$threads")")
    results+=("transformers + peft $dtype, SDPA=$("$py" "$root/bench/hf_peft_cpu.py" \
      --config "$cfg" --batch "$batch" --seq "$seq" --rank 16 --steps "$steps" --warmup 1 \
      --threads "$threads" --dtype "$dtype")")
  done
  results+=("hand-written PyTorch model f32=$("$py" "$root/bench/llama_lora_torch.py" \
    --config "$cfg" --batch "$batch" --seq "$seq" --rank 16 --steps "$steps" --warmup 1 \
    --threads "$threads")")
  "$py" - "$name" "$batch" "$seq" "$threads" "${results[@]}" <<'PY'
import json, sys
name, batch, seq, threads = sys.argv[1:5]
rows = []
for arg in sys.argv[5:]:
    label, _, js = arg.partition("=")
    rows.append((label, json.loads(js)))
peer = {k: r for k, r in rows}
print("### %s: batch %s x %s tokens, %s threads\n" % (name, batch, seq, threads))
hf = next(r for k, r in rows if k.startswith("transformers"))
print("PyTorch %s (MKL %s, oneDNN %s), transformers %s, peft %s\n" % (
    hf["torch"], hf["mkl"], hf["mkldnn"], hf["transformers"], hf["peft"]))
print("| runtime | tokens/s | peak RSS (MiB) |")
print("| --- | --- | --- |")
for k, r in rows:
    print("| %s | %.0f | %.0f |" % (k, r["tokens_per_s"], r["peak_rss_bytes"] / 2**20))
print()
for dtype in ("f32", "bf16"):
    l = peer["lorart %s plan" % dtype]
    h = peer["transformers + peft %s, SDPA" % dtype]
    print("%s: lorart / transformers+peft tokens/s %.2fx, peak RSS %.2fx" % (
        dtype, l["tokens_per_s"] / h["tokens_per_s"], l["peak_rss_bytes"] / h["peak_rss_bytes"]))
print()
PY
done
