"""Shared by the CUDA end-to-end scripts (cuda_*_e2e_test.sh): reading a
run's metrics and adapter, and the two kinds of CUDA-vs-CPU comparison.

Why two kinds. A bf16 fine-tune is a chaotic map: two devices that round
partial sums in different orders start a few parts in 1e4 apart, and every
Adam step amplifies that (an element whose gradient is near zero moves by
about the learning rate in a direction the rounding decides). Measured on an
H200 against the CPU backend (2026-12-04): after one step from the same state
the adapters agree to 6e-7, after 20 steps lora_A differs by 3.7e-2 and a DPO
run's gradient norm by 11% at a loss spike, with every kernel matching the
CPU on random inputs. So:

* `step`: one step from the same state (step 1 of two runs, or a run
  resumed on one device from the other's checkpoint) — the devices' kernels
  compared, with the tight tolerance of one step's rounding;
* `trajectory`: the straight runs side by side — the same training, with a
  tolerance for the drift (f32 runs have none to speak of and keep the tight
  one).
"""
import json
import struct
import sys


def metrics(d):
    """The training rows of D/metrics.jsonl (those with a loss)."""
    return [json.loads(l) for l in open(d + "/metrics.jsonl") if '"loss"' in l]


def adapter(d):
    """D/adapter_model.safetensors as {name: tuple of floats} (F32 only)."""
    raw = open(d + "/adapter_model.safetensors", "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (name, info["dtype"])
        b, e = info["data_offsets"]
        out[name] = struct.unpack("<%df" % ((e - b) // 4), raw[8 + n + b:8 + n + e])
    return out


def rel(a, b):
    """‖a − b‖ / ‖b‖."""
    num = sum((x - y) ** 2 for x, y in zip(a, b)) ** 0.5
    den = sum(y * y for y in b) ** 0.5
    return num / max(den, 1e-30)


class Checks:
    def __init__(self):
        self.failed = []

    def close(self, what, got, want, tol, scale=None, names=("cuda", "cpu")):
        """|got − want| ≤ tol · scale (default |want|); prints both, as NAMES."""
        scale = abs(want) if scale is None else scale
        ok = abs(got - want) <= tol * scale
        print("%s: %s %.6f, %s %.6f%s" % (what, names[0], got, names[1], want,
                                          "" if ok else "  <- differs"))
        if not ok:
            self.failed.append(what + " differs")

    def adapters(self, what, got, want, tol_a, tol_b):
        """Worst normalized difference per kind (lora_A, lora_B) within bounds."""
        assert sorted(got) == sorted(want), (what, sorted(got), sorted(want))
        worst = {"lora_A": 0.0, "lora_B": 0.0}
        for k in want:
            kind = "lora_A" if ".lora_A." in k else "lora_B"
            worst[kind] = max(worst[kind], rel(got[k], want[k]))
        print("%s: %d tensors, worst normalized difference lora_A %.2e (bound %.2g), lora_B %.2e "
              "(bound %.2g)" % (what, len(want), worst["lora_A"], tol_a, worst["lora_B"], tol_b))
        if worst["lora_A"] > tol_a or worst["lora_B"] > tol_b:
            self.failed.append(what + " differ")

    def identical(self, what, a, b):
        """Bitwise the same (the same device twice: no race, no atomics)."""
        print("%s: %s" % (what, "identical" if a == b else "DIFFERENT"))
        if a != b:
            self.failed.append(what + " are not reproducible")

    def finish(self):
        if self.failed:
            print("FAIL: " + "; ".join(self.failed))
            sys.exit(1)
        print("OK")
