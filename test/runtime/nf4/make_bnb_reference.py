#!/usr/bin/env python3
"""NF4 references from the real bitsandbytes (CPU): quantize_4bit with
quant_type="nf4", blocksize 64 and compress_statistics=True (double
quantization, 256 absmax per group), as QLoRA loads a base, and
dequantize_4bit. Writes one safetensors file the C++ test reads:

  weight   BF16 [n]        the input (normal, std 0.02, like a linear weight)
  codes    U8   [n/2]      packed 4-bit codes
  qabsmax  U8   [blocks]   the 8-bit codes of absmax - offset
  absmax2  F32  [groups]   the second-level scales
  offset   F32  [1]        the mean of the absmax
  code8    F32  [256]      the dynamic map (signed)
  dequant  BF16 [n]        dequantize_4bit's output

usage: make_bnb_reference.py OUT.safetensors   (exit 3: no bitsandbytes)
"""
import json
import struct
import sys

try:
    import torch
    import bitsandbytes
    import bitsandbytes.functional as F
except Exception as e:  # noqa: BLE001 - any import failure means "skip"
    print("bitsandbytes unavailable: %s" % e, file=sys.stderr)
    sys.exit(3)


def raw(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def main():
    torch.manual_seed(20261205)
    # 36 864 blocks of 64, as in the measurement (a 1536 x 1536 weight).
    w = (torch.randn(1536 * 1536) * 0.02).to(torch.bfloat16)
    q, st = F.quantize_4bit(w, blocksize=64, quant_type="nf4", compress_statistics=True)
    d = F.dequantize_4bit(q, st)
    tensors = {
        "weight": ("BF16", [w.numel()], raw(w)),
        "codes": ("U8", [q.numel()], raw(q.reshape(-1))),
        "qabsmax": ("U8", [st.absmax.numel()], raw(st.absmax)),
        "absmax2": ("F32", [st.state2.absmax.numel()], raw(st.state2.absmax.float())),
        "offset": ("F32", [1], raw(st.offset.float().reshape(1))),
        "code8": ("F32", [256], raw(st.state2.code.float())),
        "dequant": ("BF16", [d.numel()], raw(d.reshape(-1))),
    }
    assert st.state2.blocksize == 256 and st.blocksize == 64, (st.state2.blocksize, st.blocksize)
    header, offset, blobs = {}, 0, []
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    header["__metadata__"] = {"bitsandbytes": bitsandbytes.__version__,
                              "torch": torch.__version__}
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(sys.argv[1], "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


if __name__ == "__main__":
    main()
