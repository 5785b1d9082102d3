//===- gemm.h - The linear forward (`linear_fwd`, `fused_linear_fwd`, `lm_head_fwd`) -*- C++ -*-===//
//
// The tensor-core template (mma.sync bf16, NF4 dequantized in the main loop,
// the adapter in the epilogue) and its CUDA-core variant, in gemm.cpp.
//
//===----------------------------------------------------------------------===//
#ifndef LORAC_CODEGEN_CUDA_GEMM_H
#define LORAC_CODEGEN_CUDA_GEMM_H

#include "cuda/common.h"

namespace lorac::cuda {

/// y[m, n] = x·Wᵀ (+ bias) (+ scaling·bf16(drop(x)·Aᵀ)·Bᵀ): the forward of
/// `linear_fwd` (rank 0) and `fused_linear_fwd`.
struct GemmFwd {
  int64_t m = 0, n = 0, k = 0, rank = 0;
  bool bias = false;
  std::string xType, biasType, yType; ///< CUDA element types
  /// The adapter's A and B (the tensor-core template takes bf16 only).
  std::string aType = "__nv_bfloat16", bType = "__nv_bfloat16";
  bool wNf4 = false;                  ///< else W is dense in xType
  int64_t blockSize = 0, doubleQuantBlock = 0;
  double scaling = 0, dropout = 0;
  /// Block tile: 0 chooses (128 for large problems, else 64); tests force
  /// 64 or 128 to exercise both on small shapes.
  int64_t tile = 0;
};

/// The tensor-core (mma.sync bf16) kernel for `g`, or nothing with the reason
/// in `why` when the template does not cover the case (f32 or f16
/// activations, K not a multiple of 8, NF4 blocks under 8 elements, rank
/// above 64, or above 32 with forced 128x128 tiles): those kernels keep no CUDA source.
std::optional<Source> emitGemmFwd(const GemmFwd &g, std::string *why);

/// CUDA-core variants (with simt.h): for what the tensor-core template
/// refuses (f32 and f16 activations, bf16 with a rank above 64 or K not a
/// multiple of 8); same arguments, f32 sums in one fixed order.
std::optional<Source> emitSimtGemmFwd(const GemmFwd &g, std::string *why);

} // namespace lorac::cuda

#endif // LORAC_CODEGEN_CUDA_GEMM_H
