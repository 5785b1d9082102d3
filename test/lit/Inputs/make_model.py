#!/usr/bin/env python3
"""Writes a Hugging Face model directory for importer tests: config.json and
safetensors files whose headers list every tensor the config implies. Tensor
data is not written: the files are extended with truncate() to their full
size, which makes them sparse (a 7B model costs no disk space). Mutations
produce the malformed inputs of the error tests."""
import argparse
import json
import os
import shutil
import struct

DTYPE_SIZE = {"F32": 4, "F16": 2, "BF16": 2, "I8": 1, "U8": 1}


def expected_tensors(c):
    arch = c["architectures"][0]
    d, i, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    h = c["num_attention_heads"]
    kv = c.get("num_key_value_heads", h)
    hd = c.get("head_dim", d // h)
    qwen3 = arch == "Qwen3ForCausalLM"
    if qwen3 and "head_dim" not in c:
        hd = 128  # Qwen3Config's default
    qkv_bias = arch == "Qwen2ForCausalLM" or c.get("attention_bias", False)
    o_bias = arch in ("LlamaForCausalLM", "Qwen3ForCausalLM") and c.get("attention_bias", False)
    t = [("model.embed_tokens.weight", [v, d])]
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        t.append((p + "input_layernorm.weight", [d]))
        for name, out, inp, bias in [("self_attn.q_proj", h * hd, d, qkv_bias),
                                     ("self_attn.k_proj", kv * hd, d, qkv_bias),
                                     ("self_attn.v_proj", kv * hd, d, qkv_bias),
                                     ("self_attn.o_proj", d, h * hd, o_bias)]:
            t.append((p + name + ".weight", [out, inp]))
            if bias:
                t.append((p + name + ".bias", [out]))
        if qwen3:  # per-head RMSNorm of q and k
            t.append((p + "self_attn.q_norm.weight", [hd]))
            t.append((p + "self_attn.k_norm.weight", [hd]))
        t.append((p + "post_attention_layernorm.weight", [d]))
        for name, out, inp in [("mlp.gate_proj", i, d), ("mlp.up_proj", i, d),
                               ("mlp.down_proj", d, i)]:
            t.append((p + name + ".weight", [out, inp]))
    t.append(("model.norm.weight", [d]))
    if not c.get("tie_word_embeddings", False):
        t.append(("lm_head.weight", [v, d]))
    return t


def numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def write_file(path, tensors, dtype_of, corrupt=None):
    header, off = {}, 0
    for name, shape in tensors:
        dt = dtype_of(name)
        size = numel(shape) * DTYPE_SIZE[dt]
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + size]}
        off += size
    header["__metadata__"] = {"format": "pt"}
    data_size = off
    if corrupt == "out-of-range":
        last = tensors[-1][0]
        b, e = header[last]["data_offsets"]
        header[last]["data_offsets"] = [b + 4, e + 4]
    elif corrupt == "overlap":
        name = tensors[1][0]
        b, e = header[name]["data_offsets"]
        header[name]["data_offsets"] = [b - 2, e - 2]
    text = json.dumps(header).encode()
    if corrupt == "bad-json":
        text = text[: len(text) // 2]
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        length = len(text)
        if corrupt == "header-too-large":
            length = 1 << 40
        f.write(struct.pack("<Q", length))
        f.write(text)
        f.truncate(8 + len(text) + data_size)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("config")
    ap.add_argument("out")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--dtype", default="BF16")
    ap.add_argument("--drop", action="append", default=[], help="leave a tensor out")
    ap.add_argument("--reshape", action="append", default=[], help="NAME=d0,d1")
    ap.add_argument("--tensor-dtype", action="append", default=[], help="NAME=DTYPE")
    ap.add_argument("--extra", action="append", default=[], help="add an unused tensor")
    ap.add_argument("--corrupt", choices=["bad-json", "out-of-range", "overlap", "header-too-large"])
    ap.add_argument("--missing-shard", action="store_true")
    a = ap.parse_args()

    with open(a.config) as f:
        c = json.load(f)
    if os.path.exists(a.out):
        shutil.rmtree(a.out)
    os.makedirs(a.out)
    shutil.copy(a.config, os.path.join(a.out, "config.json"))

    tensors = [(n, s) for n, s in expected_tensors(c) if n not in a.drop]
    reshape = dict(r.split("=") for r in a.reshape)
    tensors = [(n, [int(x) for x in reshape[n].split(",")] if n in reshape else s)
               for n, s in tensors]
    tensors += [(n, [4]) for n in a.extra]
    tdt = dict(r.split("=") for r in a.tensor_dtype)
    dtype_of = lambda n: tdt.get(n, a.dtype)

    if a.shards == 1:
        write_file(os.path.join(a.out, "model.safetensors"), tensors, dtype_of, a.corrupt)
        return
    per = (len(tensors) + a.shards - 1) // a.shards
    weight_map = {}
    for k in range(a.shards):
        part = tensors[k * per:(k + 1) * per]
        name = f"model-{k + 1:05d}-of-{a.shards:05d}.safetensors"
        for n, _ in part:
            weight_map[n] = name
        if a.missing_shard and k == a.shards - 1:
            continue
        write_file(os.path.join(a.out, name), part, dtype_of, a.corrupt if k == 0 else None)
    with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f, indent=2)


if __name__ == "__main__":
    main()
