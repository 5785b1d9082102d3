//===- attention.h - Attention forward and backward -*- C++ -*-===//
//
// FlashAttention-2 style on tensor cores, and a warp per row on CUDA
// cores, in attention.cpp.
//
//===----------------------------------------------------------------------===//
#ifndef LORAC_CODEGEN_CUDA_ATTENTION_H
#define LORAC_CODEGEN_CUDA_ATTENTION_H

#include "cuda/common.h"

namespace lorac::cuda {

/// Causal grouped-query attention forward (`attention_fwd`), FlashAttention-2
/// style on tensor cores. q [B, T, H·D], k, v [B, T, KV·D] bf16, optional
/// segment ids [B, T] → o [B, T, H·D].
struct AttentionFwd {
  int64_t batch = 0, seq = 0, heads = 0, kvHeads = 0, headDim = 0;
  double scale = 0;
  bool causal = true;
  int64_t slidingWindow = 0; ///< 0: none
  std::string segType;        ///< "" without segment ids, else "int"/"long long"
  std::string qType, oType;
};
std::optional<Source> emitAttentionFwd(const AttentionFwd &a, std::string *why);
/// Its backward (`attention_bwd`): dout, q, k, v, [seg] → dq, dk, dv, in two
/// launches sharing a workspace with each row's logsumexp and rowsum(dO∘O).
std::optional<Source> emitAttentionBwd(const AttentionFwd &a, std::string *why);


/// On CUDA cores: q, k, v and the outputs in one float type, head_dim up to
/// 256: a warp per query row (forward; dQ) or key row (dK, dV).
std::optional<Source> emitSimtAttentionFwd(const AttentionFwd &a, std::string *why);
std::optional<Source> emitSimtAttentionBwd(const AttentionFwd &a, std::string *why);

} // namespace lorac::cuda

#endif // LORAC_CODEGEN_CUDA_ATTENTION_H
