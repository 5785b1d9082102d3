#!/usr/bin/env bash
# Data-parallel scaling on the CPU (issue #18, docs/distributed.md): the same
# optimizer steps (effective batch = micro-batch x grad-accum x ranks = 8 rows
# of 256 tokens) run by
#   A. 1 process x 1 thread,  grad-accum 2   (the one-core baseline)
#   B. 1 process x 2 threads, grad-accum 2   (lorart's threads)
#   C. mpirun -np 2 ranks x 1 thread, grad-accum 1 (data parallel)
# on bench/bench_config.json's shape (hidden 512, 8 layers; vocab cut to the
# demo tokenizer's 512) with LoRA r16 on every linear layer, f32 and bf16,
# SFT on examples/demo/sft_train.jsonl, packed. tokens/s is the median over
# the steps after the first two (lorart's metrics.jsonl: the ranks' tokens
# summed). Each configuration runs REPEAT times, interleaved, and the table
# gives the median.
#
#   bash bench/bench_data_parallel.sh [BUILD] [STEPS] [REPEAT]
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
steps=${2:-12}
repeat=${3:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
work="$build/bench_dp"
rm -rf "$work"; mkdir -p "$work"; cd "$work"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader OMPI_MCA_rmaps_base_oversubscribe=1
. "$root/test/integration/demo_model.sh"
demo_tokenizer "$build/bin" "$root/examples/demo"
sed 's/"vocab_size": 8000/"vocab_size": 512/' "$root/bench/bench_config.json" > config.json

# median tokens/s of a metrics.jsonl, the first two steps left out
rate() {
  python3 -c "
import json, statistics, sys
r = [json.loads(l)['tokens_per_s'] for l in open(sys.argv[1]) if 'tokens_per_s' in l]
print('%.0f' % statistics.median(r[2:]))" "$1"
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "| dtype | 1 process x 1 thread | 1 process x 2 threads | 2 ranks x 1 thread | 2 ranks / 1 x 2 threads | 2 ranks / 1 x 1 thread |"
echo "|---|---|---|---|---|---|"
for dtype in f32 bf16; do
  "$build/bin/lorart" init-model --config config.json -o "base_$dtype" --dtype "$dtype" \
    --tokenizer tokenizer.model --seed 1 > /dev/null
  "$build/bin/lorac" compile "base_$dtype" --dtype "$dtype" --lora-r 16 --lora-alpha 32 \
    --micro-batch 4 --seq-len 256 --data-parallel --bucket-mb 1 -o "dp_$dtype.bin" > /dev/null
  common="--data $root/examples/demo/sft_train.jsonl --base base_$dtype --lr 1e-4 --seed 1
    --steps $steps --no-progress --template simple"
  a=(); b=(); c=()
  for r in $(seq "$repeat"); do
    "$build/bin/lorart" run "dp_$dtype.bin" $common --threads 1 --grad-accum 2 -o "a$r" > "a$r.log" 2>&1
    a+=("$(rate "a$r/metrics.jsonl")")
    "$build/bin/lorart" run "dp_$dtype.bin" $common --threads 2 --grad-accum 2 -o "b$r" > "b$r.log" 2>&1
    b+=("$(rate "b$r/metrics.jsonl")")
    mpirun -np 2 --bind-to core "$build/bin/lorart" run "dp_$dtype.bin" $common --threads 1 \
      --grad-accum 1 -o "c$r" > "c$r.log" 2>&1
    c+=("$(rate "c$r/metrics.jsonl")")
  done
  ma=$(median "${a[@]}"); mb=$(median "${b[@]}"); mc=$(median "${c[@]}")
  echo "| $dtype | $ma | $mb | $mc | $(python3 -c "print('%.2fx' % ($mc / $mb))") | $(python3 -c "print('%.2fx' % ($mc / $ma))") |"
done
