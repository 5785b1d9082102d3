"""Tokenizer throughput: lorart's tokenizer.json encoder against Hugging Face
`tokenizers`, both single-threaded, on the same multi-MB text.

    PYTHONPATH=/opt/lorac-pydeps python3 bench/tokenizer/bench_tokenizer.py BUILD_DIR [RUNS]

Builds (once, into $LORART_TOKBENCH_DIR or /tmp/lorart-tokbench) a Llama-3
style byte-level BPE tokenizer (the Llama 3 Split regex + ByteLevel,
ignore_merges, vocab 32000) trained with `tokenizers` on a text assembled
from local files (Python's standard library, /usr/share/common-licenses,
the repository's docs), then encodes that text line by line with
add_special_tokens=False and special tokens in the text read as text (HF
encode_special_tokens=True, lorart Encode without special ranges): HF with RAYON_NUM_THREADS=1 (the faster of
encode_batch and a loop of encode), lorart with BUILD_DIR/bin/
lorart_tokenizer_bench. Prints the median tokens/s of RUNS runs of each.
"""
import glob
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import time

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
TARGET_BYTES = 6 * 1024 * 1024


def assemble_text(path):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    files = sorted(glob.glob(os.path.join(root, "docs", "*.md")))
    files += sorted(glob.glob("/usr/share/common-licenses/*"))
    files += sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py")))
    parts, size = [], 0
    for p in files:
        if size >= TARGET_BYTES or not os.path.isfile(p):
            continue
        with open(p, encoding="utf-8", errors="replace") as f:
            t = f.read()
        parts.append(t)
        size += len(t.encode("utf-8"))
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(parts))


def lines_of(text):
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def train(text_path, out_path):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=32000, special_tokens=["<|begin_of_text|>", "<|eot_id|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    with open(text_path, encoding="utf-8") as f:
        tok.train_from_iterator(lines_of(f.read()), trainer)
    tok.save(out_path)


HF_TIMER = r"""
import json, statistics, sys, time
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
tok.encode_special_tokens = True  # as lorart's Encode: special tokens in the text are text
text = open(sys.argv[2], encoding="utf-8").read()
parts = text.split("\n")
lines = [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
runs = int(sys.argv[3])
out = {}
for method in ("encode_batch", "encode"):
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        if method == "encode_batch":
            n = sum(len(e.ids) for e in tok.encode_batch(lines, add_special_tokens=False))
        else:
            n = 0
            for l in lines:
                n += len(tok.encode(l, add_special_tokens=False).ids)
        rates.append(n / (time.perf_counter() - t0))
    out[method] = {"median": statistics.median(rates), "tokens": n, "rates": rates}
print(json.dumps(out))
"""


def main():
    build = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    work = os.environ.get("LORART_TOKBENCH_DIR", "/tmp/lorart-tokbench")
    os.makedirs(work, exist_ok=True)
    text_path = os.path.join(work, "bench.txt")
    tok_path = os.path.join(work, "tokenizer.json")
    if not os.path.exists(text_path):
        assemble_text(text_path)
    if not os.path.exists(tok_path):
        t0 = time.time()
        train(text_path, tok_path)
        print("trained %s in %.0f s" % (tok_path, time.time() - t0), file=sys.stderr)
    size = os.path.getsize(text_path)
    env = dict(os.environ, RAYON_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    hf = json.loads(subprocess.run([sys.executable, "-c", HF_TIMER, tok_path, text_path, str(runs)],
                                   env=env, check=True, capture_output=True, text=True).stdout)
    best = max(hf, key=lambda m: hf[m]["median"])
    def lorart_bench(spans):
        env = dict(os.environ)
        if spans:
            env["LORART_TOKBENCH_SPANS"] = "1"
        out = subprocess.run([os.path.join(build, "bin", "lorart_tokenizer_bench"), tok_path,
                              text_path, str(runs)], check=True, capture_output=True, text=True,
                             env=env).stdout
        last = out.strip().split("\n")[-1].split()
        return float(last[1]), int(last[3])
    lorart_rate, lorart_tokens = lorart_bench(False)
    spans_rate, _ = lorart_bench(True)
    if lorart_tokens != hf[best]["tokens"]:
        print("token counts differ: lorart %d, HF %d" % (lorart_tokens, hf[best]["tokens"]),
              file=sys.stderr)
        sys.exit(1)
    print("text: %s (%.1f MiB, %d tokens)" % (text_path, size / 2**20, lorart_tokens))
    print("| encoder (1 thread) | tokens/s (median of %d) |" % runs)
    print("| --- | --- |")
    for m in ("encode_batch", "encode"):
        print("| HF tokenizers %s `%s` | %.0f |" % (__import__("tokenizers").__version__, m,
                                                 hf[m]["median"]))
    print("| lorart `Tokenizer::Encode` per line | %.0f |" % lorart_rate)
    print("| lorart `Tokenizer::Encode` per line, with byte spans (as the trainer) | %.0f |"
          % spans_rate)
    print("ratio lorart / HF (best, %s): %.2fx; with spans %.2fx"
          % (best, lorart_rate / hf[best]["median"], spans_rate / hf[best]["median"]))


if __name__ == "__main__":
    main()
