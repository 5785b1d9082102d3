#!/usr/bin/env python3
"""Compares two PEFT adapter files (safetensors) value by value.

Usage: compare_adapters.py A.safetensors B.safetensors [--tol X]
Prints the largest absolute difference and exits 1 when it exceeds --tol
(default 0: bitwise equal), or when the tensors' names or shapes differ.
Reads the format by hand (no numpy needed): an 8-byte header length, a JSON
header, raw little-endian data.
"""
import json
import struct
import sys
from array import array


def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            sys.exit(f"{path}: {name} is {t['dtype']}, this script reads F32 adapters")
        a, b = t["data_offsets"]
        values = array("f")
        values.frombytes(data[a:b])
        out[name] = (tuple(t["shape"]), values)
    return out


def main():
    args = sys.argv[1:]
    tol = 0.0
    if "--tol" in args:
        i = args.index("--tol")
        tol = float(args[i + 1])
        del args[i:i + 2]
    a, b = read(args[0]), read(args[1])
    if a.keys() != b.keys():
        sys.exit(f"FAIL: the adapters hold different tensors: {sorted(a.keys() ^ b.keys())}")
    worst, where, scale = 0.0, "", 0.0
    for name in sorted(a):
        (sa, va), (sb, vb) = a[name], b[name]
        if sa != sb:
            sys.exit(f"FAIL: {name} has shape {sa} and {sb}")
        for x, y in zip(va, vb):
            scale = max(scale, abs(x))
            d = abs(x - y)
            if d > worst:
                worst, where = d, name
    print(f"largest difference {worst:.3g} (in {where or '-'}; largest value {scale:.3g})")
    if worst > tol:
        sys.exit(f"FAIL: {worst:.3g} > {tol:.3g}")


if __name__ == "__main__":
    main()
