#!/bin/sh
# Every CUDA kernel of the tiny test plans (bf16, f16 and f32, LoRA on a
# bf16 and on an NF4 base, full fine-tuning) runs on the CPU simulator and matches the
# CPU backend on fresh random inputs.
# A tiny Qwen2 (attention biases, tied embeddings) adds bias_bwd and the
# biased GEMMs in LoRA and full fine-tuning.
# The kernels run through the runtime's CUDA layer: with SIM_DRIVER on the
# simulator's driver and NVRTC (every CI run), without it on the GPU (ctest's
# cuda_backend_ops_gpu; exit 77, skipped, where there is none).
# Usage: sim_plan_test.sh BIN_DIR SIM_TEST_BINARY CONFIG WORK_DIR QWEN2_CONFIG [SIM_DRIVER]
set -eu
bin="$1"; sim="$2"; cfg="$3"; work="$4"; qwen="$5"
if [ $# -ge 6 ]; then
  export LORART_CUDA_DRIVER="$6" LORART_NVRTC="$6"
elif [ -z "${LORA_COMPILE_ONLY:-}" ] && "$bin/lorart" version | grep -q "^cuda: unavailable"; then
  echo "SKIP: no CUDA device"; exit 77
fi
rm -rf "$work"; mkdir -p "$work"
compile() {
  name="$1"; shift
  "$bin/lorac" compile "$cfg" --micro-batch 2 --seq-len 16 --target cuda "$@" -o "$work/$name.bin"
}
compile_qwen() {
  name="$1"; shift
  "$bin/lorac" compile "$qwen" --micro-batch 2 --seq-len 16 --target cuda "$@" -o "$work/$name.bin"
}
compile bf16_lora --dtype bf16 --lora-r 8 --lora-alpha 16
compile bf16_nf4 --dtype bf16 --quantize-base nf4 --lora-r 8 --lora-alpha 16 --lora-dropout 0.1
compile f32_lora --dtype f32 --lora-r 4 --lora-alpha 8 --max-grad-norm 0
compile f32_full --dtype f32 --no-lora --train full
# The CUDA-core templates (codegen/cuda) beside f32_lora and f32_full: f16
# LoRA on packed documents (segment ids), and a bf16 rank above the
# tensor-core templates' 64.
compile f16_packed --dtype f16 --lora-r 8 --lora-alpha 16 --packing
compile bf16_r128 --dtype bf16 --lora-r 128 --lora-alpha 256
compile bf16_full --dtype bf16 --no-lora --train full
compile_qwen qwen_lora --dtype bf16 --lora-r 8 --lora-alpha 16
compile_qwen qwen_full --dtype bf16 --no-lora --train full
# A tiny Qwen3 (beside the Llama config): the per-head q/k RMSNorm (rows =
# tokens x heads, hidden = head_dim 16) forward and backward, with the
# scales trained (full fine-tuning), and head_dim x heads != hidden.
qwen3="$(dirname "$cfg")/../tiny-qwen3/config.json"
"$bin/lorac" compile "$qwen3" --micro-batch 2 --seq-len 16 --target cuda --dtype bf16 --no-lora \
  --train full -o "$work/qwen3_full.bin"
# Issue 6's objectives: DPO (sigmoid, with replay: the unfused cross-entropy
# of the replay rows), IPO, and SFT with the EWC penalty.
compile dpo_replay --dtype bf16 --quantize-base nf4 --lora-r 8 --objective dpo --dpo-replay-weight 0.5
compile ipo --dtype bf16 --lora-r 8 --objective dpo --dpo-loss ipo --dpo-beta 0.3
compile ewc --dtype bf16 --quantize-base nf4 --lora-r 8 --ewc-lambda 0.7
# Full fine-tuning on 120 rows (3 x 40): the RMSNorm backward's weight
# gradient over several 32-row chunks (the last one short), and the global
# norm's partial sums over several blocks; only those kinds are compared.
"$bin/lorac" compile "$cfg" --micro-batch 3 --seq-len 40 --target cuda --dtype bf16 --no-lora \
  --train full -o "$work/wide_norms.bin"
# LORA_COMPILE_ONLY=1: stop here (bench/gpu/prepare.sh records the plans
# for a GPU machine without lorac).
if [ -n "${LORA_COMPILE_ONLY:-}" ]; then echo "plans compiled"; exit 0; fi
for p in bf16_lora bf16_nf4 f32_lora f32_full f16_packed bf16_r128 bf16_full qwen_lora qwen_full qwen3_full dpo_replay ipo ewc; do
  echo "== $p"
  # Every kernel of every plan (bf16, f16 and f32; LoRA, QLoRA, full
  # fine-tuning, DPO, EWC) has CUDA source.
  LORA_SIM_PLAN="$work/$p.bin" LORA_SIM_WORK="$work/sim" LORA_SIM_REQUIRE_ALL=1 \
    "$sim" --gtest_filter='SimPlan.*' --gtest_brief=1
done
echo "== wide_norms"
LORA_SIM_PLAN="$work/wide_norms.bin" LORA_SIM_WORK="$work/sim" LORA_SIM_KINDS=rms_norm_bwd,global_norm \
  "$sim" --gtest_filter='SimPlan.*' --gtest_brief=1
