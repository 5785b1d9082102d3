#!/bin/sh
# A training run killed by a real signal and resumed from its last checkpoint
# ends with exactly the adapter bytes of an uninterrupted run (dropout on, so
# the resumed run must also reproduce the random masks), and no partial
# checkpoint is ever visible.
# Usage: resume_test.sh BIN_DIR EXAMPLES_DIR WORK_DIR
set -eu
bin="$1"; ex="$2"; work="$3"
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"; mkdir -p "$work"
cd "$work"
. "$here/demo_model.sh"
demo_tokenizer "$bin" "$ex"
"$bin/lorart" init-model --config "$ex/config.json" -o base --dtype f32 --tokenizer tokenizer.model --seed 3 > /dev/null
"$bin/lorac" compile base --dtype f32 --lora-r 8 --lora-alpha 16 --lora-dropout 0.1 \
  --micro-batch 4 --seq-len 64 -o plan.bin
set -- run plan.bin --data "$ex/sft_train.jsonl" --base base --steps 40 --save-every 5 \
  --lr 3e-3 --seed 9 --threads 2 --template simple --no-progress
"$bin/lorart" "$@" -o straight > straight.log 2>&1

# The same run, killed with SIGKILL once its second checkpoint exists. (The
# lorart process itself is started in the background, so that $! is its pid
# and the signal kills it, not a wrapping shell.)
"$bin/lorart" "$@" -o killed > killed.log 2>&1 &
pid=$!
i=0
while [ ! -d killed/checkpoint-10 ]; do
  i=$((i + 1))
  if [ $i -gt 600 ]; then echo "FAIL: no checkpoint after 60 s"; kill -9 $pid; exit 1; fi
  if ! kill -0 $pid 2>/dev/null; then echo "FAIL: the run ended before it was killed"; exit 1; fi
  sleep 0.1
done
kill -9 $pid
wait $pid 2>/dev/null || true
if [ -f killed/adapter_model.safetensors ]; then
  echo "FAIL: the run finished before the kill; nothing was tested"; exit 1
fi
last=$(ls -d killed/checkpoint-* | grep -v '\.tmp$' | sed 's/.*checkpoint-//' | sort -n | tail -1)
echo "killed after checkpoint-$last; resuming"
for f in trainer.json state.safetensors adapter_model.safetensors adapter_config.json; do
  [ -s "killed/checkpoint-$last/$f" ] || { echo "FAIL: checkpoint-$last lacks $f"; exit 1; }
done
if kill -0 $pid 2>/dev/null; then echo "FAIL: the killed run is still alive"; exit 1; fi
"$bin/lorart" "$@" -o killed --resume "killed/checkpoint-$last" > resumed.log 2>&1 || {
  cat resumed.log; exit 1; }
grep -q "resumed from" resumed.log
if cmp straight/adapter_model.safetensors killed/adapter_model.safetensors; then
  echo "PASS: the resumed run's adapter is bitwise identical"
else
  echo "FAIL: the adapters differ"; exit 1
fi
