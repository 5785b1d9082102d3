#!/bin/sh
# runtime_builds_without_compiler: configures the project with
# -DLORAC_BUILD_COMPILER=OFF in a scratch directory, builds the `lorart`
# binary, and checks that it links no LLVM/MLIR. The configure must not look
# for LLVM/MLIR at all (CMAKE_DISABLE_FIND_PACKAGE_* makes it fail if it did).
# Usage: build_without_compiler.sh SOURCE_DIR SCRATCH_DIR
set -eu
src="$1"
dir="$2"
rm -rf "$dir"
cmake -S "$src" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DLORAC_BUILD_COMPILER=OFF -DLORAC_BUILD_TESTS=OFF \
  -DCMAKE_DISABLE_FIND_PACKAGE_MLIR=ON -DCMAKE_DISABLE_FIND_PACKAGE_LLVM=ON \
  > "$dir.configure.log" 2>&1 || { cat "$dir.configure.log"; exit 1; }
grep -q "lorac: compiler OFF (runtime only)" "$dir.configure.log" || {
  echo "FAIL: configure did not switch the compiler off"; cat "$dir.configure.log"; exit 1; }
cmake --build "$dir" --target lorart -j "$(nproc)" > "$dir.build.log" 2>&1 || {
  tail -50 "$dir.build.log"; exit 1; }
sh "$(dirname "$0")/check_no_llvm.sh" "$dir/bin/lorart"
"$dir/bin/lorart" --version
