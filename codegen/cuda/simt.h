//===- simt.h - What the CUDA-core templates share --------------*- C++ -*-===//
//
// The CUDA-core (SIMT) variants of the GEMM-shaped kernels and attention
// live in their families' files (gemm.cpp, linear_bwd.cpp, lm_head.cpp,
// attention.cpp) beside the tensor-core ones; these are the pieces they
// share: the device prelude (operand rounding, the 64x64 tile product over
// two element functors), the frozen weight's and drop(x)'s device
// functions, and the substitution variables of every product template.
//
//===----------------------------------------------------------------------===//
#ifndef LORAC_CODEGEN_CUDA_SIMT_H
#define LORAC_CODEGEN_CUDA_SIMT_H

#include <cstdint>
#include <map>
#include <string>

namespace lorac::cuda::simt {

/// Device code after mmaPrelude(): lora_opnd, lora_simt_tile and friends.
extern const char *kSimtPrelude;

/// `float lora_w(const WT* w, long row, long col)`: element (row, col) of
/// the frozen weight [n, k] as the CPU backend's tile of it (NF4 dequantized,
/// rounded to bf16 when the activations are bf16); NF4 tables into `tables`.
std::string weightFunction(bool nf4, int64_t n, int64_t k, int64_t blockSize,
                           int64_t doubleQuantBlock, const std::string &wType,
                           const std::string &actType, std::string *tables);
/// drop(x) element e of x rounded to x's type, as the CPU's DropInput.
std::string dropFunction(const std::string &xType, double dropout);
/// "f32", "f16", "bf16" (else "x") for a CUDA element type.
std::string tag(const std::string &t);
bool floatType(const std::string &t);
/// 64-wide tiles covering `v`.
int64_t tiles(int64_t v);
/// "_nf4b<block>[dq<group>]" for an NF4 weight, else `dense`.
std::string weightTag(bool nf4, int64_t blockSize, int64_t doubleQuantBlock, const char *dense);
/// The variables every product template shares.
std::map<std::string, std::string> productVars(int64_t m, int64_t n, int64_t k, int64_t rank,
                                               double scaling, bool drop, const std::string &wfn,
                                               const std::string &xdfn, const std::string &tables);

} // namespace lorac::cuda::simt

#endif // LORAC_CODEGEN_CUDA_SIMT_H
