#!/usr/bin/env python3
"""Renders every chat template in templates/ over every case of
conversations.json with jinja2 configured exactly as transformers'
apply_chat_template does (utils/chat_template_utils.py: _compile_jinja_template
and render_jinja_template), and writes the results as JSON:

  [{"template": NAME, "case": NAME, "add_generation_prompt": bool,
    "ok": bool, "text": STR | "error": STR, "error_type": STR}, ...]

Usage: render_reference.py TEMPLATES_DIR CONVERSATIONS_JSON OUTPUT_JSON NOW_UNIX
       render_reference.py --snippets SNIPPETS_JSON OUTPUT_JSON NOW_UNIX
         (SNIPPETS_JSON: [{"source": TEMPLATE, "context": {...}}, ...];
          output: [{"ok": bool, "text"/"error"/"error_type"}, ...])

Run it only with the pinned jinja2: PYTHONPATH=$LORAC_PYDEPS_DIR python3 ...
strftime_now formats NOW_UNIX (local time), as the C++ side does, so that the
two renders agree even across midnight.
"""
import json
import os
import sys
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment


def compile_template(source, now):
    # The environment of transformers' _compile_jinja_template.
    class AssistantTracker(Extension):
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

        @jinja2.pass_eval_context
        def _generation_support(self, context, caller):
            return caller()

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.fromtimestamp(now).strftime(format)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(source)


def render_snippets(snippets_path, output_path, now):
    with open(snippets_path, encoding="utf-8") as f:
        snippets = json.load(f)
    results = [attempt(lambda: compile_template(snippet["source"], now).render(
        **snippet.get("context", {}))) for snippet in snippets]
    with open(output_path, "w", encoding="utf-8") as f:
        json.dump(results, f, ensure_ascii=True, indent=0)


def attempt(render):
    """{"ok": True, "text"} or, for any error (every error is a result),
    {"ok": False, "error", "error_type"}."""
    try:
        return {"ok": True, "text": render()}
    except Exception as e:  # noqa: BLE001
        return {"ok": False, "error": str(e), "error_type": type(e).__name__}


def main():
    if sys.argv[1] == "--snippets":
        render_snippets(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    templates_dir, conversations_path, output_path, now = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    with open(conversations_path, encoding="utf-8") as f:
        spec = json.load(f)
    results = []
    for name in sorted(spec["templates"]):
        with open(os.path.join(templates_dir, name), encoding="utf-8", newline="") as f:
            source = f.read()
        special = {k: v for k, v in spec["templates"][name].items() if v is not None}
        template = compile_template(source, now)
        for case in spec["cases"]:
            for agp in (False, True):
                kwargs = dict(special)
                kwargs.update(case.get("kwargs", {}))
                entry = {"template": name, "case": case["name"], "add_generation_prompt": agp}
                entry.update(attempt(lambda: template.render(
                    messages=case["messages"], tools=case.get("tools"), documents=None,
                    add_generation_prompt=agp, **kwargs)))
                results.append(entry)
    with open(output_path, "w", encoding="utf-8") as f:
        json.dump(results, f, ensure_ascii=True, indent=0)


if __name__ == "__main__":
    main()
