#!/usr/bin/env python3
"""Writes the demo's synthetic preference task from its SFT task: for
"Which word comes first: a b c?" the chosen reply is the right answer ("a")
and the rejected one the last word ("c"). Deterministic.
Usage: make_preferences.py sft_train.jsonl dpo_train.jsonl"""
import json
import sys

src, dst = sys.argv[1:3]
with open(dst, "w") as out:
    for line in open(src):
        m = json.loads(line)["messages"]
        prompt, answer = m[0]["content"], m[1]["content"]
        words = prompt.split(":", 1)[1].strip().rstrip("?").split()
        wrong = words[-1] if words[-1] != answer else words[1]
        out.write(json.dumps({"prompt": prompt, "chosen": answer, "rejected": wrong}) + "\n")
