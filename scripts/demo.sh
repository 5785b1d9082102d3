#!/usr/bin/env bash
# The README's main job on an embedded default: a complete small fine-tune
# with nothing downloaded.
#   1. train a SentencePiece tokenizer on the shipped public-domain corpus
#      (examples/demo/corpus.txt) and the task's text;
#   2. create a tiny Llama-architecture model (examples/demo/config.json);
#   3. pretrain it briefly on the corpus (full fine-tuning plan);
#   4. compile a LoRA plan for it and fine-tune (SFT) on the shipped
#      synthetic instruction task (examples/demo/sft_train.jsonl);
#   5. print the validation loss and a few held-out answers before and after.
# Also shows the compile report of a real model's QLoRA plan (SmolLM2-135M's
# published config; no weights needed to plan).
set -euo pipefail
build=${1:-build}
out=${2:-$build/demo}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$build/bin"
ex="$root/examples/demo"
rm -rf "$out"
mkdir -p "$out"
start=$(date +%s)

echo "== 1. tokenizer (SentencePiece, 512 pieces)"
python3 -c "
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)['messages']
    print(m[0]['content'], m[1]['content'])" "$ex/sft_train.jsonl" > "$out/task.txt"
"$bin/lorart" train-tokenizer "$ex/corpus.txt" "$out/task.txt" -o "$out/tokenizer.model" --vocab-size 512

echo "== 2. a tiny Llama model (4 layers, hidden 128, GQA 4/2, vocab 512)"
"$bin/lorart" init-model --config "$ex/config.json" -o "$out/base" --dtype f32 \
  --tokenizer "$out/tokenizer.model" --seed 1

echo "== 3. pretraining on the corpus (full fine-tuning plan)"
"$bin/lorac" compile "$out/base" --dtype f32 --no-lora --train full --objective pretrain \
  --micro-batch 4 --seq-len 64 -o "$out/pretrain.bin"
"$bin/lorart" run "$out/pretrain.bin" --data "$ex/pretrain.jsonl" --base "$out/base" \
  -o "$out/pretrained" --steps 300 --lr 3e-3 --warmup-steps 10 --no-progress --seed 1 \
  | tail -2

echo "== 4. LoRA fine-tuning (SFT) on the synthetic task"
"$bin/lorac" compile "$out/pretrained" --dtype f32 --lora-r 16 --lora-alpha 32 --lora-dropout 0.05 \
  --micro-batch 8 --seq-len 64 -o "$out/sft.bin" --report | sed -n '1p;5p;/^memory/,/total/p'
echo "-- before fine-tuning (base model):"
"$bin/lorart" eval "$out/sft.bin" --data "$ex/sft_val.jsonl" --base "$out/pretrained" --template simple
"$bin/lorart" generate "$out/sft.bin" --base "$out/pretrained" --prompts "$ex/sft_val.jsonl" \
  --limit 3 --max-new-tokens 6 --template simple
"$bin/lorart" run "$out/sft.bin" --data "$ex/sft_train.jsonl" --eval "$ex/sft_val.jsonl" \
  --base "$out/pretrained" -o "$out/adapter" --steps 800 --lr 2e-3 \
  --warmup-steps 20 --eval-every 200 --template simple --seed 1 --no-progress \
  | grep -E "eval loss|^trained"
echo "-- after fine-tuning (base + adapter):"
"$bin/lorart" eval "$out/sft.bin" --data "$ex/sft_val.jsonl" --base "$out/pretrained" \
  --adapter "$out/adapter" --template simple
"$bin/lorart" generate "$out/sft.bin" --base "$out/pretrained" --adapter "$out/adapter" \
  --prompts "$ex/sft_val.jsonl" --limit 3 --max-new-tokens 6 --template simple
echo "   adapter (PEFT layout): $out/adapter/adapter_model.safetensors, adapter_config.json;"
echo "   metrics: $out/adapter/metrics.jsonl, loss curve: $out/adapter/loss.svg"

echo "== planning a real model: SmolLM2-135M with QLoRA (config only)"
"$bin/lorac" compile "$root/examples/smollm2-135m/config.json" --quantize-base nf4 \
  --micro-batch 4 --seq-len 512 --remat layer --report | sed -n '/^memory/,$p'
echo "== done in $(( $(date +%s) - start )) s"
