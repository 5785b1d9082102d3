#!/usr/bin/env bash
# Installs what lorac needs on Debian 12, idempotently: only missing packages
# are installed, so a second run does nothing.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git python3
  llvm-19-dev llvm-19-tools libmlir-19-dev mlir-19-tools
  libflatbuffers-dev flatbuffers-compiler
  libsentencepiece-dev sentencepiece libpcre2-dev libutf8proc-dev
  libgtest-dev nlohmann-json3-dev libcli11-dev
  libdnnl-dev ocl-icd-opencl-dev
  zlib1g-dev libzstd-dev libedit-dev libcurl4-openssl-dev libxml2-dev
  libxxhash-dev
  openmpi-bin libopenmpi-dev
  clang libclang-rt-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present"
fi

# Python test tools for the Hugging Face cross-check (test/peft): Debian's
# torch, pinned transformers/peft from PyPI. Not fatal: without them that one
# test is reported as skipped.
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "setup: installing python3-torch"
  $SUDO apt-get update -qq || true
  $SUDO apt-get install -y -qq --no-install-recommends python3-torch python3-pip || \
    echo "setup: warning: python3-torch could not be installed (the PEFT cross-check will be skipped)"
fi
if /usr/bin/python3 -c "import torch" 2>/dev/null && \
   ! /usr/bin/python3 -c "import transformers, peft" 2>/dev/null; then
  echo "setup: installing transformers and peft (pip)"
  /usr/bin/python3 -m pip install -q --break-system-packages \
    "transformers==4.35.2" "peft==0.6.2" "accelerate==0.24.1" || \
    echo "setup: warning: transformers/peft could not be installed (the PEFT cross-check will be skipped)"
fi

# The references of the tokenizer.json and chat-template tests (Hugging Face
# `tokenizers`, `jinja2`), in a folder of their own (pip --target): the
# pinned transformers above accepts only an older `tokenizers`. The tests
# read them with PYTHONPATH=/opt/lorac-pydeps and skip without them.
PYDEPS=/opt/lorac-pydeps
if ! PYTHONPATH=$PYDEPS /usr/bin/python3 -c "
import sys, tokenizers, jinja2
# The system's own (older) tokenizers does not count: the tests need these.
sys.exit(not (tokenizers.__file__.startswith('$PYDEPS/') and tokenizers.__version__ == '0.22.1'
              and jinja2.__file__.startswith('$PYDEPS/')))" 2>/dev/null; then
  echo "setup: installing tokenizers and jinja2 into $PYDEPS (pip --target)"
  if ! /usr/bin/python3 -m pip --version >/dev/null 2>&1; then
    $SUDO apt-get update -qq || true
    $SUDO apt-get install -y -qq --no-install-recommends python3-pip || true
  fi
  $SUDO /usr/bin/python3 -m pip install -q --target "$PYDEPS" --upgrade \
    "tokenizers==0.22.1" "jinja2==3.1.6" || \
    echo "setup: warning: tokenizers/jinja2 could not be installed (their differential tests will be skipped)"
fi

# transformers 5 and a current peft for the cross-checks of the model
# families the pinned transformers above does not know (Qwen3) and of
# transformers 5 itself, in a third folder (pip --target, no dependencies:
# huggingface_hub and tokenizers come from $PYDEPS, torch from the system).
# The tests read PYTHONPATH=/opt/lorac-hf5:/opt/lorac-pydeps and skip
# without them.
HF5=/opt/lorac-hf5
if ! PYTHONPATH=$HF5:$PYDEPS /usr/bin/python3 -c "
import sys, transformers, peft
sys.exit(not (transformers.__file__.startswith('$HF5/') and transformers.__version__ == '5.0.0'
              and peft.__version__ == '0.21.2'))" 2>/dev/null; then
  echo "setup: installing transformers 5 and peft into $HF5 (pip --target)"
  $SUDO /usr/bin/python3 -m pip install -q --no-deps --target "$HF5" --upgrade \
    "transformers==5.0.0" "peft==0.21.2" "accelerate==1.16.0" || \
    echo "setup: warning: transformers 5/peft could not be installed (the Qwen3 and transformers 5 cross-checks will be skipped)"
fi

# bitsandbytes, the reference of the NF4 cross-check (test/runtime/
# nf4_bnb_test.cc, which skips without it), in a folder of its own (pip
# --target, no dependencies: torch and numpy come from the system).
BNB=/opt/lorac-bnb
if ! PYTHONPATH=$BNB /usr/bin/python3 -c "
import sys, bitsandbytes
sys.exit(not (bitsandbytes.__file__.startswith('$BNB/') and bitsandbytes.__version__ == '0.50.2'))" \
    2>/dev/null; then
  echo "setup: installing bitsandbytes into $BNB (pip --target)"
  $SUDO /usr/bin/python3 -m pip install -q --no-deps --target "$BNB" --upgrade \
    "bitsandbytes==0.50.2" || \
    echo "setup: warning: bitsandbytes could not be installed (the NF4 cross-check will be skipped)"
fi

if [ -e /usr/local/cuda/include/cuda.h ]; then
  echo "setup: CUDA toolkit found at /usr/local/cuda (CUDA backend sources can be checked)"
else
  echo "setup: no CUDA toolkit at /usr/local/cuda: the CUDA backend is off at build time"
fi
