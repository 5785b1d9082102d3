#!/usr/bin/env bash
# The README's main job on an embedded default. Today it runs what exists of
# the pipeline: import the bundled SmolLM2-135M configuration (published
# values; no weights are downloaded) with LoRA adapters, verify the module
# with lorac-opt, compile the QLoRA training plan with its report and show
# the plan as the runtime loads it. (The CPU trainer that runs the plan is
# being built: issue #4.)
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$build/bin"
out="$build/demo"
mkdir -p "$out"

echo "== lorac import examples/smollm2-135m (LoRA r=16, alpha=32, all-linear)"
"$bin/lorac" import "$root/examples/smollm2-135m/config.json" \
  --lora-r 16 --lora-alpha 32 --lora-targets all-linear \
  -o "$out/model.mlir"
echo "   wrote $out/model.mlir ($(wc -l < "$out/model.mlir") lines)"

echo "== lorac-opt (verify and round-trip)"
"$bin/lorac-opt" "$out/model.mlir" -o "$out/model.roundtrip.mlir"
echo "   ok"

echo "== lorac summary"
"$bin/lorac" summary "$out/model.mlir"

echo "== lorac compile (QLoRA: NF4 base, packing, per-layer checkpointing)"
"$bin/lorac" compile "$out/model.mlir" -o "$out/train.bin" --quantize-base nf4 \
  --micro-batch 4 --seq-len 512 --remat layer --report

echo "== lorart inspect train.bin"
"$bin/lorart" inspect "$out/train.bin" > "$out/inspect.txt"
sed -n 1,30p "$out/inspect.txt"

echo "== runtime"
"$bin/lorart" version
