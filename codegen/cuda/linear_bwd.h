//===- linear_bwd.h - The linear backward -*- C++ -*-===//
//
// `linear_bwd_x`, `lora_bwd`, `fused_linear_bwd` and `linear_bwd_w`:
// tensor-core templates and CUDA-core variants, in linear_bwd.cpp.
//
//===----------------------------------------------------------------------===//
#ifndef LORAC_CODEGEN_CUDA_LINEAR_BWD_H
#define LORAC_CODEGEN_CUDA_LINEAR_BWD_H

#include "cuda/common.h"

namespace lorac::cuda {

/// The backward of a linear layer with bf16 activations
/// (linear_bwd.cpp): `linear_bwd_x` (hasW, rank 0), `lora_bwd` (!hasW)
/// and `fused_linear_bwd` (both). Arguments: dy, [x], [w], [a, b], [dx],
/// [da, db, workspace], [dropout key]. `dx` false (no_dx, adapters only):
/// no dx argument and no `_dx` launch.
struct LinearBwd {
  int64_t m = 0, n = 0, k = 0, rank = 0;
  bool hasW = true, wNf4 = false, dx = true;
  int64_t blockSize = 0, doubleQuantBlock = 0;
  double scaling = 0, dropout = 0;
  std::string dyType, xType, dxType, daType, dbType;
  /// A, B and a dense W (the tensor-core template takes bf16 only).
  std::string aType = "__nv_bfloat16", bType = "__nv_bfloat16", wType = "__nv_bfloat16";
};
std::optional<Source> emitLinearBwd(const LinearBwd &g, std::string *why);
/// The device function `lora_dyw_tile<ROWS, N, K, LDY>(acc, dy, w, m0, k0,
/// smem)`: one 64x64 tile of dy·W on tensor cores (4 warps), W [N][K] dense
/// bf16, or staged by `wStage` (the NF4 decoder) when given.
std::string dyWTileFunction(const std::string &wStage);
/// The dynamic shared memory lora_dyw_tile needs (double-buffered tiles).
int64_t dyWTileSharedBytes();
/// The device function `lora_dytx_tile<M, N, K, LDY>(acc, dy, x, n0, k0,
/// smem)`: one 64x64 tile of dyᵀ·x (dw[n][k] = Σ_m dy[m][n]·x[m][k]) on
/// tensor cores (4 warps), and the dynamic shared memory it needs.
std::string dytXTileFunction();
int64_t dytXTileSharedBytes();
/// `linear_bwd_w`: dy [m, n], x [m, k] → dw [n, k] = dyᵀ·x on tensor cores.
std::optional<Source> emitLinearBwdW(int64_t m, int64_t n, int64_t k, const std::string &dyType,
                                     const std::string &xType, const std::string &dwType,
                                     std::string *why);


/// CUDA-core variants (with simt.h): for what the tensor-core template
/// refuses (f32 and f16 activations, bf16 with a rank above 64 or K not a
/// multiple of 8); same arguments, f32 sums in one fixed order.
std::optional<Source> emitSimtLinearBwd(const LinearBwd &g, std::string *why);
std::optional<Source> emitSimtLinearBwdW(int64_t m, int64_t n, int64_t k, const std::string &dyType,
                                         const std::string &xType, const std::string &dwType,
                                         std::string *why);

} // namespace lorac::cuda

#endif // LORAC_CODEGEN_CUDA_LINEAR_BWD_H
