#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (test/fuzz/corpus/<target>/).

The seeds are valid inputs written by the libraries that own each format
(safetensors, Hugging Face tokenizers) or by lorac itself, plus the published
chat templates of test/runtime/jinja/templates/: the fuzzer mutates from real
files. Re-run after a format change and commit the result:

  PYTHONPATH=/opt/lorac-pydeps /usr/bin/python3 test/fuzz/make_seeds.py BUILD_DIR [TARGET]

(BUILD_DIR holds bin/lorac, for the train.bin seeds; TARGET rewrites that
target's seeds only.)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def out(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors_seeds():
    import numpy as np
    import torch
    from safetensors.numpy import save as save_np
    from safetensors.torch import save as save_torch

    out("safetensors_header", "f32_two.safetensors",
        save_np({"a": np.arange(6, dtype=np.float32).reshape(2, 3),
                 "b.weight": np.ones((3,), dtype=np.float32)}))
    out("safetensors_header", "bf16_meta.safetensors",
        save_torch({"model.layers.0.self_attn.q_proj.weight": torch.ones(4, 4, dtype=torch.bfloat16),
                    "scalar": torch.tensor(1.5, dtype=torch.float32),
                    "ids": torch.arange(5, dtype=torch.int64),
                    "mask": torch.tensor([True, False])},
                   metadata={"format": "pt"}))
    out("safetensors_header", "empty_tensor.safetensors",
        save_np({"e": np.zeros((0, 4), dtype=np.float16), "u8": np.arange(3, dtype=np.uint8)}))
    out("safetensors_header", "no_tensors.safetensors", save_np({}))


def plan_seeds(build):
    lorac = os.path.join(build, "bin", "lorac")
    config = os.path.join(SRC, "test/lit/Inputs/configs/tiny-llama/config.json")
    variants = {
        "lora_sft": [],
        "qlora_packed": ["--quantize-base", "nf4", "--packing"],
        "lora_dpo": ["--objective", "dpo"],
        "full_pretrain": ["--train", "full", "--objective", "pretrain"],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, flags in variants.items():
            path = os.path.join(tmp, name + ".bin")
            subprocess.run([lorac, "compile", config, "-o", path, "--target", "cpu",
                            "--micro-batch", "1", "--seq-len", "16"] + flags, check=True)
            data = open(path, "rb").read()
            assert data[-16:-8] == b"LORAXXH3", name
            out("plan", name + ".body", data[:-16])  # the target seals it again


JSONL_SEEDS = {
    "chat": '{"messages": [{"role": "system", "content": "Be brief."}, '
            '{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}\n',
    "alpaca": '{"instruction": "Add", "input": "1 + 1", "output": "2", "id": 7}\n',
    "prompt_completion": '{"prompt": "The sky is", "completion": " blue."}\n\r\n'
                         '{"text": "two records"}\n',
    "text": '{"text": "Once upon a time \\u00e9\\ud83d\\ude00 \\n"}\n',
    "dpo_strings": '{"prompt": "2+2?", "chosen": "4", "rejected": "5"}\n',
    "dpo_messages": '{"prompt": [{"role": "user", "content": "Hi"}], '
                    '"chosen": [{"role": "assistant", "content": "Hello"}], '
                    '"rejected": [{"role": "assistant", "content": "Go away"}]}\n',
    "bad_role": '{"messages": [{"role": "robot", "content": "x"}]}\n',
    "two_formats": '{"text": "a", "prompt": "b", "completion": "c"}\n',
}


def jsonl_seeds():
    for name, text in JSONL_SEEDS.items():
        out("jsonl", name + ".jsonl", text)


NO_SYSTEM = ('{"messages": [{"role": "user", "content": "Hi"}, '
             '{"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"}, '
             '{"role": "assistant", "content": "Bye!"}]}')


def chat_template_seeds():
    record = JSONL_SEEDS["chat"].strip()
    tdir = os.path.join(SRC, "test/runtime/jinja/templates")
    for f in sorted(os.listdir(tdir)):
        if f.endswith(".jinja"):
            source = open(os.path.join(tdir, f), "rb").read()
            out("chat_template", f, source + b"\0" + record.encode())
            if "gemma" in f:  # Gemma's templates refuse a system turn
                out("chat_template", f.replace(".jinja", "-no-system.jinja"),
                    source + b"\0" + NO_SYSTEM.encode())
    out("chat_template", "generation.jinja",
        "{% for m in messages %}{{ m.role }}: {% if m.role == 'assistant' %}{% generation %}"
        "{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}\n{% endfor %}"
        "{{ eos_token }}")


TEXTS = [
    "Hello world! It's 2026; ünïcödé, 中文, emoji 😀 and\ttabs\n\nnew lines   spaces.",
    "<s>[INST] special <|im_start|>user\nhi<|im_end|> tokens [/INST]</s>",
    "numbers 1234567 and 3.14159, code: def f(x): return x**2",
]


def tokenizer_seeds():
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, \
        processors, trainers

    corpus = TEXTS * 20
    specials = ["<s>", "</s>", "<unk>", "<|im_start|>", "<|im_end|>"]

    # Byte-level BPE with a Split regex, as Llama 3 and Qwen2 ship it.
    t = Tokenizer(models.BPE())
    t.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|"
                                   r"\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
                             behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    t.decoder = decoders.ByteLevel()
    t.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 0)])
    t.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    save(t, "byte_level_bpe")

    # SentencePiece-style BPE with byte fallback, as Llama 2 / Mistral ship it.
    t = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    t.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    t.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                   decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=specials +
                                  ["<0x%02X>" % b for b in range(256)])
    t.train_from_iterator(corpus, trainer)
    save(t, "sentencepiece_bpe")

    # Metaspace pre-tokenizer, NFKC normalizer, digits split.
    t = Tokenizer(models.BPE(unk_token="<unk>"))
    t.normalizer = normalizers.NFKC()
    t.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Metaspace(),
                                               pre_tokenizers.Digits(individual_digits=True)])
    t.decoder = decoders.Metaspace()
    t.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=200, special_tokens=specials))
    save(t, "metaspace_bpe")


def save(t, name):
    data = t.to_str()
    json.loads(data)
    for i, text in enumerate(TEXTS):
        out("tokenizer", "%s_%d" % (name, i), data.encode() + b"\0" + text.encode())


SPM_CORPUS = TEXTS + [
    "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs.",
    "Tokenizers split text into pieces: words, subwords, bytes.",
]


def sentencepiece_seeds():
    # Models written by sentencepiece's own trainer (spm_train, Debian's
    # sentencepiece package): unigram with byte fallback (Llama 2's kind), BPE,
    # a character model, and user-defined symbols with NFKC normalization; the
    # text comes first.
    variants = {
        "unigram_byte_fallback": ["--model_type=unigram", "--vocab_size=400", "--byte_fallback=true",
                                  "--normalization_rule_name=identity"],
        "bpe": ["--model_type=bpe", "--vocab_size=120", "--normalization_rule_name=identity"],
        "char": ["--model_type=char", "--normalization_rule_name=identity"],
        # The default nmt_nfkc rule: the model carries a precompiled charsmap.
        "user_symbols": ["--model_type=unigram", "--vocab_size=100",
                         "--user_defined_symbols=<|im_start|>,<|im_end|>",
                         "--control_symbols=<ctrl>", "--split_digits=true"],
    }
    with tempfile.TemporaryDirectory() as tmp:
        text = os.path.join(tmp, "corpus.txt")
        with open(text, "w") as f:
            f.write("\n".join(SPM_CORPUS * 10) + "\n")
        for i, (name, flags) in enumerate(variants.items()):
            prefix = os.path.join(tmp, name)
            subprocess.run(["spm_train", "--input=" + text, "--model_prefix=" + prefix,
                            "--character_coverage=1.0", "--minloglevel=2",
                            "--hard_vocab_limit=false"] + flags,
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            model = open(prefix + ".model", "rb").read()
            out("sentencepiece", name, TEXTS[i % len(TEXTS)].encode() + b"\0" + model)


SEEDS = {
    "safetensors_header": lambda build: safetensors_seeds(),
    "plan": plan_seeds,
    "jsonl": lambda build: jsonl_seeds(),
    "chat_template": lambda build: chat_template_seeds(),
    "tokenizer": lambda build: tokenizer_seeds(),
    "sentencepiece": lambda build: sentencepiece_seeds(),
}


def main():
    if len(sys.argv) not in (2, 3) or (len(sys.argv) == 3 and sys.argv[2] not in SEEDS):
        sys.exit(__doc__)
    targets = [sys.argv[2]] if len(sys.argv) == 3 else list(SEEDS)
    for target in targets:
        d = os.path.join(CORPUS, target)
        if os.path.isdir(d):
            shutil.rmtree(d)
        SEEDS[target](sys.argv[1])
    for d in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, d))
        size = sum(os.path.getsize(os.path.join(CORPUS, d, f)) for f in files)
        print("%-20s %3d seeds %8d bytes" % (d, len(files), size))


if __name__ == "__main__":
    main()
