#!/usr/bin/env bash
# The README's main job on an embedded default. Today it runs what exists of
# the pipeline: import the bundled SmolLM2-135M configuration (published
# values; no weights are downloaded) with LoRA adapters, verify the module
# with lorac-opt and print the model summary.
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

echo "== the first decoder layer's attention block"
grep -m 12 -E 'layers\.0\.(self_attn\.q_proj|input_layernorm)|lora\.(rms_norm|rope|attention) ' "$out/model.mlir" | head -12 | cut -c1-160

echo "== runtime"
"$bin/lorart" version
