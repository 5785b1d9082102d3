//===- common.h - What every CUDA C++ template shares -*- C++ -*-===//
//
// The launch description every template returns, and the helpers and
// preludes they share (common.cpp). Plain data in, CUDA C++ out, so a
// template's decisions (tile shape, which operands it accepts) are testable
// through the emitted source without MLIR.
//
//===----------------------------------------------------------------------===//
#ifndef LORAC_CODEGEN_CUDA_COMMON_H
#define LORAC_CODEGEN_CUDA_COMMON_H

#include "lorart/base/strings.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace lorac::cuda {

/// A further launch of the same source (train.bin's Kernel.cuda_next): run
/// after the previous one, with the same arguments.
struct Step {
  std::string entry;
  int64_t grid = 1, gridY = 1, gridZ = 1, block = 256, shared = 0;
};

/// A kernel's CUDA C++ source with its launch geometry.
struct Source {
  std::string code, entry;
  int64_t grid = 1, gridY = 1, gridZ = 1, block = 256, shared = 0;
  std::vector<Step> next;
  /// Arena scratch in bytes (0: none), passed after the outputs.
  int64_t workspace = 0;
};

/// Shared by the templates: `$KEY$` substitution, literals that parse back
/// to exactly the value, rounding up, and the base prelude (lora_ld/st,
/// lora_round for float, bf16 and f16 elements).
std::string subst(std::string tpl, const std::map<std::string, std::string> &vars);
std::string floatLiteral(float v);
std::string doubleLiteral(double v);
std::string floatTable(const float *v, int n);
int64_t roundUp(int64_t v, int64_t to);
const char *basePrelude();

/// `{N}` / `{N:e}` formatting (lorart/base/strings.h, shared with the
/// runtime).
using lorart::FormatArg;
inline std::string format(const std::string &tpl, const std::vector<FormatArg> &args) {
  return lorart::Format(tpl, args);
}

/// The NF4 decoding shared by the GEMM templates: `tables` gets the
/// codebook (and the dynamic map with double quantization) as __constant__
/// arrays; the returned statements set `float <var>` to the absmax of block
/// `blk` from `const unsigned char* wbytes` (a packed [n, k] weight), with
/// double quantization's two separately rounded operations.
std::string nf4AbsmaxCode(int64_t n, int64_t k, int64_t blockSize, int64_t doubleQuantBlock,
                          const std::string &var, const std::string &indent,
                          std::string *tables);

/// The portability layer shared by the tensor-core templates (after the
/// base prelude): lora_ld/st,
/// mma.sync, ldmatrix (plain and .trans), cp.async, the dropout mask and
/// bf16 packing, each with its CUDA-simulator counterpart.
const char *mmaPrelude();

} // namespace lorac::cuda

#endif // LORAC_CODEGEN_CUDA_COMMON_H
