#!/usr/bin/env bash
# CPU training throughput and peak memory: lorart (a lorac-compiled LoRA plan)
# against PyTorch eager with a LoRA of the same rank on the same model
# config, batch and sequence length, in one run. Prints a markdown table.
#   bash bench/bench_cpu_training.sh [BUILD] [STEPS]
set -euo pipefail
build=${1:-build}
steps=${2:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
cfg="$root/bench/bench_config.json"
work="$build/bench"
mkdir -p "$work"
threads=$(nproc)
"$build/bin/lorart" init-model --config "$cfg" -o "$work/model" --dtype f32 > /dev/null
"$build/bin/lorac" compile "$cfg" --dtype f32 --lora-r 16 --lora-alpha 32 --lora-dropout 0.05 \
  --micro-batch 4 --seq-len 256 -o "$work/plan.bin"
lorart=$("$build/bin/lorart_step_bench" "$work/plan.bin" "$work/model" "$steps" 1 "$threads")
torch=$(/usr/bin/python3 "$root/bench/llama_lora_torch.py" --config "$cfg" --batch 4 --seq 256 \
  --rank 16 --steps "$steps" --warmup 1 --threads "$threads")
/usr/bin/python3 - "$lorart" "$torch" "$threads" <<'PY'
import json, sys
l, t, th = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
print("| runtime | tokens/s | peak RSS (MiB) |")
print("| --- | --- | --- |")
print("| lorart (CPU backend, f32) | %.0f | %.0f |" % (l["tokens_per_s"], l["peak_rss_bytes"] / 2**20))
print("| PyTorch %s eager (f32, %s threads) | %.0f | %.0f |" % (t["torch"], th, t["tokens_per_s"], t["peak_rss_bytes"] / 2**20))
print()
print("tokens/s ratio lorart / PyTorch: %.2fx; peak memory ratio: %.2fx" % (
    l["tokens_per_s"] / t["tokens_per_s"], l["peak_rss_bytes"] / t["peak_rss_bytes"]))
PY
