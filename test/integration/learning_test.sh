#!/bin/sh
# End to end: the README's demo (tokenizer, tiny model, pretraining, LoRA SFT)
# must teach the model the held-out synthetic task. Task: "Which word comes
# first: <w1> <w2> <w3>?" -> "<w1>" over 26 words, 200 validation triples
# never seen in training. Threshold: at least 150/200 greedy answers exactly
# right after fine-tuning (chance: 8/200; measured: 189/200), and the
# validation loss must fall below half of its value before fine-tuning
# (measured: 8.34 -> 1.15).
# Usage: learning_test.sh SOURCE_DIR BUILD_DIR WORK_DIR
set -eu
src="$1"; build="$2"; work="$3"
log="$work.log"
bash "$src/scripts/demo.sh" "$build" "$work" > "$log" 2>&1 || { cat "$log"; exit 1; }
cat "$log"
before=$(grep -m1 '^loss ' "$log" | sed 's/^loss \([0-9.]*\),.*/\1/')
after=$(grep '^loss ' "$log" | sed -n 2p | sed 's/^loss \([0-9.]*\),.*/\1/')
exact=$(grep '^exact match' "$log" | sed -n 2p | sed 's/exact match: \([0-9]*\)\/.*/\1/')
echo "validation loss $before -> $after, exact match after fine-tuning $exact/200"
python3 -c "import sys; b, a = float('$before'), float('$after'); sys.exit(0 if a < b / 2 else 1)" \
  || { echo "FAIL: the validation loss did not halve"; exit 1; }
[ "$exact" -ge 150 ] || { echo "FAIL: only $exact/200 held-out answers right"; exit 1; }
echo PASS
