"""Builds tokenizer.json files with Hugging Face `tokenizers` and writes what
`tokenizers` makes of the stress corpus, for hf_tokenizer_diff_test.cc.

    PYTHONPATH=/opt/lorac-pydeps python3 make_references.py SOURCE_DIR OUT_DIR

For each tokenizer kind, OUT_DIR/<kind>/ gets tokenizer.json, maybe
tokenizer_config.json, and reference.json:
  {"cases": [{"text", "ids", "spans" (byte offsets), "ids_text_only"
              (encode_special_tokens=True), "ids_with_special",
              "decode", "decode_keep"}], "lossless": bool}
The tokenizers are trained here, on files of the repository, so the test
needs no download. Exit status 3: `tokenizers` cannot be imported.
"""
import glob
import json
import os
import re
import sys

try:
    import tokenizers
    from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,
                            pre_tokenizers, processors, trainers)
except Exception as e:  # noqa: BLE001
    print("cannot import tokenizers:", e, file=sys.stderr)
    sys.exit(3)
# The references need ignore_merges (tokenizers 0.19): an older one (the
# system's, pinned by transformers 4.35) counts as missing.
if tuple(int(x) for x in tokenizers.__version__.split(".")[:2]) < (0, 19):
    print("tokenizers %s is older than 0.19" % tokenizers.__version__, file=sys.stderr)
    sys.exit(3)

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def unescape(line):
    out = []
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line):
            n = line[i + 1]
            if n == "n":
                out.append("\n"); i += 2; continue
            if n == "t":
                out.append("\t"); i += 2; continue
            if n == "r":
                out.append("\r"); i += 2; continue
            if n == "\\":
                out.append("\\"); i += 2; continue
            if n == "u" and line[i + 2:i + 3] == "{":
                end = line.index("}", i)
                out.append(chr(int(line[i + 3:end], 16))); i = end + 1; continue
        out.append(c)
        i += 1
    return "".join(out)


def read_corpus(path):
    cases = []
    with open(path, encoding="utf-8") as f:
        for line in f.read().split("\n"):
            if line.startswith("#!") or line == "":
                continue
            cases.append(unescape(line))
    return cases


def training_texts(source_dir, corpus):
    texts = []
    for pattern in ["examples/demo/corpus.txt", "docs/*.md", "runtime/src/lorart/data/*.cc"]:
        for p in sorted(glob.glob(os.path.join(source_dir, pattern))):
            with open(p, encoding="utf-8", errors="replace") as f:
                texts.extend(f.read().split("\n"))
    texts.extend(corpus * 3)
    return [t for t in texts if t]


def char_to_byte_table(text):
    table = [0]
    for ch in text:
        table.append(table[-1] + len(ch.encode("utf-8")))
    return table


def train_bytelevel(texts, pre, vocab_size, specials, normalizer=None, ignore_merges=False):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer)
    tok.decoder = decoders.ByteLevel()
    return tok


def sentencepiece_like(texts, vocab_size, limit_alphabet, byte_fallback=True):
    """A Llama-2 style BPE: <unk> <s> </s>, 256 <0xXX> pieces, then pieces
    learned over ▁-joined words; no pre-tokenizer at encode time."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, limit_alphabet=limit_alphabet,
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer)
    learned = json.loads(tok.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    if byte_fallback:
        for b in range(256):
            vocab["<0x%02X>" % b] = len(vocab)
    for piece, _ in sorted(learned["vocab"].items(), key=lambda kv: kv[1]):
        if piece not in vocab:
            vocab[piece] = len(vocab)
    return vocab, learned["merges"]


def added(id_, content, special, lstrip=False, rstrip=False, normalized=None, single_word=False):
    return {"id": id_, "content": content, "single_word": single_word, "lstrip": lstrip,
            "rstrip": rstrip, "normalized": (not special) if normalized is None else normalized,
            "special": special}


def template(bos_piece, bos_id, eos=None):
    single = [{"SpecialToken": {"id": bos_piece, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]
    specials = {bos_piece: {"id": bos_piece, "ids": [bos_id], "tokens": [bos_piece]}}
    if eos:
        single.append({"SpecialToken": {"id": eos[0], "type_id": 0}})
        specials[eos[0]] = {"id": eos[0], "ids": [eos[1]], "tokens": [eos[0]]}
    pair = single + [{"Sequence": {"id": "B", "type_id": 1}}]
    return {"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": specials}


def with_added_tokens(tok_json, tokens):
    base = max(tok_json["model"]["vocab"].values()) + 1
    out = []
    for t in tokens:
        content, special = t[0], t[1]
        kw = t[2] if len(t) > 2 else {}
        id_ = tok_json["model"]["vocab"].get(content)
        if id_ is None:
            id_ = base
            base += 1
        out.append(added(id_, content, special, **kw))
    tok_json["added_tokens"] = out
    return {t["content"]: t["id"] for t in out}


def build_all(source_dir, corpus):
    texts = training_texts(source_dir, corpus)
    kinds = {}

    # (a) Llama 3: Split(llama3 regex) + ByteLevel(use_regex=false), ignore_merges.
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    j = json.loads(train_bytelevel(texts, pre, 3000, [], ignore_merges=True).to_str())
    ids = with_added_tokens(j, [("<|begin_of_text|>", True), ("<|end_of_text|>", True),
                                ("<|start_header_id|>", True), ("<|end_header_id|>", True),
                                ("<|eot_id|>", True), ("<|reserved_special_token_0|>", True)])
    j["post_processor"] = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        template("<|begin_of_text|>", ids["<|begin_of_text|>"])]}
    j["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    kinds["llama3"] = (j, {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"})

    # (b) GPT-2: ByteLevel with its own regex, add_prefix_space off and on.
    for name, aps in [("gpt2", False), ("gpt2_prefix_space", True)]:
        pre = pre_tokenizers.ByteLevel(add_prefix_space=aps, use_regex=True)
        j = json.loads(train_bytelevel(texts, pre, 2500, []).to_str())
        with_added_tokens(j, [("<|endoftext|>", True)])
        j["post_processor"] = {"type": "ByteLevel", "add_prefix_space": aps, "trim_offsets": True,
                               "use_regex": True}
        kinds[name] = (j, {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
                           "unk_token": "<|endoftext|>"})

    # (g) SmolLM2: Digits(individual) + ByteLevel(regex).
    pre = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    j = json.loads(train_bytelevel(texts, pre, 2500, []).to_str())
    with_added_tokens(j, [("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True)])
    j["post_processor"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                           "use_regex": True}
    kinds["smollm2"] = (j, {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
                            "pad_token": "<|im_end|>"})

    # (c) Qwen2: NFC + qwen regex; <tool_call> is a non-special added token.
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    j = json.loads(train_bytelevel(texts, pre, 3000, [], normalizer=normalizers.NFC()).to_str())
    with_added_tokens(j, [("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
                          ("<tool_call>", False, {"normalized": False}),
                          ("</tool_call>", False, {"normalized": False})])
    j["post_processor"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                           "use_regex": False}
    kinds["qwen2"] = (j, {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"})

    # (d) Llama 2 / TinyLlama / Mistral v0.1 / Phi-3: Prepend + Replace, byte fallback.
    vocab, merges = sentencepiece_like(texts, 2000, 400)
    decoder = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    llama2 = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [added(0, "<unk>", True), added(1, "<s>", True), added(2, "</s>", True)],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
        "pre_tokenizer": None,
        "post_processor": template("<s>", 1),
        "decoder": decoder,
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None, "end_of_word_suffix": None, "fuse_unk": True,
                  "byte_fallback": True, "ignore_merges": False, "vocab": vocab, "merges": merges}}
    kinds["llama2"] = (llama2, {"bos_token": {"__type": "AddedToken", "content": "<s>"},
                                "eos_token": "</s>", "unk_token": "<unk>", "pad_token": None})
    # Without byte fallback: unknown characters become (fused) <unk>.
    vocab2, merges2 = sentencepiece_like(texts, 1500, 200, byte_fallback=False)
    j = json.loads(json.dumps(llama2))
    j["model"].update({"vocab": vocab2, "merges": [m.split(" ") if isinstance(m, str) else m
                                                   for m in merges2], "byte_fallback": False})
    kinds["llama2_unk"] = (j, None)

    # (e) Metaspace pre-tokenizer (Mistral v0.3 / newer Llama-2 conversions).
    for name, scheme, split in [("metaspace_first", "first", False), ("metaspace_always", "always", True)]:
        j = json.loads(json.dumps(llama2))
        j["normalizer"] = None
        j["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": scheme,
                              "split": split}
        j["decoder"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": scheme, "split": split}
        kinds[name] = (j, {"bos_token": "<s>", "eos_token": "</s>"})
    # Gemma: Replace(" " -> "▁") only, no prefix; added tokens with lstrip/rstrip.
    j = json.loads(json.dumps(llama2))
    j["normalizer"] = {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}
    j["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"}]}
    j["model"]["fuse_unk"] = False
    kinds["gemma"] = (j, {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<unk>"})

    # (f) Added tokens: lstrip / rstrip / single_word / normalized, special or not,
    # on a lowercasing normalizer.
    j = json.loads(json.dumps(llama2))
    j["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Lowercase"}, {"type": "Prepend", "prepend": "▁"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
    n = len(j["model"]["vocab"])
    j["added_tokens"] += [
        added(n, "<mask>", True, lstrip=True, rstrip=True),
        added(n + 1, "[SEP]", True, rstrip=True),
        added(n + 2, "<tool_call>", False, normalized=False),
        added(n + 3, "hello world", False, normalized=True),
        added(n + 4, "the", False, normalized=False, single_word=True),
        added(n + 5, "<|im_start|>", True),
        added(n + 6, "<|im_end|>", True, lstrip=True),
        added(n + 7, "[INST]", True, normalized=True),
    ]
    kinds["added"] = (j, {"bos_token": "<s>", "eos_token": "<|im_end|>"})

    # Other components: NFKC + Strip, Whitespace/Punctuation/Digits splits,
    # Split behaviours, a continuing-subword-prefix BPE with unk.
    tok = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Strip()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation(),
        pre_tokenizers.Digits(individual_digits=False)])
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=1500, special_tokens=["[UNK]"], continuing_subword_prefix="##",
        limit_alphabet=300, show_progress=False))
    tok.decoder = decoders.WordPiece(prefix="##")
    kinds["misc_wordpiece_style"] = (json.loads(tok.to_str()), None)

    tok = Tokenizer(models.BPE(unk_token="<unk>", end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents(),
                                           normalizers.Replace(Regex(r"\d+"), "0")])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Whitespace(),
        pre_tokenizers.Split(Regex(r"[aeiou]"), behavior="merged_with_previous"),
        pre_tokenizers.Split("-", behavior="merged_with_next"),
        pre_tokenizers.Split(Regex(r"\s"), behavior="removed", invert=False)])
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=1200, special_tokens=["<unk>"], end_of_word_suffix="</w>", limit_alphabet=200,
        show_progress=False))
    tok.decoder = decoders.BPEDecoder(suffix="</w>")
    kinds["misc_suffix"] = (json.loads(tok.to_str()), None)

    tok = train_bytelevel(texts, pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\p{L}+|\p{N}+"), behavior="contiguous", invert=True),
        pre_tokenizers.Split(Regex(r"(?i:ab|cd)"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=False)]), 1200, [],
        normalizer=normalizers.Sequence([normalizers.NFKD(), normalizers.Lowercase()]))
    kinds["misc_bytelevel"] = (json.loads(tok.to_str()), None)
    return kinds


def encode_case(tok, text, lossless):
    enc = tok.encode(text, add_special_tokens=False)
    table = char_to_byte_table(text)
    spans = [[table[b], table[e]] for b, e in enc.offsets]
    tok.encode_special_tokens = True
    text_only = tok.encode(text, add_special_tokens=False).ids
    tok.encode_special_tokens = False
    with_special = tok.encode(text, add_special_tokens=True).ids
    return {"text": text, "ids": enc.ids, "spans": spans, "ids_text_only": text_only,
            "ids_with_special": with_special,
            "decode": tok.decode(enc.ids), "decode_keep": tok.decode(enc.ids, skip_special_tokens=False)}


def main():
    source_dir, out_dir = sys.argv[1], sys.argv[2]
    corpus = read_corpus(os.path.join(source_dir, "test/runtime/hf/stress_corpus.txt"))
    kinds = build_all(source_dir, corpus)
    for name, (tok_json, config) in kinds.items():
        d = os.path.join(out_dir, name)
        os.makedirs(d, exist_ok=True)
        text = json.dumps(tok_json, ensure_ascii=False, indent=1)
        with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(text)
        if config is not None:
            with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
                json.dump(config, f, ensure_ascii=False)
        tok = Tokenizer.from_str(text)
        cases = [encode_case(tok, t, True) for t in corpus]
        cases.append(encode_case(tok, "\n".join(corpus), True))
        ref = {"tokenizers_version": tokenizers.__version__, "cases": cases}
        with open(os.path.join(d, "reference.json"), "w", encoding="utf-8") as f:
            json.dump(ref, f, ensure_ascii=False)
    with open(os.path.join(out_dir, "kinds.txt"), "w") as f:
        f.write("\n".join(kinds) + "\n")


if __name__ == "__main__":
    main()
