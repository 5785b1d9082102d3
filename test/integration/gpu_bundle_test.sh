#!/bin/sh
# bench/gpu's lorac record/replay (the GPU machine has no lorac): a plan
# compiled through lorac-record.sh in one directory is handed back by
# lorac-replay.sh for the same arguments run from another directory (paths
# cut to their last component), byte for byte; other arguments fail naming
# them.
# Usage: gpu_bundle_test.sh BIN_DIR CONFIG WORK_DIR
set -eu
bin="$1"; cfg="$2"; work="$3"
root=$(cd "$(dirname "$0")/../.." && pwd)
rm -rf "$work"; mkdir -p "$work/a/rec" "$work/b/check/plans"
cp "$root/bench/gpu/lorac-record.sh" "$work/a/rec/lorac"
cp "$root/bench/gpu/lorac-replay.sh" "$work/b/check/lorac"
cp "$cfg" "$work/a/config.json"; cp "$cfg" "$work/b/config.json"
cd "$work/a"
LORAC_REAL="$bin/lorac" LORAC_STORE="$work/b/check/plans" \
  rec/lorac compile "$work/a/config.json" --lora-r 4 --micro-batch 1 --seq-len 16 -o "$work/a/plan.bin" > /dev/null
cd "$work/b"
check/lorac compile "$work/b/config.json" --lora-r 4 --micro-batch 1 --seq-len 16 -o "$work/b/plan.bin"
cmp "$work/a/plan.bin" "$work/b/plan.bin"
if check/lorac compile config.json --lora-r 8 --micro-batch 1 --seq-len 16 -o other.bin 2> err.txt; then
  echo "FAIL: replayed a plan never recorded"; exit 1
fi
grep -q "no plan was recorded for: lorac compile config.json --lora-r 8" err.txt || { cat err.txt; exit 1; }
echo PASS
