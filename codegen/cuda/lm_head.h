//===- lm_head.h - The chunked LM-head cross-entropy -*- C++ -*-===//
//
// `lm_head_ce_fwd`, `lm_head_ce_bwd_x`, `lm_head_ce_bwd_w`: tensor-core
// templates and CUDA-core variants, in lm_head.cpp.
//
//===----------------------------------------------------------------------===//
#ifndef LORAC_CODEGEN_CUDA_LM_HEAD_H
#define LORAC_CODEGEN_CUDA_LM_HEAD_H

#include "cuda/common.h"

namespace lorac::cuda {

/// The chunked LM-head cross-entropy forward (`lm_head_ce_fwd`,
/// lm_head.cpp): x [tokens, hidden], w [vocab, hidden] bf16, targets,
/// mask → loss_sum f32, count i64, with a workspace of one double per token.
struct LmHeadCe {
  int64_t tokens = 0, hidden = 0, vocab = 0;
  std::string xType, wType, targetType, dxType;
};
std::optional<Source> emitLmHeadCeFwd(const LmHeadCe &l, std::string *why);
/// Its `$BASE$_sum` launch (one thread adds the workspace's per-token
/// losses in token order and counts the masked-in tokens), shared with the
/// CUDA-core template; `T` and the forward's `$PARAMS$` in scope.
const char *lmHeadSumKernel();
/// Its input gradient (`lm_head_ce_bwd_x`: x, w, targets, mask, dloss → dx):
/// each row's logsumexp, then per chunk of `chunk` tokens (the compiler's
/// chunk_size) the chunk's bf16 dlogits in the workspace and dx = dlogits·W.
std::optional<Source> emitLmHeadCeBwdX(const LmHeadCe &l, int64_t chunk, std::string *why);
/// Its weight gradient (`lm_head_ce_bwd_w`: x, w, targets, mask, dloss →
/// dw [vocab, hidden], `dwType` f32 or bf16): the same logsumexp and
/// per-chunk dlogits, then dw (+)= dlogitsᵀ·x_chunk per chunk, summed in f32
/// (in dw itself when it is f32, else in an f32 copy in the workspace that
/// the last chunk rounds into dw).
std::optional<Source> emitLmHeadCeBwdW(const LmHeadCe &l, int64_t chunk, const std::string &dwType,
                                       std::string *why);


/// CUDA-core variants (with simt.h): for what the tensor-core template
/// refuses (f32 and f16 activations, bf16 with a rank above 64 or K not a
/// multiple of 8); same arguments, f32 sums in one fixed order.
std::optional<Source> emitSimtLmHeadCeFwd(const LmHeadCe &l, std::string *why);
std::optional<Source> emitSimtLmHeadCeBwdX(const LmHeadCe &l, int64_t chunk, std::string *why);
std::optional<Source> emitSimtLmHeadCeBwdW(const LmHeadCe &l, int64_t chunk, const std::string &dwType,
                                           std::string *why);

} // namespace lorac::cuda

#endif // LORAC_CODEGEN_CUDA_LM_HEAD_H
