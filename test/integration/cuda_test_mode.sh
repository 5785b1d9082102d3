# Shared by the CUDA end-to-end scripts (sourced): the device they run on.
# cuda_test_mode MODE BIN WORK SIM_STEPS GPU_STEPS [SIM_DRIVER] sets $steps.
# MODE sim: the CPU simulator's driver and NVRTC (SIM_DRIVER); MODE gpu: the
# real driver, exit 77 (skipped) without a GPU.
cuda_test_mode() {
  case "$1" in
    sim)
      export LORART_CUDA_DRIVER="$6" LORART_NVRTC="$6" LORA_SIM_WORK="$3/sim"
      steps="$4" ;;
    gpu)
      if [ -z "${LORA_COMPILE_ONLY:-}" ] && "$2/lorart" version | grep -q "^cuda: unavailable"; then
        echo "SKIP: no CUDA device"; exit 77
      fi
      steps="$5" ;;
    *) echo "MODE must be sim or gpu"; exit 2 ;;
  esac
}

# LORA_COMPILE_ONLY=1 (bench/gpu/prepare.sh, on a machine without a GPU):
# the script stops once its plans are compiled — lorac there records them
# for the GPU machine, which has no lorac (bench/gpu/check.sh).
cuda_plans_compiled() {
  if [ -n "${LORA_COMPILE_ONLY:-}" ]; then echo "plans compiled"; exit 0; fi
}
