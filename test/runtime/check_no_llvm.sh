#!/bin/sh
# runtime_links_no_llvm: the runtime binary must not depend on LLVM or MLIR,
# neither as a shared library (NEEDED entries) nor statically (llvm:: or
# mlir:: symbols).
# Usage: check_no_llvm.sh BINARY
set -u
bin="$1"
if [ ! -f "$bin" ]; then
  echo "FAIL: $bin does not exist"
  exit 1
fi
needed=$(readelf -d "$bin") || { echo "FAIL: readelf -d $bin failed"; exit 1; }
needed=$(printf '%s\n' "$needed" | grep NEEDED)
echo "NEEDED entries of $bin:"
printf '%s\n' "$needed"
bad=$(printf '%s\n' "$needed" | grep -i -E 'llvm|mlir')
if [ -n "$bad" ]; then
  echo "FAIL: $bin links LLVM/MLIR:"
  printf '%s\n' "$bad"
  exit 1
fi
if command -v nm >/dev/null 2>&1; then
  syms=$(nm -A "$bin" 2>/dev/null | grep -E ' _ZN(K|St)?4(llvm|mlir)' | head -5)
  if [ -n "$syms" ]; then
    echo "FAIL: $bin contains LLVM/MLIR symbols (statically linked):"
    printf '%s\n' "$syms"
    exit 1
  fi
fi
echo "PASS: no LLVM/MLIR in $bin"
