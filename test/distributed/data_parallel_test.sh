#!/bin/sh
# Data-parallel training under mpirun (docs/distributed.md), on the demo's
# tiny model with f32 adapters and one thread per process:
#   1. SFT (packed, dropout on): 2 ranks x grad-accum 1 end with the same
#      adapter as 1 process x grad-accum 2 on the same data, bit for bit (see
#      the bound below), and report the same losses;
#   2. the same for DPO, an unpacked plan, gradient checkpointing and full
#      fine-tuning;
#   3. a checkpoint of the 2-rank run resumed by 1 process (grad-accum 2)
#      ends where the 1-process run ends;
#   4. a rank killed with SIGKILL fails the job (non-zero) and leaves the
#      last checkpoint whole (a 1-process run resumes from it);
#   5. a rank that stops (SIGSTOP) fails the job after --collective-timeout,
#      naming the rank that did not answer;
#   6. refusals: a plan compiled without --data-parallel (run and profile),
#      ranks started with different seeds;
#   7. lorart profile on 2 ranks reports the buckets and how much of their
#      all-reduce the backward hid.
# Why bit for bit: with 2 ranks the sum over ranks adds the same two f32
# gradients the single process adds (0 + g0, then + g1; addition commutes),
# the token count is an exact integer, and every other value is computed by
# the same kernels on the same micro-batches. With more ranks MPI may add in
# another order: the difference is then f32 rounding of a W-term sum,
# |d| <= (W-1) * 2^-24 * sum_i |g_i|, before the optimizer.
# Usage: data_parallel_test.sh BIN_DIR EXAMPLES_DIR WORK_DIR
# Exit 77 (skipped) without mpirun or liblorart_mpi.so.
set -eu
bin=$(cd "$1" && pwd); ex=$(cd "$2" && pwd); work="$3"
here=$(cd "$(dirname "$0")" && pwd)
. "$here/dp_setup.sh"
tag="dp$$"
mpi2() { mpirun -np 2 --bind-to none -x LORART_DP_TEST=$tag "$bin/lorart" "$@"; }
compare() { python3 "$here/compare_adapters.py" "$@"; }
losses() { python3 -c "
import json, sys
print(' '.join('%.6f' % json.loads(l)['loss'] for l in open(sys.argv[1]) if 'loss' in json.loads(l) and 'skipped' not in json.loads(l)))" "$1"; }

common="--base base --lr 3e-3 --seed 9 --threads 1 --no-progress --template simple"

echo "== 1. SFT, packed, dropout 0.1"
"$bin/lorac" compile base --dtype f32 --lora-r 8 --lora-alpha 16 --lora-dropout 0.1 \
  --micro-batch 2 --seq-len 64 --data-parallel --bucket-mb 0.05 -o sft.bin --report > sft.report
grep -q "gradient buckets" sft.report || fail "the report shows no gradient buckets"
"$bin/lorart" run sft.bin --data "$ex/sft_train.jsonl" $common --steps 6 --grad-accum 2 -o one \
  --eval "$ex/sft_val.jsonl" --eval-every 3 > one.log 2>&1 || { cat one.log; fail "1 process"; }
mpi2 run sft.bin --data "$ex/sft_train.jsonl" $common --steps 6 --grad-accum 1 -o two --save-every 3 \
  --eval "$ex/sft_val.jsonl" --eval-every 3 > two.log 2>&1 || { cat two.log; fail "2 ranks"; }
grep -q "data parallel: 2 ranks" two.log || { cat two.log; fail "no data-parallel banner"; }
grep -q "effective batch 4 rows" two.log || { cat two.log; fail "wrong effective batch"; }
[ "$(grep -c '^step ' two.log)" -gt 0 ] || fail "rank 0 printed no progress"
compare one/adapter_model.safetensors two/adapter_model.safetensors
l1=$(losses one/metrics.jsonl); l2=$(losses two/metrics.jsonl)
[ "$l1" = "$l2" ] || fail "losses differ: '$l1' vs '$l2'"
echo "losses: $l1"
# Evaluation splits the validation batches between the ranks and sums.
e1=$(grep -o '"eval_loss": [0-9.]*' one/metrics.jsonl | tr '\n' ' ')
e2=$(grep -o '"eval_loss": [0-9.]*' two/metrics.jsonl | tr '\n' ' ')
[ -n "$e1" ] || { cat one/metrics.jsonl; fail "no eval_loss in the metrics"; }
[ "$e1" = "$e2" ] || fail "eval losses differ: '$e1' vs '$e2'"
echo "eval: $e1"

# same_adapter NAME PLAN DATA STEPS: 1 process x grad-accum 2 and 2 ranks x
# grad-accum 1 end with the same adapter (or, full fine-tuning, the same
# model.safetensors, byte for byte).
same_adapter() {
  "$bin/lorart" run "$2" --data "$3" $common --steps "$4" --grad-accum 2 -o "$1_one" > "$1_one.log" 2>&1 \
    || { cat "$1_one.log"; fail "$1, 1 process"; }
  mpi2 run "$2" --data "$3" $common --steps "$4" --grad-accum 1 -o "$1_two" > "$1_two.log" 2>&1 \
    || { cat "$1_two.log"; fail "$1, 2 ranks"; }
  if [ -f "$1_one/model.safetensors" ]; then
    cmp "$1_one/model.safetensors" "$1_two/model.safetensors" || fail "$1: the models differ"
  else
    compare "$1_one/adapter_model.safetensors" "$1_two/adapter_model.safetensors"
  fi
}

echo "== 2a. DPO"
"$bin/lorac" compile base --dtype f32 --lora-r 8 --lora-alpha 16 --objective dpo \
  --micro-batch 2 --seq-len 64 --data-parallel -o dpo.bin > /dev/null
same_adapter dpo dpo.bin "$ex/dpo_train.jsonl" 4

echo "== 2b. SFT, unpacked"
"$bin/lorac" compile base --dtype f32 --lora-r 8 --lora-alpha 16 --packing=false \
  --micro-batch 2 --seq-len 64 --data-parallel -o rows.bin > /dev/null
same_adapter rows rows.bin "$ex/sft_train.jsonl" 4

echo "== 2c. gradient checkpointing; full fine-tuning"
"$bin/lorac" compile base --dtype f32 --lora-r 8 --lora-alpha 16 --remat layer \
  --micro-batch 2 --seq-len 64 --data-parallel --bucket-mb 0.05 -o remat.bin > /dev/null
same_adapter remat remat.bin "$ex/sft_train.jsonl" 3
"$bin/lorac" compile base --dtype f32 --no-lora --train full \
  --micro-batch 2 --seq-len 64 --data-parallel -o full.bin > /dev/null
same_adapter full full.bin "$ex/sft_train.jsonl" 2

echo "== 3. resume 2 ranks -> 1 process"
[ -d two/checkpoint-3 ] || fail "the 2-rank run wrote no checkpoint-3"
[ ! -e two/checkpoint-3.tmp ] || fail "a partial checkpoint is visible"
"$bin/lorart" run sft.bin --data "$ex/sft_train.jsonl" $common --steps 6 --grad-accum 2 -o resumed \
  --resume two/checkpoint-3 > resumed.log 2>&1 || { cat resumed.log; fail "resume"; }
compare one/adapter_model.safetensors resumed/adapter_model.safetensors

# The pid of rank $1 of this test's job (0 when not running yet).
rank_pid() {
  for d in /proc/[0-9]*; do
    env=$( { tr '\0' '\n' < "$d/environ"; } 2>/dev/null) || continue
    if printf '%s\n' "$env" | grep -qx "LORART_DP_TEST=$tag" &&
       printf '%s\n' "$env" | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then
      echo "${d#/proc/}"; return
    fi
  done
  echo 0
}
# Waits until $1/checkpoint-2 exists, then signals rank 1 with $2.
signal_rank1_after_checkpoint() {
  i=0
  while [ ! -d "$1/checkpoint-2" ]; do
    i=$((i + 1)); [ $i -le 1200 ] || fail "no checkpoint-2 after 120 s"
    sleep 0.1
  done
  pid=$(rank_pid 1)
  [ "$pid" != 0 ] || fail "rank 1 not found"
  kill "-$2" "$pid"
}

echo "== 4. a killed rank"
mpi2 run sft.bin --data "$ex/sft_train.jsonl" $common --steps 400 --grad-accum 1 -o killed --save-every 2 \
  > killed.log 2>&1 &
job=$!
signal_rank1_after_checkpoint killed KILL
if wait $job; then fail "the job succeeded with a killed rank"; fi
[ ! -f killed/adapter_model.safetensors ] || fail "the killed job wrote a final adapter"
last=$(ls -d killed/checkpoint-* | grep -v '\.tmp$' | sed 's/.*checkpoint-//' | sort -n | tail -1)
"$bin/lorart" run sft.bin --data "$ex/sft_train.jsonl" $common --steps $((last + 1)) --grad-accum 2 \
  -o killed_resumed --resume "killed/checkpoint-$last" > killed_resumed.log 2>&1 \
  || { cat killed_resumed.log; fail "checkpoint-$last of the killed job does not resume"; }
echo "killed job: exit non-zero, checkpoint-$last resumes"

echo "== 5. a stopped rank"
mpi2 run sft.bin --data "$ex/sft_train.jsonl" $common --steps 400 --grad-accum 1 -o stopped --save-every 2 \
  --collective-timeout 5 > stopped.log 2>&1 &
job=$!
signal_rank1_after_checkpoint stopped STOP
start=$(date +%s)
if wait $job; then fail "the job succeeded with a stopped rank"; fi
took=$(( $(date +%s) - start ))
grep -q "rank 1 did not answer" stopped.log || { cat stopped.log; fail "the error does not name rank 1"; }
grep -q "did not complete in 5 s" stopped.log || { cat stopped.log; fail "the error does not give the timeout"; }
[ $took -lt 60 ] || fail "the job took $took s to fail"
[ "$(rank_pid 1)" = 0 ] || { kill -9 "$(rank_pid 1)"; fail "the stopped rank outlived the job"; }
echo "stopped rank: failed in ${took} s: $(grep -o 'collective #[^;]*; rank 1 did not answer' stopped.log | head -1)"

echo "== 6. refusals"
"$bin/lorac" compile base --dtype f32 --lora-r 8 --lora-alpha 16 --micro-batch 2 --seq-len 64 -o plain.bin > /dev/null
if mpi2 run plain.bin --data "$ex/sft_train.jsonl" $common --steps 2 -o plain > plain.log 2>&1; then
  fail "a plan without --data-parallel ran on 2 ranks"
fi
grep -q "compile it with lorac compile --data-parallel" plain.log || { cat plain.log; fail "no reason given"; }
[ ! -e plain/adapter_model.safetensors ] || fail "the refused run wrote an adapter"
if mpirun -np 1 "$bin/lorart" run sft.bin --data "$ex/sft_train.jsonl" $common --steps 2 -o seeds : \
     -np 1 "$bin/lorart" run sft.bin --data "$ex/sft_train.jsonl" --base base --lr 3e-3 --seed 10 \
     --threads 1 --no-progress --template simple --steps 2 -o seeds > seeds.log 2>&1; then
  fail "ranks with different seeds ran"
fi
grep -q "rank 1: --seed differs from rank 0's" seeds.log || { cat seeds.log; fail "the seed difference is not named"; }
if mpi2 profile plain.bin --base base --threads 1 --iters 1 --warmup 0 > plain_profile.log 2>&1; then
  fail "a plan without --data-parallel was profiled on 2 ranks"
fi
grep -q "compile it with lorac compile --data-parallel" plain_profile.log \
  || { cat plain_profile.log; fail "profile: no reason given"; }

echo "== 7. lorart profile on 2 ranks: the all-reduce's overlap with the backward"
mpi2 profile sft.bin --base base --threads 1 --iters 3 --warmup 1 --top 0 --json profile.json \
  > profile.log 2>&1 || { cat profile.log; fail "profile on 2 ranks"; }
grep -q "of the communication overlapped the backward" profile.log || { cat profile.log; fail "no overlap line"; }
python3 -c "
import json, sys
d = json.load(open('profile.json'))['data_parallel']
assert d['ranks'] == 2 and d['buckets'] >= 2 and d['bytes_per_step'] > 0, d
assert 0 <= d['overlapped_fraction'] <= 1 and d['all_reduce_alone_ms'] > 0, d
" || fail "profile.json's data_parallel"
grep "overlapped the backward" profile.log
echo "PASS"
