#!/bin/sh
# Every CUDA kernel the compiler emits for a test plan compiles with NVRTC to
# CUBIN for sm_80 and sm_90a (no GPU needed), and a second pass is served by
# the on-disk cache, and none spills registers (ptxas's report). Skipped (77)
# where NVRTC is not installed.
# Usage: cuda_kernels_test.sh BIN_DIR CONFIG WORK_DIR
set -eu
bin="$1"; cfg="$2"; work="$3"
rm -rf "$work"; mkdir -p "$work"
# Every kernel of a bf16, f32 and f16 plan has a source (the f32 and f16 ones
# from the CUDA-core templates).
for dtype in bf16 f32 f16; do
  "$bin/lorac" compile "$cfg" --dtype $dtype --micro-batch 2 --seq-len 16 --target cuda \
    -o "$work/$dtype.bin"
  if ! out=$("$bin/lorart" check-kernels "$work/$dtype.bin" --arch sm_80 --arch sm_90a \
             --kernel-cache "$work/cache" 2>&1); then
    case "$out" in *"NVRTC is not installed"*) echo "SKIP: $out"; exit 77 ;; esac
    echo "$out"; exit 1
  fi
  echo "$dtype: $out"
  case "$out" in "compiled 0 "*) echo "FAIL: no kernel compiled"; exit 1 ;; esac
  case "$out" in *"; 0 kernels have no CUDA source"*) ;; *) echo "FAIL: kernels without source"; exit 1 ;; esac
done
# ptxas's report: no kernel of a QLoRA plan (the fused NF4 GEMM with its
# adapter and dropout included) spills registers or needs a stack frame.
"$bin/lorac" compile "$cfg" --dtype bf16 --quantize-base nf4 --lora-dropout 0.05 \
  --micro-batch 2 --seq-len 16 --target cuda -o "$work/nf4.bin"
"$bin/lorart" check-kernels "$work/nf4.bin" --no-spills > "$work/resources.txt"
grep -q "lora_gemm_fwd_.*nf4.*_drop sm_90a: .* 0 bytes spill stores" "$work/resources.txt" ||
  { echo "FAIL: no spill report for the fused NF4 GEMM"; cat "$work/resources.txt"; exit 1; }
grep lora_gemm_fwd "$work/resources.txt" | sort -u | head -4
# Nor does any kernel of the f32 plan (the CUDA-core templates).
"$bin/lorart" check-kernels "$work/f32.bin" --arch sm_90a --no-spills > "$work/resources_f32.txt"
grep -q "lora_simt_gemm_fwd_.* sm_90a: .* 0 bytes spill stores" "$work/resources_f32.txt" ||
  { echo "FAIL: no spill report for the CUDA-core GEMM"; cat "$work/resources_f32.txt"; exit 1; }
again=$("$bin/lorart" check-kernels "$work/f32.bin" --kernel-cache "$work/cache")
echo "again: $again"
case "$again" in *" from the cache"*) ;; *) exit 1 ;; esac
n=$(echo "$again" | sed 's/compiled \([0-9]*\) kernel builds (\([0-9]*\) from.*/\1 \2/')
set -- $n
[ "$1" = "$2" ] || { echo "FAIL: $1 builds, only $2 from the cache"; exit 1; }
echo PASS
