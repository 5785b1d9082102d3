#!/usr/bin/env python3
"""Writes the demo's shipped data (deterministic, seed 0):
  examples/demo/pretrain.jsonl   {"text"} lines of the public-domain corpus
  examples/demo/sft_train.jsonl  a synthetic instruction task (chat format)
  examples/demo/sft_val.jsonl    held-out pairs of the same task
The task: "Which word comes first: <w1> <w2> <w3>?" -> "<w1>". The word
triples of the validation set never occur in training."""
import json
import random
from pathlib import Path

root = Path(__file__).resolve().parent.parent / "examples" / "demo"
words = ("cat dog horse cow sheep goat bird fish fox bear red orange yellow green "
         "blue violet one two three four five six seven eight nine ten").split()

rng = random.Random(0)
triples = set()
while len(triples) < 2600:
    triples.add(tuple(rng.sample(words, 3)))
triples = sorted(triples)
rng.shuffle(triples)
train, val = triples[:2400], triples[2400:]


def record(t):
    return {"messages": [
        {"role": "user", "content": "Which word comes first: %s %s %s?" % t},
        {"role": "assistant", "content": t[0]},
    ]}


with open(root / "sft_train.jsonl", "w") as f:
    for t in train:
        f.write(json.dumps(record(t)) + "\n")
with open(root / "sft_val.jsonl", "w") as f:
    for t in val:
        f.write(json.dumps(record(t)) + "\n")
with open(root / "pretrain.jsonl", "w") as f:
    for line in (root / "corpus.txt").read_text().splitlines():
        if line.strip():
            f.write(json.dumps({"text": line.strip()}) + "\n")
print("wrote", len(train), "train and", len(val), "validation pairs")
