#!/usr/bin/env python3
"""The reliability suite: bad inputs of every kind, each with the exit code,
the message fragment and the files that must not be written.

Every case is a row of CASES below: a setup that breaks one input, the
command, the expected exit code (1: a clean error; never a signal), a
fragment of the one-line error, the paths that must not exist afterwards
("nothing written") and, optionally, a bound on the command's peak resident
memory. docs/reliability.md lists the cases and the counts this
script prints.

usage: run_cases.py BIN_DIR SRC_ROOT WORK_DIR
"""
import json
import os
import shutil
import struct
import subprocess
import sys

BIN, SRC, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
TINY = os.path.join(SRC, "test/lit/Inputs/configs/tiny-llama/config.json")
CORPUS = os.path.join(SRC, "examples/demo/corpus.txt")


def tool(name):
    return os.path.join(BIN, name)


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, errors="replace", **kw)


def run_measured(cmd):
    """run(), and the command's peak resident memory in bytes (wait4)."""
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as p:
        out = p.stdout.read()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    r = subprocess.CompletedProcess(cmd, p.returncode, out.decode(errors="replace"), "")
    return r, usage.ru_maxrss * 1024


def must(cmd):
    r = run(cmd)
    if r.returncode != 0:
        sys.exit("setup failed: %s\n%s%s" % (" ".join(cmd), r.stdout, r.stderr))


def w(*parts):
    return os.path.join(WORK, *parts)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def config_with(**changes):
    """The tiny Llama with a vocabulary the demo tokenizer fits, changed."""
    with open(TINY) as f:
        cfg = json.load(f)
    cfg["vocab_size"] = 512
    for k, v in changes.items():
        cfg[k] = v
    return cfg


def patch_safetensors(path, tensor, values):
    """Overwrites the first values of an F32 tensor in place."""
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        info = header[tensor]
        assert info["dtype"] == "F32", info
        f.seek(8 + n + info["data_offsets"][0])
        f.write(struct.pack("<%df" % len(values), *values))


def flip(src, dst, where):
    """Copies src to dst with one bit flipped at fraction `where` of it."""
    data = bytearray(open(src, "rb").read())
    data[int(len(data) * where)] ^= 0x10
    with open(dst, "wb") as f:
        f.write(data)


def truncate(src, dst, keep):
    """Copies a prefix of src: a fraction of it, or all but -keep bytes."""
    data = open(src, "rb").read()
    n = len(data) + keep if keep < 0 else int(len(data) * keep)
    with open(dst, "wb") as f:
        f.write(data[:n])


# --- Fixtures: a tiny f32 model, a tokenizer, a plan, data ------------------
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
write(w("base.json"), json.dumps(config_with()))
must([tool("lorart"), "init-model", "--config", w("base.json"), "-o", w("model"), "--dtype", "f32"])
must([tool("lorart"), "train-tokenizer", CORPUS, "-o", w("model", "tokenizer.model"),
      "--vocab-size", "400"])
must([tool("lorac"), "compile", w("model"), "--dtype", "f32", "--micro-batch", "2",
      "--seq-len", "32", "-o", w("plan.bin")])
must([tool("lorac"), "compile", w("model"), "--dtype", "f32", "--micro-batch", "1",
      "--seq-len", "64", "--objective", "dpo", "-o", w("dpo.bin")])
with open(CORPUS) as f:
    lines = [l.strip() for l in f if l.strip()][:64]
write(w("data.jsonl"), "".join(json.dumps({"text": l}) + "\n" for l in lines))
TRAIN = [tool("lorart"), "run", w("plan.bin"), "--data", w("data.jsonl"), "--no-progress",
         "--threads", "2"]


def copy_model(name):
    shutil.copytree(w("model"), w(name))
    return w(name)


def setup_nan_base():
    d = copy_model("nan_model")
    patch_safetensors(os.path.join(d, "model.safetensors"),
                      "model.layers.0.self_attn.q_proj.weight", [float("nan")])


def setup_nan_embedding():
    """A NaN far into the embedding (past the first million values, where
    binding decodes the weights a chunk at a time)."""
    d = w("nan_embed")
    write(w("wide_vocab.json"), json.dumps(config_with(vocab_size=512, hidden_size=2304,
                                                       intermediate_size=64,
                                                       num_attention_heads=4,
                                                       num_key_value_heads=4)))
    must([tool("lorart"), "init-model", "--config", w("wide_vocab.json"), "-o", d,
          "--dtype", "f32"])
    shutil.copy(w("model", "tokenizer.model"), d)
    path = os.path.join(d, "model.safetensors")
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        info = json.loads(f.read(n))["model.embed_tokens.weight"]
        assert info["dtype"] == "F32", info
        for index in (1100000, 1100003):
            f.seek(8 + n + info["data_offsets"][0] + 4 * index)
            f.write(struct.pack("<f", float("nan")))
    must([tool("lorac"), "compile", d, "--dtype", "f32", "--micro-batch", "2", "--seq-len", "32",
          "-o", w("nan_embed.bin")])


def setup_three_layers():
    d = w("three")
    write(w("three.json"), json.dumps(config_with(num_hidden_layers=3)))
    must([tool("lorart"), "init-model", "--config", w("three.json"), "-o", d, "--dtype", "f32"])
    shutil.copy(w("model", "tokenizer.model"), d)


def setup_untied():
    d = w("untied")
    tied = config_with().get("tie_word_embeddings", False)
    write(w("untied.json"), json.dumps(config_with(tie_word_embeddings=not tied)))
    must([tool("lorart"), "init-model", "--config", w("untied.json"), "-o", d, "--dtype", "f32"])
    shutil.copy(w("model", "tokenizer.model"), d)


def setup_rope_scaled():
    d = w("scaled")
    write(w("scaled.json"), json.dumps(config_with(rope_scaling={"rope_type": "linear",
                                                                 "factor": 2.0})))
    must([tool("lorart"), "init-model", "--config", w("scaled.json"), "-o", d, "--dtype", "f32"])
    shutil.copy(w("model", "tokenizer.model"), d)


def setup_windowed():
    """A Mistral plan compiled without a window, and the same model with one."""
    for name, window in (("nowindow", None), ("window", 8)):
        cfg = config_with(architectures=["MistralForCausalLM"], model_type="mistral",
                          sliding_window=window)
        write(w(name + ".json"), json.dumps(cfg))
        must([tool("lorart"), "init-model", "--config", w(name + ".json"), "-o", w(name),
              "--dtype", "f32"])
        shutil.copy(w("model", "tokenizer.model"), w(name))
    must([tool("lorac"), "compile", w("nowindow"), "--dtype", "f32", "--micro-batch", "2",
          "--seq-len", "32", "-o", w("nowindow.bin")])


def setup_mlp_bias():
    """A model with MLP biases (the plan does not record them: binding checks
    their tensors), compiled for itself."""
    d = w("mlpbias")
    write(w("mlpbias.json"), json.dumps(config_with(mlp_bias=True)))
    must([tool("lorart"), "init-model", "--config", w("mlpbias.json"), "-o", d, "--dtype", "f32"])
    shutil.copy(w("model", "tokenizer.model"), d)
    must([tool("lorac"), "compile", d, "--dtype", "f32", "--micro-batch", "2", "--seq-len", "32",
          "-o", w("mlpbias.bin")])


def setup_checkpoint():
    must(TRAIN + ["--base", w("model"), "--steps", "2", "--save-every", "2", "-o", w("ckpt_run")])


def setup_adapter():
    must(TRAIN + ["--base", w("model"), "--steps", "1", "-o", w("adapter")])


def setup_nan_adapter():
    shutil.copytree(w("adapter"), w("nan_adapter"))
    path = w("nan_adapter", "adapter_model.safetensors")
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    name = next(k for k in header if k.endswith("lora_B.weight"))
    dtype = header[name]["dtype"]
    with open(path, "r+b") as f:
        f.seek(8 + n + header[name]["data_offsets"][0])
        f.write(b"\x00\x00\xc0\x7f" if dtype == "F32" else b"\xc0\x7f")


def setup_narrow_targets():
    shutil.copytree(w("adapter"), w("narrow_adapter"))
    path = w("narrow_adapter", "adapter_config.json")
    cfg = json.load(open(path))
    cfg["target_modules"] = ["q_proj", "v_proj"]
    write(path, json.dumps(cfg))


def setup_alpha8_adapter():
    shutil.copytree(w("adapter"), w("alpha8_adapter"))
    path = w("alpha8_adapter", "adapter_config.json")
    cfg = json.load(open(path))
    cfg["lora_alpha"] = 8
    write(path, json.dumps(cfg))


def setup_qv_plan():
    must([tool("lorac"), "compile", w("model"), "--dtype", "f32", "--micro-batch", "2",
          "--seq-len", "32", "--lora-targets", "q_proj,v_proj", "-o", w("qv.bin")])


def setup_deep_mlir():
    write(w("deep.mlir"), "module attributes {x = " + "[" * 20000 + "]" * 20000 + "} {}\n")


def setup_dup_param():
    write(w("dup.mlir"), """module attributes {lora.model = {architecture = "LlamaForCausalLM",
  hidden_size = 64 : i64, intermediate_size = 128 : i64, num_hidden_layers = 1 : i64,
  num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, head_dim = 16 : i64,
  vocab_size = 100 : i64, rms_norm_eps = 1.0e-05 : f64, rope_theta = 10000.0 : f64,
  tie_word_embeddings = true, attention_bias = false}} {
  func.func @f() {
    %0 = lora.param "w" frozen : tensor<4x8xf32>
    %1 = lora.param "w" frozen : tensor<8x8xf32>
    return
  }
}
""")


BIG_LINE = 50 << 20  # one JSONL record of 50 MiB


def setup_big_records():
    # JSON escapes (\u, \n) stand for the non-ASCII text and the newlines.
    words = ("Four score and seven years ago our fathers brought forth on this continent a "
             r"new nation \u00fcber \u4e2d\u6587 \n").split(" ")
    text = " ".join(words[i % len(words)] for i in range(BIG_LINE // 6))
    write(w("big_text.jsonl"), '{"text": "%s"}\n' % text)
    write(w("big_chat.jsonl"), '{"messages": [{"role": "user", "content": "Repeat."}, '
                               '{"role": "assistant", "content": "%s"}]}\n' % text)


BIG_PAIR = 16 << 20  # the prompt of one DPO pair


def setup_big_pair():
    words = ("Four score and seven years ago our fathers brought forth on this continent a "
             r"new nation \u00fcber \u4e2d\u6587 \n").split(" ")
    text = " ".join(words[i % len(words)] for i in range(BIG_PAIR // 6))
    write(w("big_pair.jsonl"), '{"prompt": "%s", "chosen": "Yes, that is it.", '
                               '"rejected": "%s"}\n' % (text, text[:1 << 20]))


def big_run(name):
    return [tool("lorart"), "run", w("plan.bin"), "--data", w(name + ".jsonl"), "--no-progress",
            "--threads", "2", "--base", w("model"), "--steps", "1", "-o", w(name + "_out")]


def setup_config(name, **changes):
    def f():
        text = json.dumps(config_with(**changes))
        for k, v in changes.items():
            if isinstance(v, str) and v.startswith("RAW:"):
                text = text.replace(json.dumps(v), v[4:])
        write(w(name), text)
    return f


# name, setup, command, rc, message fragment, paths that must not exist
# [, peak resident memory bound in bytes]
CASES = [
    ("config: hidden_size 1e400 (overflows a double)",
     setup_config("huge.json", hidden_size="RAW:1e400"),
     [tool("lorac"), "import", w("huge.json"), "-o", w("huge.mlir")], 1,
     "number overflow", [w("huge.mlir")]),
    ("config: num_hidden_layers 10^12",
     setup_config("layers.json", num_hidden_layers=10**12),
     [tool("lorac"), "compile", w("layers.json"), "-o", w("layers.bin")], 1,
     "key 'num_hidden_layers' is 1000000000000, more than the largest supported value 1024",
     [w("layers.bin")]),
    ("config: hidden_size 2^40",
     setup_config("wide.json", hidden_size=2**40),
     [tool("lorac"), "import", w("wide.json"), "-o", w("wide.mlir")], 1,
     "more than the largest supported value", [w("wide.mlir")]),
    ("config: JSON nested 100k deep",
     lambda: write(w("deepcfg.json"), '{"a": ' + "[" * 100000 + "]" * 100000 + "}"),
     [tool("lorac"), "import", w("deepcfg.json"), "-o", w("deepcfg.mlir")], 1,
     "nests deeper than", [w("deepcfg.mlir")]),
    ("mlir: attribute nested 20000 deep (lorac-opt)", setup_deep_mlir,
     [tool("lorac-opt"), w("deep.mlir"), "-o", w("deep.out.mlir")], 1,
     "brackets nest deeper than 512 levels", [w("deep.out.mlir")]),
    ("mlir: attribute nested 20000 deep (lorac compile)", None,
     [tool("lorac"), "compile", w("deep.mlir"), "-o", w("deep.bin")], 1,
     "brackets nest deeper than 512 levels", [w("deep.bin")]),
    ("mlir: one lora.param name with two shapes", setup_dup_param,
     [tool("lorac-opt"), w("dup.mlir")], 1,
     "declares 'w' as 'tensor<8x8xf32>' (frozen), but it is 'tensor<4x8xf32>'", []),
    ("base: a NaN in q_proj", setup_nan_base,
     TRAIN + ["--base", w("nan_model"), "--steps", "2", "-o", w("nan_out")], 1,
     "model.layers.0.self_attn.q_proj.weight' has 1 non-finite values", [w("nan_out")]),
    ("base: two NaNs past the first million values of the embedding", setup_nan_embedding,
     [tool("lorart"), "run", w("nan_embed.bin"), "--data", w("data.jsonl"), "--no-progress",
      "--threads", "2", "--base", w("nan_embed"), "--steps", "1", "-o", w("nan_embed_out")], 1,
     "model.embed_tokens.weight' has 2 non-finite values (the first at element 1100000",
     [w("nan_embed_out")]),
    ("base: a NaN in q_proj, bound anyway: every step skipped", None,
     TRAIN + ["--base", w("nan_model"), "--steps", "3", "--allow-nonfinite-weights",
              "-o", w("nan_out2")], 1,
     "no update was applied: all 3 steps were skipped",
     [w("nan_out2", "adapter_model.safetensors")]),
    ("base: 3 layers for a 2-layer plan", setup_three_layers,
     TRAIN + ["--base", w("three"), "--steps", "1", "-o", w("three_out")], 1,
     "num_hidden_layers is 3, but the plan was compiled for 2", [w("three_out")]),
    ("base: RoPE scaling the plan was not compiled for", setup_rope_scaled,
     TRAIN + ["--base", w("scaled"), "--steps", "1", "-o", w("scaled_out")], 1,
     "rope_scaling is linear (factor 2), but the plan was compiled for none", [w("scaled_out")]),
    ("base: a sliding window the plan was not compiled for", setup_windowed,
     [tool("lorart"), "eval", w("nowindow.bin"), "--base", w("window"), "--data",
      w("data.jsonl"), "--threads", "2"], 1,
     "the sliding window is 8, but the plan was compiled for none", []),
    ("base: MLP biases, with a plan compiled for them (not an error)", setup_mlp_bias,
     [tool("lorart"), "run", w("mlpbias.bin"), "--data", w("data.jsonl"), "--no-progress",
      "--threads", "2", "--base", w("mlpbias"), "--steps", "1", "--spike-factor", "inf",
      "-o", w("mlpbias_out")], 0, "wrote", []),
    ("base: tie_word_embeddings differs", setup_untied,
     TRAIN + ["--base", w("untied"), "--steps", "1", "-o", w("untied_out")], 1,
     "tie_word_embeddings is", [w("untied_out")]),
    ("run: learning rate 1e6 collapses", None,
     TRAIN + ["--base", w("model"), "--steps", "12", "--lr", "1e6", "-o", w("lr_out")], 1,
     "training has collapsed", [w("lr_out", "adapter_model.safetensors")]),
    ("run: resume from a checkpoint at the last step", setup_checkpoint,
     TRAIN + ["--base", w("model"), "--steps", "2", "--resume",
              w("ckpt_run", "checkpoint-2"), "-o", w("resume_out")], 1,
     "is at step 2, which is not before the last step (2)",
     [w("resume_out", "adapter_model.safetensors")]),
    ("plan: one bit flipped in the middle", lambda: flip(w("plan.bin"), w("flip.bin"), 0.5),
     TRAIN[:2] + [w("flip.bin")] + TRAIN[3:] + ["--base", w("model"), "-o", w("flip_out")], 1,
     "its checksum does not match its contents", [w("flip_out")]),
    ("plan: one bit flipped near the end", lambda: flip(w("plan.bin"), w("flip2.bin"), 0.97),
     [tool("lorart"), "inspect", w("flip2.bin")], 1,
     "its checksum does not match its contents", []),
    ("plan: truncated", lambda: truncate(w("plan.bin"), w("cut.bin"), 0.6),
     [tool("lorart"), "inspect", w("cut.bin")], 1, "is the file truncated", []),
    ("plan: checksum trailer cut off", lambda: truncate(w("plan.bin"), w("bare.bin"), -16),
     [tool("lorart"), "inspect", w("bare.bin")], 1, "checksum trailer", []),
    ("checkpoint: one bit flipped in the optimizer state",
     lambda: (shutil.copytree(w("ckpt_run", "checkpoint-2"), w("ckpt_flip")),
              flip(w("ckpt_flip", "state.safetensors"), w("ckpt_flip", "state.safetensors"), 0.9)),
     TRAIN + ["--base", w("model"), "--steps", "4", "--resume", w("ckpt_flip"),
              "-o", w("ckpt_flip_out")], 1,
     "state.safetensors: corrupt checkpoint file", [w("ckpt_flip_out")]),
    ("checkpoint: trainer.json edited",
     lambda: (shutil.copytree(w("ckpt_run", "checkpoint-2"), w("ckpt_edit")),
              write(w("ckpt_edit", "trainer.json"),
                    open(w("ckpt_edit", "trainer.json")).read().replace('"step": 2', '"step": 1'))),
     TRAIN + ["--base", w("model"), "--steps", "4", "--resume", w("ckpt_edit"),
              "-o", w("ckpt_edit_out")], 1,
     "trainer.json: corrupt checkpoint file", [w("ckpt_edit_out")]),
    ("checkpoint: checksums.json missing",
     lambda: (shutil.copytree(w("ckpt_run", "checkpoint-2"), w("ckpt_nosum")),
              os.remove(w("ckpt_nosum", "checksums.json"))),
     TRAIN + ["--base", w("model"), "--steps", "4", "--resume", w("ckpt_nosum"),
              "-o", w("ckpt_nosum_out")], 1,
     "checksums.json: missing", [w("ckpt_nosum_out")]),
    ("run: a plan larger than the memory available",
     None,
     ["env", "LORART_AVAILABLE_MEMORY=1000000"] + TRAIN
     + ["--base", w("model"), "--steps", "1", "-o", w("mem_out")], 1,
     "of memory (weights and training state", [w("mem_out")]),
    ("compile: a plan larger than this machine's memory warns", None,
     ["env", "LORART_AVAILABLE_MEMORY=1000000", tool("lorac"), "compile", w("model"),
      "--dtype", "f32", "--micro-batch", "2", "--seq-len", "32", "-o", w("mem.bin")], 0,
     "lorac: warning: ", []),
    ("merge: a NaN in the adapter", lambda: (setup_adapter(), setup_nan_adapter()),
     [tool("lorart"), "merge", "--base", w("model"), "--adapter", w("nan_adapter"),
      "-o", w("merged_nan")], 1, "non-finite values", [w("merged_nan")]),
    ("merge: adapter_config targets fewer modules than the weights hold",
     setup_narrow_targets,
     [tool("lorart"), "merge", "--base", w("model"), "--adapter", w("narrow_adapter"),
      "-o", w("merged_narrow")], 1, "is not targeted by", [w("merged_narrow")]),
    ("run: --grad-accum larger than --epochs of the data", None,
     TRAIN + ["--base", w("model"), "--grad-accum", "1000", "-o", w("ga_out")], 1,
     "more than --epochs 1 of this data holds", [w("ga_out")]),
    ("run: --grad-accum 10^12", None,
     TRAIN + ["--base", w("model"), "--steps", "1", "--grad-accum", "1000000000000",
              "-o", w("ga_out")], 1, "--grad-accum must be in [0, 65536]", [w("ga_out")]),
    ("run: a negative --lr is not the plan's", None,
     TRAIN + ["--base", w("model"), "--steps", "1", "--lr", "-1", "-o", w("lr_neg_out")], 1,
     "--lr must be >= 0 (0: the plan's), got -1", [w("lr_neg_out")]),
    ("run: an empty -o", None,
     TRAIN + ["--base", w("model"), "--steps", "1", "-o", ""], 1,
     "-o must name the output directory", []),
    ("eval: an adapter of another lora_alpha than the plan's", setup_alpha8_adapter,
     [tool("lorart"), "eval", w("plan.bin"), "--base", w("model"), "--adapter",
      w("alpha8_adapter"), "--data", w("data.jsonl"), "--threads", "2"], 1,
     "lora_alpha is 8, but the plan was compiled for lora_alpha 32", []),
    ("run: --init-adapter whose config targets fewer modules than the plan", None,
     TRAIN + ["--base", w("model"), "--steps", "1", "--init-adapter", w("narrow_adapter"),
              "-o", w("narrow_out")], 1, "is not targeted by it", [w("narrow_out")]),
    ("eval: an adapter with modules the plan does not adapt", setup_qv_plan,
     [tool("lorart"), "eval", w("qv.bin"), "--base", w("model"), "--adapter", w("adapter"),
      "--data", w("data.jsonl"), "--threads", "2"], 1, "is not one this plan trains", []),
    # Not errors: a record far longer than a row trains on its first seq_len
    # tokens, in memory a small multiple of the record (the file is mapped,
    # the record parsed once, a prefix of it tokenized; docs/data.md).
    ("data: one 50 MiB text record, memory bounded", setup_big_records,
     big_run("big_text"), 0, "1 truncated to 32 tokens", [], 8 * BIG_LINE),
    ("data: one 50 MiB chat reply, memory bounded", None,
     big_run("big_chat"), 0, "1 truncated to 32 tokens", [], 8 * BIG_LINE),
    # A DPO pair far longer than its row: the long sides are streamed twice
    # (counted, then what the row keeps taken), never tokenized whole.
    ("data: one DPO pair with a 16 MiB prompt, memory bounded", setup_big_pair,
     [tool("lorart"), "run", w("dpo.bin"), "--data", w("big_pair.jsonl"), "--no-progress",
      "--threads", "2", "--base", w("model"), "--steps", "1", "-o", w("big_pair_out")], 0,
     "1 truncated to 64 tokens", [], 12 * BIG_PAIR),
]


def main():
    failed = 0
    for name, setup, cmd, rc, fragment, absent, *bound in CASES:
        if setup:
            setup()
        r, peak = run_measured(cmd)
        out = r.stdout + r.stderr
        problems = []
        if bound and peak > bound[0]:
            problems.append("peak memory %d MiB, more than %d MiB" % (peak >> 20, bound[0] >> 20))
        if r.returncode != rc:
            problems.append("exit code %d, expected %d" % (r.returncode, rc))
        if fragment and fragment not in out:
            problems.append("message lacks %r" % fragment)
        if r.returncode < 0 or "Stack dump" in out or "terminate called" in out:
            problems.append("crashed")
        for p in absent:
            if os.path.exists(p):
                problems.append("wrote %s" % p)
        status = "FAIL" if problems else "ok"
        print("%-4s %s%s" % (status, name,
                             " (peak %d MiB)" % (peak >> 20) if bound else ""))
        if problems:
            failed += 1
            print("     " + "; ".join(problems))
            print("     " + " ".join(cmd))
            print("     " + out.strip().replace("\n", "\n     ")[:2000])
    print("%d cases, %d clean errors, %d failed" % (len(CASES), len(CASES) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
