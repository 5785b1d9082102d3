#!/usr/bin/env python3
"""Which modules PEFT gives a LoRA adapter, for adapter_config.json targeting
keys (target_modules, layers_to_transform, layers_pattern, exclude_modules).

lorac's hf::TargetRule (runtime/src/lorart/io/hf_config.h) implements PEFT's
rule for the compiler (lora-attach-adapters), `lorac import --adapter-config`
and `lorart merge`. This script asks the real peft, on a tiny Llama built by
transformers, and records the answers in a fixture that the C++ test
HfConfig.TargetRuleSelectsWhatPeftSelects reads:

  target_rule_cases.py --write FIXTURE   record peft's answers
  target_rule_cases.py --check FIXTURE   peft's answers equal the fixture's

A case PEFT refuses when the LoraConfig is built is "refused"; a case where
get_peft_model finds no module to adapt has "selected": [].
Exit 77 (skipped) where torch, transformers or peft are missing.
"""
import json
import sys
import warnings

CASES = [
    ("default (no target_modules)", {}),
    ("list", {"target_modules": ["q_proj", "v_proj"]}),
    ("all-linear", {"target_modules": "all-linear"}),
    ("all-linear, any case", {"target_modules": "ALL-Linear"}),
    ("regex", {"target_modules": r".*\.layers\.[01]\..*(q|down)_proj"}),
    ("regex, Python named group", {"target_modules": r".*layers\.(?P<n>1)\.self_attn\.(q|k)_proj"}),
    ("regex matching nothing whole", {"target_modules": "q_proj"}),
    ("dotted entry, one layer", {"target_modules": ["self_attn.q_proj"], "layers_to_transform": [1]}),
    ("layer as an integer", {"target_modules": ["q_proj", "up_proj"], "layers_to_transform": 2}),
    ("empty layer list", {"target_modules": ["q_proj"], "layers_to_transform": []}),
    ("lm_head listed whole, layers", {"target_modules": ["lm_head", "q_proj"], "layers_to_transform": [0]}),
    ("full name listed whole, layers",
     {"target_modules": ["model.layers.2.mlp.up_proj", "k_proj"], "layers_to_transform": [0]}),
    ("layers_pattern", {"target_modules": ["q_proj"], "layers_to_transform": [1], "layers_pattern": "layers"}),
    ("layers_pattern list", {"target_modules": ["o_proj"], "layers_to_transform": [0, 2],
                             "layers_pattern": ["h", "layers"]}),
    ("layers_pattern that finds no layer",
     {"target_modules": ["q_proj"], "layers_to_transform": [0], "layers_pattern": "blocks"}),
    ("layers_pattern alone", {"target_modules": ["q_proj"], "layers_pattern": "layers"}),
    ("all-linear with layers", {"target_modules": "all-linear", "layers_to_transform": [0]}),
    ("regex with layers", {"target_modules": ".*q_proj", "layers_to_transform": [0]}),
    ("regex with layers_pattern", {"target_modules": ".*q_proj", "layers_pattern": "layers"}),
    ("exclude by name", {"target_modules": ["q_proj", "v_proj", "o_proj"],
                         "exclude_modules": ["model.layers.0.self_attn.v_proj", "o_proj"]}),
    ("exclude by regex", {"target_modules": "all-linear", "exclude_modules": r".*\.mlp\..*"}),
    ("exclude with layers", {"target_modules": ["gate_proj", "down_proj"], "layers_to_transform": [1, 2],
                             "exclude_modules": ["model.layers.2.mlp.down_proj"]}),
    ("suffix must follow a dot", {"target_modules": ["proj"]}),
]


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("--write", "--check"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        import torch
        import peft
        import transformers
        from peft import LoraConfig, get_peft_model
        from peft.tuners.lora import LoraLayer
    except ImportError as e:
        print(f"skipped: {e}")
        return 77
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=3,
                                   num_attention_heads=2, num_key_value_heads=1, vocab_size=64)
    modules = None
    cases = []
    for name, keys in CASES:
        model = transformers.LlamaForCausalLM(cfg)
        if modules is None:
            modules = sorted(n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear))
        case = {"name": name, "config": keys}
        try:
            lc = LoraConfig(r=2, lora_alpha=4, task_type="CAUSAL_LM", **keys)
        except (ValueError, TypeError) as e:
            case["refused"] = True
            case["peft_message"] = str(e).splitlines()[0]
            cases.append(case)
            continue
        try:
            pm = get_peft_model(model, lc)
            prefix = "base_model.model."
            case["selected"] = sorted(n[len(prefix):] for n, m in pm.named_modules()
                                      if isinstance(m, LoraLayer))
        except ValueError as e:
            case["selected"] = []
            case["peft_message"] = str(e).splitlines()[0][:200]
        cases.append(case)
    result = {"peft": peft.__version__, "transformers": transformers.__version__,
              "modules": modules, "cases": cases}
    path = sys.argv[2]
    if sys.argv[1] == "--write":
        with open(path + ".tmp", "w") as f:
            json.dump(result, f, indent=1, sort_keys=True)
            f.write("\n")
        import os
        os.replace(path + ".tmp", path)
        print(f"wrote {len(cases)} cases from peft {peft.__version__} to {path}")
        return 0
    with open(path) as f:
        recorded = json.load(f)
    bad = 0
    for got, want in zip(cases, recorded["cases"]):
        for k in ("name", "config", "refused", "selected"):
            if got.get(k) != want.get(k):
                print(f"case '{got['name']}': {k}: peft {peft.__version__} says {got.get(k)}, "
                      f"the fixture (peft {recorded['peft']}) says {want.get(k)}")
                bad += 1
    if len(cases) != len(recorded["cases"]) or modules != recorded["modules"]:
        print("the fixture's cases or modules differ from this script's; run --write")
        bad += 1
    print(f"{len(cases)} cases, {bad} differences from {path}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
