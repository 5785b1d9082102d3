#!/bin/sh
# Plans outside the tensor-core templates run on CUDA end to end: the
# CUDA-core kernels (passes/lib/CudaSimt.cpp) for f32 QLoRA with dropout
# (every GEMM, attention and the LM-head loss), f16 LoRA on packed
# documents (segment ids), and bf16 LoRA at rank 128 (the GEMMs on CUDA
# cores next to the tensor-core attention). Each fine-tune runs with
# `lorart run --device cuda` and `--device cpu`; loss and gradient norm
# agree per step (f32: within 1e-4, f16/bf16: 5e-3).
# MODE sim / gpu as in cuda_test_mode.sh.
# Usage: cuda_dtypes_e2e_test.sh MODE BIN_DIR EXAMPLES_DIR WORK_DIR [SIM_DRIVER]
set -eu
mode="$1"; bin="$2"; ex="$3"; work="$4"
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"; mkdir -p "$work"
cd "$work"
. "$here/cuda_test_mode.sh"
cuda_test_mode "$mode" "$bin" "$work" 2 10 "${5:-}"

. "$here/demo_model.sh"
demo_bf16_base "$bin" "$ex"
head -40 "$ex/sft_train.jsonl" > train.jsonl
common="--target cuda --micro-batch 2 --seq-len 64"
"$bin/lorac" compile base --dtype f32 --quantize-base nf4 --lora-r 8 --lora-alpha 16 \
  --lora-dropout 0.1 $common -o f32_nf4.bin > /dev/null
"$bin/lorac" compile base --dtype f16 --lora-r 8 --lora-alpha 16 --packing $common \
  -o f16_packed.bin > /dev/null
"$bin/lorac" compile base --dtype bf16 --lora-r 128 --lora-alpha 256 $common \
  -o bf16_r128.bin > /dev/null
cuda_plans_compiled

run() {  # run PLAN DEVICE
  "$bin/lorart" run "$1.bin" --data train.jsonl --base base --steps $steps --lr 3e-3 --seed 9 \
    --threads 2 --template simple --no-progress --device "$2" --kernel-cache "$work/kernels" \
    -o "$1_$2" > "$1_$2.log" 2>&1 || { cat "$1_$2.log"; return 1; }
}
for p in f32_nf4 f16_packed bf16_r128; do
  run $p cuda
  grep -q "^device: cuda: " ${p}_cuda.log
  run $p cpu
done

python3 - <<'PY'
import json, sys

def metrics(d):
    return [json.loads(l) for l in open(d + "/metrics.jsonl") if '"loss"' in l]

fail = []
for plan, tol in (("f32_nf4", 1e-4), ("f16_packed", 5e-3), ("bf16_r128", 5e-3)):
    cuda, cpu = metrics(plan + "_cuda"), metrics(plan + "_cpu")
    assert len(cuda) == len(cpu) > 0, plan
    for i, (a, b) in enumerate(zip(cuda, cpu), 1):
        print("%s step %d: loss cuda %.6f, cpu %.6f; grad_norm cuda %.6f, cpu %.6f"
              % (plan, i, a["loss"], b["loss"], a["grad_norm"], b["grad_norm"]))
        for key in ("loss", "grad_norm"):
            if abs(a[key] - b[key]) > tol * abs(b[key]):
                fail.append("%s step %d %s differs" % (plan, i, key))
if fail:
    print("FAIL: " + "; ".join(fail))
    sys.exit(1)
print("OK")
PY
