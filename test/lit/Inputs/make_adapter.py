#!/usr/bin/env python3
"""Writes a PEFT LoRA adapter directory for a Llama-family config (every
linear layer adapted, F32 tensors drawn from a seeded generator, lora_B
non-zero so the adapter changes the model): adapter_model.safetensors and
adapter_config.json. Options make the adapters lorart merge must handle or
refuse: --nf4 records an NF4 base in the metadata (as lorart writes it for a
QLoRA plan), --drop-b MODULE leaves one lora_B out, --set KEY=JSON sets an
adapter_config.json key (targeting cases)."""
import argparse
import json
import os
import random
import struct

MODULES = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


def shapes(c):
    d, i = c["hidden_size"], c["intermediate_size"]
    h = c["num_attention_heads"]
    kv = c.get("num_key_value_heads", h)
    hd = c.get("head_dim", d // h)
    return {"self_attn.q_proj": (h * hd, d), "self_attn.k_proj": (kv * hd, d),
            "self_attn.v_proj": (kv * hd, d), "self_attn.o_proj": (d, h * hd),
            "mlp.gate_proj": (i, d), "mlp.up_proj": (i, d), "mlp.down_proj": (d, i)}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("config")
    ap.add_argument("out")
    ap.add_argument("--r", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--nf4", action="store_true")
    ap.add_argument("--drop-b", default="")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON")
    a = ap.parse_args()
    c = json.load(open(a.config))
    rng = random.Random(a.seed)
    tensors, nf4 = [], []
    for layer in range(c["num_hidden_layers"]):
        for m, (out, inp) in shapes(c).items():
            module = "model.layers.%d.%s" % (layer, m)
            nf4.append(module + ".weight")
            tensors.append(("base_model.model.%s.lora_A.weight" % module, [a.r, inp],
                            [rng.uniform(-0.3, 0.3) for _ in range(a.r * inp)]))
            if module != a.drop_b:
                tensors.append(("base_model.model.%s.lora_B.weight" % module, [out, a.r],
                                [rng.uniform(-0.05, 0.05) for _ in range(out * a.r)]))
    meta = {"format": "pt"}
    if a.nf4:
        meta.update({"lorac.base_quantization": "nf4", "lorac.nf4_block_size": "64",
                     "lorac.nf4_double_quant_block": "256", "lorac.nf4_tensors": ",".join(nf4)})
    header, data = {"__metadata__": meta}, b""
    for name, shape, values in tensors:
        raw = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "adapter_model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)
    cfg = {"peft_type": "LORA", "r": a.r, "lora_alpha": a.alpha, "lora_dropout": 0.0,
           "target_modules": [m.split(".")[1] for m in MODULES], "bias": "none",
           "fan_in_fan_out": False, "task_type": "CAUSAL_LM", "base_model_name_or_path": None}
    for kv in a.set:
        key, value = kv.split("=", 1)
        cfg[key] = json.loads(value)
    json.dump(cfg, open(os.path.join(a.out, "adapter_config.json"), "w"), indent=2)


if __name__ == "__main__":
    main()
