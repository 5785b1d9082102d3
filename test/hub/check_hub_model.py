#!/usr/bin/env python3
"""A model directory laid out as the Hugging Face Hub ships current models,
end to end against the libraries that own each format:

- tokenizer.json: a byte-level BPE tokenizer with the Llama-3 pre-tokenizer,
  trained here with Hugging Face `tokenizers` on the demo corpus;
- every published chat template of test/runtime/jinja/templates: the token
  ids of lorart tokenize equal jinja2's rendering encoded by `tokenizers`;
- the model's own published chat template (Llama-3.1 Instruct in
  tokenizer_config.json; SmolLM2's ChatML in chat_template.jinja);
- config.json in the transformers 5 layout (rope_parameters, dtype) with a
  RoPE theta that is not the default, for lorac; transformers 4.x reads the
  same model through the 4.x layout of the same config.

Checks, on conversations with and without a system prompt, multi-turn,
unicode and text that spells special tokens:
1. `lorart tokenize --json` gives the token ids of jinja2's rendering
   (transformers' environment) encoded by `tokenizers`, and the loss mask of
   an independent computation: the assistant turn is what rendering
   messages[:i+1] adds to messages[:i] with add_generation_prompt, from the
   reply's first byte through the end-of-turn token;
2. text in a message that spells a special token is encoded as text;
3. `lorart eval` (plan compiled by lorac from the 5.x config) equals the loss
   transformers' LlamaForCausalLM computes on those ids and that mask;
4. `lorart run` trains a few steps; peft loads the adapter on transformers'
   model and computes lorart's loss; `lorart merge` writes a directory
   transformers loads with the same loss; `lorart generate` replies with the
   model's template.

Usage: check_hub_model.py BIN_DIR SOURCE_DIR WORK_DIR PYDEPS_DIR
Exits 77 (skipped) when tokenizers/jinja2 (in PYDEPS_DIR) or torch and
transformers (system) are missing. Phases that need `tokenizers` run in a
child process with PYTHONPATH=PYDEPS_DIR: the pinned transformers of the
system refuses a newer `tokenizers` on its path.
"""
import json
import os
import shutil
import subprocess
import sys

SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
            "<|eot_id|>", "<|im_start|>", "<|im_end|>", "<|finetune_right_pad_id|>"]
# The other families' special tokens (and their BOS/EOS/UNK/PAD texts), so
# that every published template in test/runtime/jinja/templates writes
# special tokens this tokenizer has.
EXTRA_SPECIALS = ["<s>", "</s>", "<unk>", "<pad>", "<bos>", "<eos>", "<|endoftext|>",
                  "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_CALLS]",
                  "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "<start_of_turn>", "<end_of_turn>",
                  "<|user|>", "<|assistant|>", "<|system|>", "<|end|>", "<think>", "</think>",
                  "<|eom_id|>", "<|python_tag|>"]
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+"
                r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"},
     {"role": "assistant", "content": "Paris is the capital of France."}],
    [{"role": "system", "content": "You answer in one short sentence."},
     {"role": "user", "content": "Name a river in Egypt."},
     {"role": "assistant", "content": "The Nile."},
     {"role": "user", "content": "And one in Brazil?"},
     {"role": "assistant", "content": "  The Amazon, of course.  "}],
    [{"role": "user", "content": "Déjà vu, naïve café — 東京 and emoji 👩‍💻 too"},
     {"role": "assistant", "content": "Ça va: 3.14159 + 42 = 45.14159\n\tdone"}],
    [{"role": "user", "content": "Write <|eot_id|> and <|im_end|> literally, please."},
     {"role": "assistant", "content": "Here: <|eot_id|> <|im_end|> <|start_header_id|>"}],
]


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit("FAIL: %s\n%s%s" % (" ".join(cmd), r.stdout, r.stderr))
    return r.stdout


# ---------------------------------------------------------------- phase: build
def transformers_env():
    """jinja2 configured as transformers' apply_chat_template configures it."""
    import jinja2
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    from datetime import datetime

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


def phase_build(src, work):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=SPECIALS + EXTRA_SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    lines = [l.rstrip("\n") for l in open(os.path.join(src, "examples/demo/corpus.txt"))]
    tok.train_from_iterator(lines, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", tok.token_to_id("<|begin_of_text|>"))])
    assert tok.get_vocab_size() == 512, tok.get_vocab_size()
    templates = os.path.join(src, "test/runtime/jinja/templates")
    for name, template_file, eos, in_config in (
            ("llama31", "Llama-3.3-70B-Instruct.jinja", "<|eot_id|>", True),
            ("smollm2", "SmolLM2-1.7B-Instruct.jinja", "<|im_end|>", False)):
        d = os.path.join(work, name)
        os.makedirs(d, exist_ok=True)
        tok.save(os.path.join(d, "tokenizer.json"))
        template = open(os.path.join(templates, template_file)).read()
        config = {"bos_token": "<|begin_of_text|>", "eos_token": eos,
                  "pad_token": "<|finetune_right_pad_id|>",
                  "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 256,
                  "added_tokens_decoder": {
                      str(tok.token_to_id(s)): {"content": s, "special": True, "lstrip": False,
                                                "rstrip": False, "normalized": False,
                                                "single_word": False} for s in SPECIALS}}
        if in_config:
            config["chat_template"] = template
        else:  # transformers 5 saves the template beside the config
            with open(os.path.join(d, "chat_template.jinja"), "w") as f:
                f.write(template)
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump(config, f, indent=2)
        with open(os.path.join(d, "conversations.jsonl"), "w") as f:
            for c in CONVERSATIONS:
                f.write(json.dumps({"messages": c}, ensure_ascii=False) + "\n")
        reference(d, template, tok, eos)
    published_templates(src, work, tok)


def published_templates(src, work, tok):
    """Every published template of the interpreter's tests, with each
    family's special tokens: the ids of each conversation (or the error the
    template raises), for lorart tokenize to match."""
    from jinja2.exceptions import TemplateError
    tests = os.path.join(src, "test/runtime/jinja")
    specials_of = json.load(open(os.path.join(tests, "conversations.json")))["templates"]
    env = transformers_env()
    for name, specials in sorted(specials_of.items()):
        d = os.path.join(work, "templates", name[:-len(".jinja")])
        os.makedirs(d, exist_ok=True)
        tok.save(os.path.join(d, "tokenizer.json"))
        template = open(os.path.join(tests, "templates", name)).read()
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump(dict(specials, chat_template=template), f)
        compiled = env.from_string(template)
        out = []
        for conv in CONVERSATIONS:
            try:
                text = compiled.render(messages=conv, add_generation_prompt=False, tools=None,
                                       documents=None, **specials)
            except TemplateError as e:
                out.append({"error": str(e)})
                continue
            literal = any(s in m["content"] for m in conv for s in SPECIALS + EXTRA_SPECIALS)
            ids = (encode_template_specials_only(tok, text, conv)[0] if literal
                   else tok.encode(text, add_special_tokens=False).ids)
            out.append({"ids": ids, "text": text})
        with open(os.path.join(d, "reference.json"), "w") as f:
            json.dump(out, f)


def reference(d, template, tok, eos):
    """Ids and mask of each conversation, computed without lorart's code."""
    env = transformers_env()
    compiled = env.from_string(template)
    specials = {"bos_token": "<|begin_of_text|>", "eos_token": eos,
                "pad_token": "<|finetune_right_pad_id|>"}

    def render(messages, gen):
        return compiled.render(messages=messages, add_generation_prompt=gen, tools=None,
                               documents=None, **specials)

    out = []
    for conv in CONVERSATIONS:
        literal = any(s in m["content"] for m in conv for s in SPECIALS)
        text = render(conv, False)
        target_chars = []  # [begin, end) of each assistant turn's targets
        for i, m in enumerate(conv):
            if m["role"] != "assistant":
                continue
            prefix = render(conv[:i], True)
            upto = render(conv[:i + 1], False)
            assert text.startswith(upto) and upto.startswith(prefix), "not a prefix template"
            turn = upto[len(prefix):]
            # The reply as the template writes it (Llama-3 trims it), then the
            # template's text through the first end-of-turn token.
            body = m["content"] if m["content"] in turn else m["content"].strip()
            start = turn.index(body)
            end = start + len(body)
            every = SPECIALS + EXTRA_SPECIALS
            ends = [turn.find(s, end) for s in every if turn.find(s, end) >= 0]
            if ends:
                first = min(ends)
                end = first + max(len(s) for s in every if turn.startswith(s, first))
            target_chars.append((len(prefix) + start, len(prefix) + end))
        if literal:
            # HF would read the user's "<|eot_id|>" as the token: lorart must
            # not. The reference encodes message text without special tokens.
            ids, offsets = encode_template_specials_only(tok, text, conv)
        else:
            enc = tok.encode(text, add_special_tokens=False)
            ids, offsets = enc.ids, enc.offsets
        mask = [int(any(b < e_ and b_ < e for b_, e_ in target_chars)) if b < e else 0
                for b, e in offsets]
        if mask:
            mask[0] = 0
        out.append({"ids": ids, "mask": mask, "text": text})
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(out, f)


def encode_template_specials_only(tok, text, conv):
    """Encodes `text` as `tokenizers` does (special tokens split the text
    first, each piece between them is normalized, pre-tokenized and merged
    whole), except that a special token is only recognised outside the
    messages' contents: the contents' bytes are text."""
    # The contents' character ranges, in order of appearance.
    content, pos = [], 0
    for m in conv:
        for body in (m["content"], m["content"].strip()):
            k = text.find(body, pos) if body else -1
            if k >= 0:
                content.append((k, k + len(body)))
                pos = k + len(body)
                break
    every = sorted(SPECIALS + EXTRA_SPECIALS, key=len, reverse=True)
    cuts, i = [], 0  # (begin, end) of the template's special tokens
    while i < len(text):
        hit = next((s for s in every if text.startswith(s, i)), None)
        if hit and not any(b < i + len(hit) and i < e for b, e in content):
            cuts.append((i, i + len(hit)))
            i += len(hit)
        else:
            i += 1
    tok.encode_special_tokens = True
    ids, offsets, pos = [], [], 0
    for b, e in cuts + [(len(text), len(text))]:
        if b > pos:
            enc = tok.encode(text[pos:b], add_special_tokens=False)
            ids += enc.ids
            offsets += [(x + pos, y + pos) for x, y in enc.offsets]
        if e > b:
            ids.append(tok.token_to_id(text[b:e]))
            offsets.append((b, e))
        pos = e
    tok.encode_special_tokens = False
    return ids, offsets


# ----------------------------------------------------------------- phase: loss
def phase_loss(model_dir, ref_file, out_file, adapter=None):
    import torch
    from transformers import LlamaForCausalLM
    model = LlamaForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    if adapter:
        from peft import PeftModel
        model = PeftModel.from_pretrained(model, adapter).eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for r in json.load(open(ref_file)):
            ids = torch.tensor([r["ids"]])
            labels = torch.tensor([[t if m else -100 for t, m in zip(r["ids"], r["mask"])]])
            logits = model(ids).logits.double()
            shift = torch.nn.functional.cross_entropy(
                logits[0, :-1], labels[0, 1:], ignore_index=-100, reduction="sum")
            total += shift.item()
            count += int((labels[0, 1:] != -100).sum())
    json.dump({"loss": total / count, "targets": count}, open(out_file, "w"))


# ----------------------------------------------------------------- main
def main():
    if sys.argv[1] == "--phase":
        if sys.argv[2] == "build":
            phase_build(sys.argv[3], sys.argv[4])
        else:
            phase_loss(*sys.argv[3:])
        return
    bin_dir, src, work, pydeps = sys.argv[1:5]
    env = dict(os.environ, PYTHONPATH=pydeps)
    probe = subprocess.run([sys.executable, "-c", "import sys, tokenizers, jinja2; sys.exit("
                            "tuple(map(int, tokenizers.__version__.split('.')[:2])) < (0, 19))"],
                           env=env, capture_output=True)
    if probe.returncode != 0:
        print("SKIP: tokenizers >= 0.19 and jinja2 are not installed in %s" % pydeps)
        sys.exit(77)
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        print("SKIP: %s" % e)
        sys.exit(77)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    run([sys.executable, os.path.abspath(__file__), "--phase", "build", src, work], env=env)
    lorart, lorac = os.path.join(bin_dir, "lorart"), os.path.join(bin_dir, "lorac")

    theta = 500000.0
    config4 = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
               "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
               "num_key_value_heads": 2, "num_hidden_layers": 2, "max_position_embeddings": 256,
               "rms_norm_eps": 1e-5, "vocab_size": 512, "tie_word_embeddings": False,
               "bos_token_id": 0, "eos_token_id": 4, "rope_theta": theta,
               "torch_dtype": "float32", "attention_bias": False, "mlp_bias": False}
    config5 = {k: v for k, v in config4.items() if k not in ("rope_theta", "torch_dtype")}
    config5.update({"rope_parameters": {"rope_theta": theta, "rope_type": "default"},
                    "dtype": "float32", "transformers_version": "5.0.0"})
    failures = []
    # Every published template: lorart tokenize's ids equal jinja2 +
    # tokenizers (a template that raises fails in both).
    tdir = os.path.join(work, "templates")
    for name in sorted(os.listdir(tdir)):
        d = os.path.join(tdir, name)
        ref = json.load(open(os.path.join(d, "reference.json")))
        same = 0
        for i, (conv, r) in enumerate(zip(CONVERSATIONS, ref)):
            data = os.path.join(d, "conv%d.jsonl" % i)
            with open(data, "w") as f:
                f.write(json.dumps({"messages": conv}, ensure_ascii=False) + "\n")
            p = subprocess.run([lorart, "tokenize", d, "--data", data, "--json"],
                               capture_output=True, text=True)
            if "error" in r:
                if p.returncode == 0:
                    failures.append("%s conversation %d: jinja2 raised %r, lorart did not"
                                    % (name, i, r["error"]))
                else:
                    same += 1
                continue
            if p.returncode != 0:
                failures.append("%s conversation %d: %s" % (name, i, p.stderr.strip()))
                continue
            got = json.loads(p.stdout)["ids"]
            if got != r["ids"]:
                failures.append("%s conversation %d: ids differ\n lorart %s\n ref    %s\n text %r"
                                % (name, i, got, r["ids"], r["text"]))
            else:
                same += 1
        print("template %s: %d/%d conversations identical" % (name, same, len(ref)))
    for name in ("llama31", "smollm2"):
        d = os.path.join(work, name)
        with open(os.path.join(work, "config4.json"), "w") as f:
            json.dump(config4, f)
        run([lorart, "init-model", "--config", os.path.join(work, "config4.json"), "-o",
             os.path.join(d, "weights"), "--dtype", "f32", "--seed", "7"])
        # The 4.x directory (for transformers 4.x) and the 5.x one (for lorac)
        # hold the same weights and tokenizer.
        hf4 = os.path.join(d, "hf4")
        os.makedirs(hf4)
        for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
            if os.path.exists(os.path.join(d, f)):
                shutil.copy(os.path.join(d, f), hf4)
        shutil.copy(os.path.join(d, "weights/model.safetensors"), d)
        shutil.copy(os.path.join(d, "weights/model.safetensors"), hf4)
        with open(os.path.join(hf4, "config.json"), "w") as f:
            json.dump(config4, f)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config5, f)

        ref = json.load(open(os.path.join(d, "reference.json")))
        out = run([lorart, "tokenize", d, "--data", os.path.join(d, "conversations.jsonl"),
                   "--json"])
        got = [json.loads(l) for l in out.splitlines()]
        for i, (g, r) in enumerate(zip(got, ref)):
            if g["ids"] != r["ids"]:
                failures.append("%s conversation %d: ids differ\n lorart %s\n ref    %s\n text %r"
                                % (name, i, g["ids"], r["ids"], r["text"]))
            elif g["mask"] != r["mask"]:
                failures.append("%s conversation %d: masks differ\n lorart %s\n ref    %s\n"
                                " pieces %s" % (name, i, g["mask"], r["mask"], g["pieces"]))
        if len(got) != len(ref):
            failures.append("%s: %d records, expected %d" % (name, len(got), len(ref)))
        # 2. is the last conversation: its reference encodes the message
        # text with no special token, so equal ids prove lorart did too.
        print("%s: ids and masks of %d conversations equal the reference" % (name, len(got)))

        # 3. The loss: lorac compiles the 5.x config; transformers 4.x reads 4.x.
        plan = os.path.join(d, "plan.bin")
        run([lorac, "compile", d, "--dtype", "f32", "--micro-batch", "1", "--seq-len", "256",
             "--lora-r", "4", "--lora-alpha", "8", "--lora-dropout", "0", "-o", plan])
        ev = run([lorart, "eval", plan, "--data", os.path.join(d, "conversations.jsonl"),
                  "--base", d, "--threads", "2"])
        lorart_loss = float(ev.split("loss ")[1].split(",")[0])
        run([sys.executable, os.path.abspath(__file__), "--phase", "loss", hf4,
             os.path.join(d, "reference.json"), os.path.join(d, "hf_loss.json")])
        hf = json.load(open(os.path.join(d, "hf_loss.json")))
        rel = abs(lorart_loss - hf["loss"]) / hf["loss"]
        print("%s: loss lorart %.6f, transformers %.6f (%d targets), relative difference %.2e"
              % (name, lorart_loss, hf["loss"], hf["targets"], rel))
        if rel > 2e-5:
            failures.append("%s: loss %.6f != transformers %.6f" % (name, lorart_loss, hf["loss"]))

        # 4. Train, load the adapter with peft, merge, generate.
        adapter = os.path.join(d, "adapter")
        run([lorart, "run", plan, "--data", os.path.join(d, "conversations.jsonl"), "--base", d,
             "-o", adapter, "--steps", "4", "--lr", "1e-2", "--warmup-steps", "0",
             "--no-progress", "--threads", "2"])
        ev = run([lorart, "eval", plan, "--data", os.path.join(d, "conversations.jsonl"),
                  "--base", d, "--adapter", adapter, "--threads", "2"])
        tuned = float(ev.split("loss ")[1].split(",")[0])
        run([sys.executable, os.path.abspath(__file__), "--phase", "loss", hf4,
             os.path.join(d, "reference.json"), os.path.join(d, "peft_loss.json"), adapter])
        peft_loss = json.load(open(os.path.join(d, "peft_loss.json")))["loss"]
        merged = os.path.join(d, "merged")
        run([lorart, "merge", "--base", d, "--adapter", adapter, "-o", merged])
        for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
            if os.path.exists(os.path.join(d, f)) != os.path.exists(os.path.join(merged, f)):
                failures.append("%s: merge did not copy %s" % (name, f))
        # transformers 4.x reads the merged weights through the 4.x config.
        with open(os.path.join(merged, "config.json"), "w") as f:
            json.dump(config4, f)
        run([sys.executable, os.path.abspath(__file__), "--phase", "loss", merged,
             os.path.join(d, "reference.json"), os.path.join(d, "merged_loss.json")])
        merged_loss = json.load(open(os.path.join(d, "merged_loss.json")))["loss"]
        print("%s: after 4 steps: loss lorart %.6f, peft %.6f, merged (transformers) %.6f"
              % (name, tuned, peft_loss, merged_loss))
        if tuned > lorart_loss - 1e-3:
            failures.append("%s: 4 steps did not lower the loss (%.6f -> %.6f)"
                            % (name, lorart_loss, tuned))
        for what, value in (("peft", peft_loss), ("merged", merged_loss)):
            if abs(value - tuned) / tuned > 2e-5:
                failures.append("%s: %s loss %.6f != lorart %.6f" % (name, what, value, tuned))
        gen = run([lorart, "generate", plan, "--base", d, "--adapter", adapter,
                   "--prompt", "Name a river.", "--max-new-tokens", "4", "--threads", "2"])
        if "> Name a river." not in gen:
            failures.append("%s: generate printed %r" % (name, gen))
    if failures:
        print("\n".join(failures))
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()
