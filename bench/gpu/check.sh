#!/usr/bin/env bash
# The gpu-labelled tests on the GPU machine, from a bundle made by
# bench/gpu/prepare.sh (a directory or its .tar.xz), run from the repository:
#   harness      every kernel of the twelve test plans against the CPU
#                backend (test/cuda_sim/sim_plan_test.sh; cuda_backend_ops_gpu)
#   e2e          QLoRA fine-tune on cuda vs cpu, checkpoints across devices
#                (cuda_executor_gpu_e2e)
#   objectives   DPO with replay and EWC on cuda vs cpu (cuda_objectives_gpu_e2e)
#   dtypes       f32 QLoRA, f16 packed, bf16 rank 128 (cuda_dtypes_gpu_e2e)
# Each runs to the end whatever the others do; a summary line per check,
# exit 1 if any failed. Logs under WORK (default /tmp/lorac-gpu-check).
# Usage: bench/gpu/check.sh BUNDLE [WORK] [CHECK...]
set -uo pipefail
bundle="$1"; work="${2:-/tmp/lorac-gpu-check}"; shift $(( $# >= 2 ? 2 : 1 ))
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$work"
if [ -f "$bundle" ]; then
  tar -C "$work" -xJf "$bundle"
  bundle="$work/$(basename "$bundle" .tar.xz)"
fi
dir=$(cd "$bundle" && pwd)
export LD_LIBRARY_PATH="$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
bin="$dir/check"
"$bin/lorart" version
checks=("$@")
[ ${#checks[@]} -gt 0 ] || checks=(harness e2e objectives dtypes)
cfgs="$root/test/lit/Inputs/configs"
status=0; summary=""
for c in "${checks[@]}"; do
  start=$(date +%s)
  case "$c" in
    harness) sh "$root/test/cuda_sim/sim_plan_test.sh" "$bin" "$bin/lorart_cuda_sim_tests" \
               "$cfgs/tiny-llama/config.json" "$work/harness" "$cfgs/tiny-qwen2/config.json" ;;
    e2e) sh "$root/test/integration/cuda_e2e_test.sh" gpu "$bin" "$root/examples/demo" "$work/e2e" ;;
    objectives) sh "$root/test/integration/cuda_objectives_e2e_test.sh" gpu "$bin" "$root/examples/demo" \
                  "$work/objectives" ;;
    dtypes) sh "$root/test/integration/cuda_dtypes_e2e_test.sh" gpu "$bin" "$root/examples/demo" \
              "$work/dtypes" ;;
    *) echo "unknown check '$c' (harness, e2e, objectives, dtypes)"; false ;;
  esac > "$work/$c.log" 2>&1
  rc=$?
  tail -n 40 "$work/$c.log"
  case $rc in 0) r=PASS ;; 77) r=SKIP ;; *) r="FAIL (exit $rc)"; status=1 ;; esac
  summary+="$c: $r in $(( $(date +%s) - start )) s"$'\n'
done
printf '%s' "$summary"
exit $status
