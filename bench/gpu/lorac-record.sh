#!/bin/sh
# Stands in for lorac while bench/gpu/prepare.sh runs the GPU checks' scripts
# with LORA_COMPILE_ONLY=1: runs the real lorac ($LORAC_REAL) and keeps a copy
# of the plan it wrote under $LORAC_STORE, named by a hash of the arguments
# with every path cut to its last component (the scripts run from other
# directories on the GPU machine, where lorac-replay.sh finds it again).
set -eu
"$LORAC_REAL" "$@"
out=""; prev=""
for a in "$@"; do
  [ "$prev" = "-o" ] && out="$a"
  prev="$a"
done
[ -n "$out" ] || exit 0
key=$(for a in "$@"; do printf '%s\n' "${a##*/}"; done | sha256sum | cut -c1-24)
cp "$out" "$LORAC_STORE/$key.bin"
