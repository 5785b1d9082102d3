#!/usr/bin/env python3
"""kill -9 at random moments, then --resume: the final adapter must be the
uninterrupted run's, bit for bit (docs/reliability.md).

A reference run trains STEPS steps with a checkpoint every SAVE steps. Each
trial starts the same run and kills it (SIGKILL) at a moment drawn from a
seeded generator over the reference run's duration, then resumes from the
newest complete checkpoint (checkpoint-N; a checkpoint-N.tmp left by the kill
is ignored and must never be read), killing the resumed run too, up to KILLS
times, before letting it finish. Its adapter_model.safetensors must hash to
the reference's. A kill before the first checkpoint restarts from scratch; a
kill after the last one (checkpoint-STEPS) leaves the finished adapter in it.

usage: kill_resume.py BIN_DIR SRC_ROOT WORK_DIR [TRIALS]
"""
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

BIN, SRC, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
TRIALS = int(sys.argv[4]) if len(sys.argv) > 4 else 8
STEPS, SAVE, KILLS = 120, 4, 3
TINY = os.path.join(SRC, "test/lit/Inputs/configs/tiny-llama/config.json")
CORPUS = os.path.join(SRC, "examples/demo/corpus.txt")


def w(*parts):
    return os.path.join(WORK, *parts)


def must(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("setup failed: %s\n%s%s" % (" ".join(cmd), r.stdout, r.stderr))


def train_cmd(out, resume=None):
    cmd = [os.path.join(BIN, "lorart"), "run", w("plan.bin"), "--base", w("model"),
           "--data", w("data.jsonl"), "--steps", str(STEPS), "--save-every", str(SAVE),
           "--lr", "1e-3", "--seed", "5", "--threads", "1", "--no-progress", "-o", out]
    return cmd + (["--resume", resume] if resume else [])


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def newest_checkpoint(out):
    best = None
    for name in os.listdir(out) if os.path.isdir(out) else []:
        m = re.fullmatch(r"checkpoint-(\d+)", name)
        if m and (best is None or int(m.group(1)) > best[0]):
            best = (int(m.group(1)), os.path.join(out, name))
    return best[1] if best else None


def main():
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    with open(TINY) as f:
        cfg = json.load(f)
    cfg["vocab_size"] = 512
    with open(w("base.json"), "w") as f:
        json.dump(cfg, f)
    lorart = os.path.join(BIN, "lorart")
    must([lorart, "init-model", "--config", w("base.json"), "-o", w("model"), "--dtype", "f32"])
    must([lorart, "train-tokenizer", CORPUS, "-o", w("model", "tokenizer.model"),
          "--vocab-size", "400"])
    must([os.path.join(BIN, "lorac"), "compile", w("model"), "--dtype", "f32", "--micro-batch",
          "2", "--seq-len", "32", "-o", w("plan.bin")])
    with open(CORPUS) as f:
        lines = [l.strip() for l in f if l.strip()][:64]
    with open(w("data.jsonl"), "w") as f:
        f.write("".join(json.dumps({"text": l}) + "\n" for l in lines))

    start = time.monotonic()
    must(train_cmd(w("reference")))
    duration = time.monotonic() - start
    reference = digest(w("reference", "adapter_model.safetensors"))
    print("reference: %d steps in %.2f s, adapter %s" % (STEPS, duration, reference[:16]))

    rng = random.Random(20261205)
    failed = 0
    for trial in range(TRIALS):
        out = w("trial%d" % trial)
        kills, log = 0, []
        adapter = os.path.join(out, "adapter_model.safetensors")
        exit_code = None
        while True:
            resume = newest_checkpoint(out)
            if resume and resume.endswith("checkpoint-%d" % STEPS):
                # Killed after the last checkpoint, before the output's own
                # adapter: training is complete and the checkpoint holds the
                # adapter (lorart refuses a resume with no step left to run).
                adapter = os.path.join(resume, "adapter_model.safetensors")
                log.append("complete in %s" % os.path.basename(resume))
                text, exit_code = "", 0
                break
            p = subprocess.Popen(train_cmd(out, resume), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT)
            if kills < KILLS:
                time.sleep(rng.uniform(0.0, duration))
                if p.poll() is None:
                    p.send_signal(signal.SIGKILL)
                    p.wait()
                    kills += 1
                    log.append("killed%s" % (" (resumed from %s)" % os.path.basename(resume)
                                              if resume else ""))
                    continue
            text = p.communicate()[0].decode(errors="replace")
            exit_code = p.returncode
            log.append("finished%s, exit %d" % (" from %s" % os.path.basename(resume)
                                               if resume else "", p.returncode))
            break
        ok = exit_code == 0 and os.path.exists(adapter) and digest(adapter) == reference
        print("%-4s trial %d: %s" % ("ok" if ok else "FAIL", trial, "; ".join(log)))
        if not ok:
            failed += 1
            print("     " + text.strip().replace("\n", "\n     ")[-2000:])
    print("%d trials, %d bitwise equal to the uninterrupted run, %d failed"
          % (TRIALS, TRIALS - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
