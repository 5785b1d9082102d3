#!/bin/sh
# lorart profile on CUDA: every launch of a QLoRA plan's train and optimizer
# programs timed with device events (the simulated driver's: SIM_DRIVER), the
# tables printed and the JSON written with a time for every launch.
# Usage: profile_sim_test.sh BIN_DIR CONFIG WORK_DIR SIM_DRIVER
set -eu
bin="$1"; cfg="$2"; work="$3"
export LORART_CUDA_DRIVER="$4" LORART_NVRTC="$4" LORA_SIM_WORK="$work/sim"
rm -rf "$work"; mkdir -p "$work"; cd "$work"
"$bin/lorart" init-model --config "$cfg" -o model --dtype bf16 > /dev/null
"$bin/lorac" compile model --dtype bf16 --quantize-base nf4 --lora-r 8 --micro-batch 2 --seq-len 16 \
  --target cuda -o plan.bin > /dev/null
"$bin/lorart" profile plan.bin --base model --device cuda --iters 1 --warmup 1 --top 5 \
  --kernel-cache "$work/kernels" --json prof.json > prof.log 2>&1 || { cat prof.log; exit 1; }
cat prof.log
grep -q "^device: cuda: lorart CUDA simulator" prof.log
grep -q "^| fused_linear_fwd | 14 |" prof.log
grep -q "^| adamw |" prof.log
python3 - <<'PY'
import json
r = json.load(open("prof.json"))
assert r["device"].startswith("cuda: "), r["device"]
for name in ("train_step", "optimizer_step"):
    launches = r["programs"][name]["launches"]
    assert launches and all(l["ms"] > 0 for l in launches), (name, [l for l in launches if l["ms"] <= 0][:3])
    assert all(l["entry"].startswith("lora_") for l in launches), name
print("OK: every launch timed")
PY
