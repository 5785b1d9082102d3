#!/bin/sh
# Data parallelism of a CUDA plan (docs/distributed.md), on the CUDA
# simulator's driver and NVRTC (test/cuda_sim) with NCCL replaced by a fake
# over files (fake_nccl.c), on the demo's tiny model in f32:
#   1. 2 ranks x grad-accum 1 (NCCL's sums; both on the simulator's one
#      device, --device cuda:0, as NCCL allows for a smoke test) end with the same
#      adapter, bit for bit, and the same losses as 1 process x grad-accum 2;
#   2. lorart profile on 2 ranks times the launches and reports the wait for
#      NCCL's sums (on their own stream) after the backward, an NCCL sum of
#      the same bytes alone and the share overlapped;
#   3. a missing NCCL is a clear error and fails the job;
#   4. a rank whose host has no GPU of its local rank's index is told so;
#   5. a rank whose NCCL stream never finishes (the simulator's
#      LORA_SIM_STUCK_STREAMS) fails the job after --collective-timeout with
#      no adapter written, saying which NCCL sums did not complete.
# Usage: data_parallel_cuda_sim_test.sh BIN_DIR EXAMPLES_DIR WORK_DIR SIM_DRIVER FAKE_NCCL
# Exit 77 (skipped) without mpirun or liblorart_mpi.so.
set -eu
abs() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
bin=$(cd "$1" && pwd); ex=$(cd "$2" && pwd); work="$3"; sim=$(abs "$4"); fake=$(abs "$5")
here=$(cd "$(dirname "$0")" && pwd)
. "$here/dp_setup.sh"
export LORART_CUDA_DRIVER="$sim" LORART_NVRTC="$sim" LORA_SIM_WORK="$work/sim" LORART_NCCL="$fake"
export TMPDIR="$work/tmp"  # the fake NCCL's directories
mkdir -p "$TMPDIR"
losses() { python3 -c "
import json, sys
print(' '.join('%.6f' % json.loads(l)['loss'] for l in open(sys.argv[1]) if 'loss' in json.loads(l)))" "$1"; }
common="--base base --lr 3e-3 --seed 9 --threads 2 --no-progress --template simple --device cuda:0
  --kernel-cache $work/kernels --steps 2"

"$bin/lorac" compile base --dtype f32 --lora-r 8 --lora-alpha 16 --lora-dropout 0.1 --target cuda \
  --micro-batch 2 --seq-len 64 --data-parallel --bucket-mb 0.05 -o cuda.bin > /dev/null
echo "== 1. 2 ranks (NCCL) vs 1 process, --device cuda"
"$bin/lorart" run cuda.bin --data "$ex/sft_train.jsonl" $common --grad-accum 2 -o one > one.log 2>&1 \
  || { cat one.log; fail "1 process"; }
mpirun -np 2 --bind-to none -x LORART_CUDA_DRIVER -x LORART_NVRTC -x LORA_SIM_WORK -x LORART_NCCL \
  "$bin/lorart" run cuda.bin --data "$ex/sft_train.jsonl" $common --grad-accum 1 -o two > two.log 2>&1 \
  || { cat two.log; fail "2 ranks"; }
grep -q "data parallel: 2 ranks" two.log || { cat two.log; fail "no data-parallel banner"; }
python3 "$here/compare_adapters.py" one/adapter_model.safetensors two/adapter_model.safetensors
l1=$(losses one/metrics.jsonl); l2=$(losses two/metrics.jsonl)
[ "$l1" = "$l2" ] || fail "losses differ: '$l1' vs '$l2'"
echo "losses: $l1"

echo "== 2. lorart profile on 2 ranks"
mpirun -np 2 --bind-to none -x LORART_CUDA_DRIVER -x LORART_NVRTC -x LORA_SIM_WORK -x LORART_NCCL \
  "$bin/lorart" profile cuda.bin --base base --device cuda:0 --kernel-cache "$work/kernels" \
  --iters 1 --warmup 0 --top 3 > profile.log 2>&1 || { cat profile.log; fail "profile"; }
grep -q "over NCCL; .* gradient buckets, .* on NCCL's own stream beside the backward; the last rank to finish its backward waited .*, an all-reduce of the same bytes alone takes [0-9.]* ms: [0-9]*% of the communication overlapped the backward" \
  profile.log || { cat profile.log; fail "no NCCL line"; }
grep -q "| grad_all_reduce_start |" profile.log || { cat profile.log; fail "no bucket launches timed"; }

echo "== 3. no NCCL"
if LORART_NCCL="$work/no-such-libnccl.so" mpirun -np 2 --bind-to none -x LORART_CUDA_DRIVER \
     -x LORART_NVRTC -x LORA_SIM_WORK -x LORART_NCCL "$bin/lorart" run cuda.bin \
     --data "$ex/sft_train.jsonl" $common -o none > none.log 2>&1; then
  fail "ran without NCCL"
fi
grep -q "NCCL could not be loaded" none.log || { cat none.log; fail "the error does not say NCCL"; }

echo "== 4. more ranks than GPUs"
if mpirun -np 2 --bind-to none -x LORART_CUDA_DRIVER -x LORART_NVRTC -x LORA_SIM_WORK -x LORART_NCCL \
     "$bin/lorart" run cuda.bin --data "$ex/sft_train.jsonl" --base base --device cuda --steps 1 \
     --no-progress --template simple -o gpus > gpus.log 2>&1; then
  fail "rank 1 ran on the simulator's only GPU without --device cuda:0"
fi
grep -q "rank 1 takes GPU 1, its index among the ranks of its host" gpus.log \
  || { cat gpus.log; fail "the error does not explain the GPU choice"; }

echo "== 5. NCCL's stream of rank 1 never finishes"
env="-x LORART_CUDA_DRIVER -x LORART_NVRTC -x LORA_SIM_WORK -x LORART_NCCL"
args="run cuda.bin --data $ex/sft_train.jsonl $common --grad-accum 1 -o stuck --collective-timeout 3"
start=$(date +%s)
# shellcheck disable=SC2086 # word splitting of $env and $args is intended
if mpirun --bind-to none -np 1 $env "$bin/lorart" $args : \
     -np 1 $env -x LORA_SIM_STUCK_STREAMS=1 "$bin/lorart" $args > stuck.log 2>&1; then
  fail "the job succeeded with a stuck NCCL stream"
fi
took=$(( $(date +%s) - start ))
grep -q "rank 1 of 2: collective #[0-9]* (the NCCL sums [^)]*) did not complete in 3 s" stuck.log \
  || { cat stuck.log; fail "rank 1 does not say its NCCL sums did not complete"; }
[ ! -f stuck/adapter_model.safetensors ] || fail "the stuck job wrote an adapter"
[ "$took" -lt 60 ] || fail "the stuck job took $took s to fail"
echo "stuck NCCL stream: failed in $took s"
echo "PASS"
