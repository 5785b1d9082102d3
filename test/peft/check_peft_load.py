#!/usr/bin/env python3
"""Cross-check against Hugging Face: an adapter trained and saved by lorart
(through liblorart.so, the C API, via ctypes) is loaded with
peft.PeftModel.from_pretrained on top of transformers' model (AutoModelForCausalLM:
Llama, Qwen3, ...) built from the same model directory, and both compute the loss of one batch: they
must agree. This checks the PEFT layout lorart writes and, at once, that
lorart's forward pass (RMSNorm, RoPE, GQA attention, SwiGLU, LoRA scaling)
is the Hugging Face model's. Then `lorart merge` folds the adapter: transformers
loads the merged directory (one file and sharded), computes PEFT's logits, and
its weights equal PEFT's merge_and_unload().

Usage: check_peft_load.py BIN_DIR LIBLORART CONFIG WORK_DIR [MIN_TRANSFORMERS]
Exits 77 (skipped) when torch, transformers or peft are not importable, or
transformers is older than MIN_TRANSFORMERS (e.g. 5.0 for Qwen3 through
scripts/setup.sh's /opt/lorac-hf5)."""
import ctypes
import json
import os
import random
import subprocess
import sys

try:
    import torch
    import transformers
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
except ImportError as e:  # not installed: skipped, not failed
    print("SKIP: %s" % e)
    sys.exit(77)

bin_dir, lib_path, config, work = sys.argv[1:5]
major = int(transformers.__version__.split(".")[0])
if not transformers.utils.is_torch_available():  # e.g. a torch too old for this transformers
    print("SKIP: transformers %s cannot use torch %s" % (transformers.__version__, torch.__version__))
    sys.exit(77)
if len(sys.argv) > 5 and major < int(sys.argv[5].split(".")[0]):
    print("SKIP: transformers %s is older than %s" % (transformers.__version__, sys.argv[5]))
    sys.exit(77)
print("transformers %s, peft %s, torch %s" % (transformers.__version__,
                                             __import__("peft").__version__, torch.__version__))
# transformers 5 renamed from_pretrained's torch_dtype to dtype.
F32 = {"dtype" if major >= 5 else "torch_dtype": torch.float32}
os.makedirs(work, exist_ok=True)
model_dir, plan, adapter = (os.path.join(work, n) for n in ("model", "plan.bin", "adapter"))
subprocess.run([os.path.join(bin_dir, "lorart"), "init-model", "--config", config, "-o", model_dir,
                "--dtype", "f32", "--seed", "4"], check=True, stdout=subprocess.DEVNULL)
subprocess.run([os.path.join(bin_dir, "lorac"), "compile", model_dir, "--dtype", "f32",
                "--lora-r", "8", "--lora-alpha", "16", "--lora-dropout", "0", "--packing=false",
                "--micro-batch", "2", "--seq-len", "16", "-o", plan], check=True)

lib = ctypes.CDLL(lib_path)
lib.lorart_open.restype = ctypes.c_void_p
lib.lorart_open.argtypes = [ctypes.c_char_p, ctypes.c_int]
lib.lorart_last_error.restype = ctypes.c_char_p
for name in ("lorart_bind_weights", "lorart_save_adapter", "lorart_train_step",
             "lorart_eval_step", "lorart_optimizer_step"):
    getattr(lib, name).restype = ctypes.c_int
lib.lorart_bind_weights.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint64]
lib.lorart_save_adapter.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
I32 = ctypes.POINTER(ctypes.c_int32)
U8 = ctypes.POINTER(ctypes.c_uint8)
D = ctypes.POINTER(ctypes.c_double)
lib.lorart_train_step.argtypes = [ctypes.c_void_p, I32, I32, I32, I32, U8, ctypes.c_uint64, D, D]
lib.lorart_eval_step.argtypes = [ctypes.c_void_p, I32, I32, I32, I32, U8, D, D]
lib.lorart_optimizer_step.argtypes = [ctypes.c_void_p, ctypes.c_float, ctypes.c_int64,
                                      ctypes.c_double, D]
lib.lorart_close.argtypes = [ctypes.c_void_p]


def check(rc):
    if rc != 0:
        sys.exit("FAIL: " + lib.lorart_last_error().decode())


rng = random.Random(0)
B, T = 2, 16
vocab = json.load(open(config))["vocab_size"]
tokens = [[rng.randrange(vocab) for _ in range(T)] for _ in range(B)]
targets = [row[1:] + [0] for row in tokens]
mask = [[1] * (T - 1) + [0] for _ in range(B)]
flat = lambda rows, ct: (ct * (B * T))(*[v for r in rows for v in r])
tok, tgt, msk = flat(tokens, ctypes.c_int32), flat(targets, ctypes.c_int32), flat(mask, ctypes.c_uint8)
pos = flat([list(range(T))] * B, ctypes.c_int32)

s = lib.lorart_open(plan.encode(), 2)
if not s:
    sys.exit("FAIL: " + lib.lorart_last_error().decode())
check(lib.lorart_bind_weights(s, model_dir.encode(), 1))
loss, count, norm = ctypes.c_double(), ctypes.c_double(), ctypes.c_double()
for step in range(1, 6):  # make lora_B non-zero
    check(lib.lorart_train_step(s, tok, pos, None, tgt, msk, step, ctypes.byref(loss), ctypes.byref(count)))
    check(lib.lorart_optimizer_step(s, 5e-2, step, count.value, ctypes.byref(norm)))
check(lib.lorart_eval_step(s, tok, pos, None, tgt, msk, ctypes.byref(loss), ctypes.byref(count)))
check(lib.lorart_save_adapter(s, adapter.encode(), model_dir.encode()))
lib.lorart_close(s)
lorart_loss = loss.value / count.value

model = AutoModelForCausalLM.from_pretrained(model_dir, **F32)
base_logits = model(input_ids=torch.tensor(tokens)).logits
model = PeftModel.from_pretrained(model, adapter)
model.eval()
with torch.no_grad():
    logits = model(input_ids=torch.tensor(tokens)).logits.float()
assert not torch.allclose(logits, base_logits), "the adapter changed nothing"
logp = torch.log_softmax(logits, dim=-1)
nll = -logp.gather(-1, torch.tensor(targets).unsqueeze(-1)).squeeze(-1)
m = torch.tensor(mask, dtype=torch.float32)
peft_loss = ((nll * m).sum() / m.sum()).item()
print("loss per target token: lorart %.6f, transformers + peft %.6f" % (lorart_loss, peft_loss))
if abs(peft_loss - lorart_loss) > 1e-4 * max(1.0, abs(peft_loss)):
    sys.exit("FAIL: the losses differ")

# lorart merge: transformers loads the merged directory (sharded too) and it
# computes PEFT's logits; its weights are PEFT's merge_and_unload().
peft_merged = {k: v.float() for k, v in model.merge_and_unload().state_dict().items()}
for name, extra in (("merged", []), ("merged_sharded", ["--max-shard-size", "0.0002"])):
    out = os.path.join(work, name)
    subprocess.run(["rm", "-rf", out], check=True)
    subprocess.run([os.path.join(bin_dir, "lorart"), "merge", "--base", model_dir, "--adapter",
                    adapter, "-o", out, "--dtype", "f32"] + extra, check=True)
    if extra:
        assert os.path.exists(os.path.join(out, "model.safetensors.index.json")), "not sharded"
    merged = AutoModelForCausalLM.from_pretrained(out, **F32)
    merged.eval()
    with torch.no_grad():
        merged_logits = merged(input_ids=torch.tensor(tokens)).logits.float()
    diff = (merged_logits - logits).abs().max().item()
    worst = max((merged.state_dict()[k].float() - v).abs().max().item() /
                max(v.abs().max().item(), 1e-30) for k, v in peft_merged.items())
    print("%s: max |logit difference| vs transformers + peft %.3g; weights vs "
          "merge_and_unload(): worst relative %.3g" % (name, diff, worst))
    if diff > 1e-4 * max(1.0, logits.abs().max().item()) or worst > 1e-6:
        sys.exit("FAIL: the merged model differs")
print("PASS")
