#!/bin/sh
# lorac on the GPU machine (no MLIR there): hands back the plan that
# lorac-record.sh kept for exactly these arguments, or fails naming them.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=""; prev=""
for a in "$@"; do
  [ "$prev" = "-o" ] && out="$a"
  prev="$a"
done
key=$(for a in "$@"; do printf '%s\n' "${a##*/}"; done | sha256sum | cut -c1-24)
if [ -z "$out" ] || [ ! -f "$here/plans/$key.bin" ]; then
  echo "lorac (GPU bundle): no plan was recorded for: lorac $*" >&2
  exit 1
fi
cp "$here/plans/$key.bin" "$out"
