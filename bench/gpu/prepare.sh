#!/usr/bin/env bash
# Prepares the GPU benchmark for a machine that has no compiler and cannot
# install packages (the device machine): compiles the QLoRA plan here,
# writes synthetic training data, and bundles `lorart` with the shared
# libraries it needs (ldd, minus the C library) into OUT. Then, on the GPU
# machine: bash bench/gpu/run.sh OUT [STEPS].
# Usage: bench/gpu/prepare.sh BUILD_DIR OUT CONFIG_JSON [MICRO_BATCH SEQ_LEN]
set -euo pipefail
build="$1"; out="$2"; config="$3"; mb="${4:-8}"; seq="${5:-1024}"
root=$(cd "$(dirname "$0")/../.." && pwd)
rm -rf "$out"; mkdir -p "$out/lib"
cp "$config" "$out/config.json"
cp "$build/bin/lorart" "$out/"
ldd "$build/bin/lorart" | awk '$3 ~ /^\// {print $3}' | while read -r lib; do
  case "$(basename "$lib")" in libc.so.*|libm.so.*|ld-linux*|libpthread*|libdl.so*|librt.so*) ;;
    *) cp -L "$lib" "$out/lib/" ;;
  esac
done
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
echo "prepared $out: $(du -sh . | cut -f1) (plan micro-batch $mb x $seq tokens)"
