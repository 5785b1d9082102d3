#!/usr/bin/env bash
# The coverage-guided fuzz runs of ctest (test/fuzz/CMakeLists.txt).
#   run.sh build SOURCE_DIR FUZZ_DIR
#     configures SOURCE_DIR with clang, -DLORAC_FUZZ=ON (libFuzzer, ASan,
#     UBSan; runtime only) in FUZZ_DIR and builds the fuzz_* targets.
#   run.sh run SOURCE_DIR FUZZ_DIR NAME SECONDS
#     runs FUZZ_DIR/bin/fuzz_NAME for SECONDS from the seed corpus and the
#     regression inputs; new corpus entries go to a scratch folder, never into
#     the source tree. A crash, leak, sanitizer report, timeout (20 s) or
#     out-of-memory (2 GiB) is a finding: the input is kept under
#     FUZZ_DIR/findings/NAME/ and the run fails.
# Exit 77 (ctest: skipped) where clang or libFuzzer is missing.
set -euo pipefail
mode="$1"
src="$2"
dir="$3"

if [ "$mode" = build ]; then
  cc=$(command -v clang || true)
  cxx=$(command -v clang++ || true)
  if [ -z "$cc" ] || [ -z "$cxx" ]; then
    echo "fuzz: SKIP: clang is not installed (scripts/setup.sh installs clang and libclang-rt-dev)"
    exit 77
  fi
  probe=$(mktemp -d)
  trap 'rm -rf "$probe"' EXIT
  printf '#include <cstdint>\n#include <cstddef>\nextern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }\n' \
    > "$probe/p.cc"
  if ! "$cxx" -fsanitize=fuzzer,address,undefined "$probe/p.cc" -o "$probe/p" 2> "$probe/err"; then
    cat "$probe/err"
    echo "fuzz: SKIP: $cxx cannot link libFuzzer (scripts/setup.sh installs libclang-rt-dev)"
    exit 77
  fi
  mkdir -p "$dir"
  # Rebuilds reuse the configured tree (ninja rebuilds what changed).
  if [ ! -f "$dir/build.ninja" ]; then
    CC="$cc" CXX="$cxx" cmake -S "$src" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DLORAC_FUZZ=ON -DLORAC_BUILD_COMPILER=OFF -DLORAC_BUILD_TESTS=OFF \
      > "$dir/configure.log" 2>&1 || { cat "$dir/configure.log"; exit 1; }
  fi
  targets=$(sed -n 's/^set(LORAC_FUZZ_TARGETS \(.*\))$/\1/p' "$src/test/fuzz/CMakeLists.txt")
  args=()
  for t in $targets; do args+=(--target "fuzz_$t"); done
  # One job: ctest runs other tests beside this one.
  cmake --build "$dir" "${args[@]}" -j "${LORAC_FUZZ_BUILD_JOBS:-1}" > "$dir/build.log" 2>&1 || {
    tail -60 "$dir/build.log"; exit 1; }
  echo "fuzz: built $targets in $dir/bin with clang, libFuzzer, ASan and UBSan"
  exit 0
fi

if [ "$mode" = run ]; then
  name="$4"
  seconds="$5"
  bin="$dir/bin/fuzz_$name"
  if [ ! -x "$bin" ]; then
    echo "fuzz: SKIP: $bin was not built (see the fuzz_build test)"
    exit 77
  fi
  work="$dir/work/$name"
  findings="$dir/findings/$name"
  rm -rf "$work"
  mkdir -p "$work" "$findings"
  inputs=("$src/test/fuzz/corpus/$name")
  if [ -d "$src/test/fuzz/regressions/$name" ]; then
    inputs+=("$src/test/fuzz/regressions/$name")
  fi
  export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1:abort_on_error=0:symbolize=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  set +e
  # A fixed seed (LORAC_FUZZ_SEED to vary it by hand): ctest explores the
  # same way each run, so a finding is not luck of the draw.
  "$bin" -seed="${LORAC_FUZZ_SEED:-1}" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$findings/" "$work" "${inputs[@]}" > "$dir/$name.log" 2>&1
  rc=$?
  set -e
  tail -25 "$dir/$name.log"
  if [ $rc -ne 0 ]; then
    echo "fuzz: FINDING in fuzz_$name (exit $rc); the input is in $findings/:"
    ls -l "$findings"
    echo "fuzz: fix it, then add the input to test/fuzz/regressions/$name/ (replayed by fuzz_corpus_$name)"
    exit 1
  fi
  echo "fuzz: fuzz_$name ran ${seconds}s with no finding"
  exit 0
fi

echo "usage: run.sh build SOURCE_DIR FUZZ_DIR | run SOURCE_DIR FUZZ_DIR NAME SECONDS" >&2
exit 2
