#!/usr/bin/env bash
# Prepares the GPU benchmark for a machine that has no compiler and cannot
# install packages (the device machine): compiles the QLoRA plan here,
# writes synthetic training data, and bundles `lorart` with the shared
# libraries it needs (ldd, minus the C library) into OUT, with the GPU
# checks' plans and test binary in OUT/check, and packs it all into
# OUT.tar.xz. Then, on the GPU machine: bash bench/gpu/check.sh OUT (the
# gpu-labelled tests) and bash bench/gpu/run.sh OUT [STEPS] (the
# benchmarks); either takes OUT.tar.xz as well.
# Usage: bench/gpu/prepare.sh BUILD_DIR OUT CONFIG_JSON [MICRO_BATCH SEQ_LEN]
set -euo pipefail
build="$1"; out="$2"; config="$3"; mb="${4:-8}"; seq="${5:-1024}"
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$build" && pwd)
rm -rf "$out" "$out.tar.xz"; mkdir -p "$out/lib"; out=$(cd "$out" && pwd)
cp "$config" "$out/config.json"
# bundle_libs BINARY: the shared libraries it needs into $out/lib (ldd,
# minus the C library's, which the GPU machine has).
bundle_libs() {
  ldd "$1" | awk '$3 ~ /^\// {print $3}' | while read -r lib; do
    case "$(basename "$lib")" in libc.so.*|libm.so.*|ld-linux*|libpthread*|libdl.so*|librt.so*) ;;
      *) [ -e "$out/lib/$(basename "$lib")" ] || cp -L "$lib" "$out/lib/" ;;
    esac
  done
}
cp "$build/bin/lorart" "$out/"
bundle_libs "$build/bin/lorart"
# The plan: QLoRA (NF4 base, bf16 compute), LoRA r=16 on every linear layer,
# CUDA kernels generated into it; its report (FLOPs per step for MFU).
"$build/bin/lorac" compile "$config" --target cuda --dtype bf16 --quantize-base nf4 --lora-r 16 \
  --lora-alpha 32 --lora-dropout 0 --micro-batch "$mb" --seq-len "$seq" -o "$out/plan.bin" \
  --report-json "$out/report.json" > /dev/null
# The kernel benchmarks: one Llama-2-7B layer (the issue's GEMM shapes, its
# attention) as QLoRA plans of M = 4096 and 16384 tokens (1 and 4 rows of
# 4096); `lorart profile` times their launches on the GPU.
mkdir -p "$out/7b"
python3 - "$root/test/lit/Inputs/configs/llama-2-7b/config.json" "$out/7b/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["num_hidden_layers"] = 1
json.dump(c, open(sys.argv[2], "w"), indent=1)
PY
for rows in 1 4; do
  "$build/bin/lorac" compile "$out/7b/config.json" --target cuda --dtype bf16 --quantize-base nf4 \
    --lora-r 16 --lora-alpha 32 --lora-dropout 0 --micro-batch $rows --seq-len 4096 \
    -o "$out/7b/m$((rows * 4096)).bin" > /dev/null
done
# A tokenizer (the demo's) and synthetic pretraining-style text long enough
# to fill rows of SEQ_LEN tokens.
python3 - "$root/examples/demo/corpus.txt" "$out/train.jsonl" "$seq" <<'PY'
import json, sys
words = open(sys.argv[1]).read().split()
n = int(sys.argv[3])
with open(sys.argv[2], "w") as f:
    for i in range(512):
        start = (i * 997) % max(1, len(words) - n)
        f.write(json.dumps({"text": " ".join(words[start:start + n])}) + "\n")
PY
cd "$out"
# (in lines of 64 words: SentencePiece skips sentences over 4192 bytes)
python3 -c "
import json
for line in open('train.jsonl'):
    w = json.loads(line)['text'].split()
    for i in range(0, len(w), 64):
        print(' '.join(w[i:i + 64]))" > corpus.txt
LD_LIBRARY_PATH="$out/lib" ./lorart train-tokenizer corpus.txt -o tokenizer.model --vocab-size 512 > /dev/null
rm corpus.txt

# The GPU checks (bench/gpu/check.sh): the scripts of the gpu-labelled tests
# — the backend-ops harness (every kernel of the test plans against the CPU
# backend) and the GPU-vs-CPU fine-tunes — run on the GPU machine from the
# repository with check/ as their BIN_DIR. It has no lorac (no MLIR there),
# so each script runs here first with LORA_COMPILE_ONLY=1 through
# lorac-record.sh, and check/lorac (lorac-replay.sh) hands the plans back.
chk="$out/check"; rec="$out/.record"
mkdir -p "$chk/plans" "$rec"
cp "$build/bin/lorart" "$chk/lorart"
cp "$root/bench/gpu/lorac-replay.sh" "$chk/lorac"
cp "$build/test/cuda_sim/lorart_cuda_sim_tests" "$chk/"
bundle_libs "$chk/lorart_cuda_sim_tests"
ln -s "$build/bin/lorart" "$rec/lorart"
cp "$root/bench/gpu/lorac-record.sh" "$rec/lorac"
(
  export LORAC_REAL="$build/bin/lorac" LORAC_STORE="$chk/plans" LORA_COMPILE_ONLY=1
  cfgs="$root/test/lit/Inputs/configs"
  sh "$root/test/cuda_sim/sim_plan_test.sh" "$rec" "$chk/lorart_cuda_sim_tests" \
    "$cfgs/tiny-llama/config.json" "$rec/harness" "$cfgs/tiny-qwen2/config.json" > /dev/null
  for t in cuda_e2e cuda_objectives_e2e cuda_dtypes_e2e; do
    sh "$root/test/integration/${t}_test.sh" gpu "$rec" "$root/examples/demo" "$rec/$t" > /dev/null
  done
)
rm -rf "$rec"
echo "prepared $out: $(du -sh . | cut -f1) (plan micro-batch $mb x $seq tokens; $(ls "$chk/plans" | wc -l) plans for the GPU checks)"
# One compressed file to carry to the GPU machine (run.sh and check.sh unpack it).
tar -C "$(dirname "$out")" -cJf "$out.tar.xz" "$(basename "$out")"
echo "packed $out.tar.xz: $(du -sh "$out.tar.xz" | cut -f1)"
