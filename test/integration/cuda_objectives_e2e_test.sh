#!/bin/sh
# Issue 6's objectives on the CUDA executor: the same short runs with
# `lorart run --device cuda` and `--device cpu` give the same losses, and one
# step from the same state (step 1; the last step on CUDA resumed from the
# CPU's checkpoint) the same metrics, within bf16 tolerance —
#  * DPO (sigmoid) on an NF4 base with replayed general text (sequence
#    log-probabilities, the DPO loss and its metrics, the replay rows'
#    unfused cross-entropy and its weighting, the reference pass);
#  * continued pretraining with the EWC penalty (lorart fisher's Fisher on
#    the device).
# MODE sim: the CPU simulator's driver and NVRTC (every CI run); MODE gpu:
# the real driver, exit 77 (skipped) without a GPU.
# Usage: cuda_objectives_e2e_test.sh MODE BIN_DIR EXAMPLES_DIR WORK_DIR [SIM_DRIVER]
set -eu
mode="$1"; bin="$2"; ex="$3"; work="$4"
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"; mkdir -p "$work"
cd "$work"
. "$here/cuda_test_mode.sh"
cuda_test_mode "$mode" "$bin" "$work" 2 10 "${5:-}"

. "$here/demo_model.sh"
demo_bf16_base "$bin" "$ex"
head -16 "$ex/dpo_train.jsonl" > pairs.jsonl
head -16 "$ex/pretrain.jsonl" > general.jsonl
sed -n 17,40p "$ex/pretrain.jsonl" > train.jsonl
set -- --dtype bf16 --quantize-base nf4 --lora-r 8 --lora-alpha 16 --lora-dropout 0.1 --target cuda \
  --seq-len 32
# Four rows: three preference pairs' rows and one of replayed text.
"$bin/lorac" compile base "$@" --micro-batch 4 --objective dpo --dpo-beta 0.5 \
  --dpo-replay-weight 0.5 -o dpo.bin > /dev/null
"$bin/lorac" compile base "$@" --micro-batch 2 --objective pretrain --ewc-lambda 3000 -o ewc.bin > /dev/null
# The Fisher of the general text (a full fine-tuning plan, on the CPU).
"$bin/lorac" compile base --dtype f32 --no-lora --train full --objective pretrain --micro-batch 1 \
  --seq-len 32 -o fisher.bin > /dev/null
cuda_plans_compiled
"$bin/lorart" fisher fisher.bin --data general.jsonl --base base -o fisher.safetensors > /dev/null

run() {  # run PLAN DEVICE OUT [ARGS...]
  plan="$1"; dev="$2"; out="$3"; shift 3
  "$bin/lorart" run "$plan" --base base --steps $steps --lr 1e-2 --seed 9 --threads 2 \
    --template simple --no-progress --device "$dev" --kernel-cache "$work/kernels" -o "$out" "$@" \
    > "$out.log" 2>&1 || { cat "$out.log"; return 1; }
}
half=$((steps - 1))
run dpo.bin cuda dpo_cuda --data pairs.jsonl --replay general.jsonl --replay-ratio 0.25
grep "^device: cuda: " dpo_cuda.log
run dpo.bin cpu dpo_cpu --data pairs.jsonl --replay general.jsonl --replay-ratio 0.25 --save-every $half
# The last step on CUDA from the CPU's checkpoint: one step from the same state.
run dpo.bin cuda dpo_resumed --data pairs.jsonl --replay general.jsonl --replay-ratio 0.25 \
  --resume dpo_cpu/checkpoint-$half
run ewc.bin cuda ewc_cuda --data train.jsonl --ewc-fisher fisher.safetensors
grep "^device: cuda: " ewc_cuda.log
run ewc.bin cpu ewc_cpu --data train.jsonl --ewc-fisher fisher.safetensors --save-every $half
run ewc.bin cuda ewc_resumed --data train.jsonl --ewc-fisher fisher.safetensors \
  --resume ewc_cpu/checkpoint-$half

python3 - "$here" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
from cuda_compare import Checks, metrics

c = Checks()
def compare(name, keys, step_tol, loss_tol):
    cuda, cpu, resumed = metrics(name + "_cuda"), metrics(name + "_cpu"), metrics(name + "_resumed")
    assert len(cuda) == len(cpu) > 1, (name, len(cuda), len(cpu))
    # One step from the same state — step 1, and the last step resumed on
    # CUDA from the CPU's checkpoint — every metric within one step's bf16
    # rounding: a few parts in 1e3 of the value (or of the loss, for the
    # rewards and the penalty, which start near zero).
    for label, a, b in (("step 1", cuda[0], cpu[0]), ("resumed last step", resumed[-1], cpu[-1])):
        for k in keys:
            assert k in a and k in b, (name, k, sorted(b))
            c.close("%s %s %s" % (name, label, k), a[k], b[k], step_tol,
                    max(abs(b[k]), abs(b["loss"])))
    # The straight runs side by side: the same training, drifting apart
    # (cuda_compare.py). DPO at lr 1e-2 spikes at step 6; measured on an H200
    # the losses stay within 8.8e-3 of each other over 10 steps while the
    # gradient norm at the spike differs by 11%. Only the loss is held here.
    for i, (a, b) in enumerate(zip(cuda, cpu), 1):
        c.close("%s straight step %d loss" % (name, i), a["loss"], b["loss"], loss_tol)
compare("dpo", ["loss", "grad_norm", "replay_loss", "rewards/chosen", "rewards/rejected",
               "rewards/margin"], 1e-2, 2e-2)
# EWC: step 1 starts from lora_B = 0 (no penalty, no EWC gradient); the
# resumed step carries both.
compare("ewc", ["loss", "grad_norm", "ewc_penalty"], 5e-3, 1e-2)
c.finish()
EOF
