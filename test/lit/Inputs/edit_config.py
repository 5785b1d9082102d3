#!/usr/bin/env python3
"""Writes a copy of a config.json with some keys changed, for importer tests.

    edit_config.py IN OUT EDIT...

EDIT is `key=VALUE` (VALUE is JSON; a dotted key reaches into a nested
object, which is created when missing) or `-key` (removes the key)."""
import json
import sys


def main():
    src, dst, edits = sys.argv[1], sys.argv[2], sys.argv[3:]
    with open(src) as f:
        config = json.load(f)
    for edit in edits:
        remove = edit.startswith("-")
        key, _, value = (edit[1:] if remove else edit).partition("=")
        *parents, last = key.split(".")
        obj = config
        for p in parents:
            obj = obj.setdefault(p, {})
        if remove:
            obj.pop(last, None)
        else:
            obj[last] = json.loads(value)
    with open(dst, "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
