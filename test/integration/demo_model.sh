# Shared by the end-to-end test scripts (sourced, in the work directory):
# the demo's tokenizer and its briefly pretrained model, as `make demo` makes
# them (scripts/demo.sh stages 1-3).

# demo_tokenizer BIN EXAMPLES: ./tokenizer.model (SentencePiece, 512 pieces)
# trained on the shipped corpus and the task's text.
demo_tokenizer() {
  python3 -c "
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)['messages']
    print(m[0]['content'], m[1]['content'])" "$2/sft_train.jsonl" > task.txt
  "$1/lorart" train-tokenizer "$2/corpus.txt" task.txt -o tokenizer.model --vocab-size 512 > /dev/null
}

# demo_bf16_base BIN EXAMPLES: the tokenizer and ./base, the demo config
# with random bf16 weights (seed 3).
demo_bf16_base() {
  demo_tokenizer "$1" "$2"
  "$1/lorart" init-model --config "$2/config.json" -o base --dtype bf16 --tokenizer tokenizer.model \
    --seed 3 > /dev/null
}

# demo_pretrained BIN EXAMPLES: the tokenizer, ./base (the demo config, f32,
# seed 1) and ./pretrained (300 steps of full fine-tuning on the corpus).
demo_pretrained() {
  demo_tokenizer "$1" "$2"
  "$1/lorart" init-model --config "$2/config.json" -o base --dtype f32 --tokenizer tokenizer.model \
    --seed 1 > /dev/null
  "$1/lorac" compile base --dtype f32 --no-lora --train full --objective pretrain --micro-batch 4 \
    --seq-len 64 -o pretrain.bin > /dev/null
  "$1/lorart" run pretrain.bin --data "$2/pretrain.jsonl" --base base -o pretrained --steps 300 \
    --lr 3e-3 --warmup-steps 10 --no-progress --seed 1 --threads 2 > /dev/null 2>&1
}
