//===- losses.h - CUDA C++ templates of the losses on logits -*- C++ -*-===//
//
// Used through the dispatcher (codegen.h); see losses.cpp. Kernel
// arguments follow the ABI of every template: the op's inputs, its outputs,
// then the workspace where the Source asks for one.
//
//===----------------------------------------------------------------------===//
#ifndef LORAC_CODEGEN_CUDA_LOSSES_H
#define LORAC_CODEGEN_CUDA_LOSSES_H

#include "cuda/common.h"

namespace lorac::cuda {

/// Losses over materialized logits [tokens, vocab].
struct LogitsLoss {
  int64_t tokens = 0, vocab = 0;
  int64_t sequences = 0;                ///< sequence_logprobs only
  std::string logitsType, targetType;   ///< CUDA types ("float", "int", ...)
  std::string seqType;                  ///< sequence ids (sequence_logprobs)
  std::string dlogitsType;              ///< the backward's output
};
/// logits, targets, mask → loss_sum f32, count i64 (workspace: a double per token).
std::optional<Source> emitCrossEntropyFwd(const LogitsLoss &l, std::string *why);
/// logits, targets, mask, dloss → dlogits.
std::optional<Source> emitCrossEntropyBwd(const LogitsLoss &l, std::string *why);
/// logits, targets, mask, sequence ids → logprobs f32 [sequences].
std::optional<Source> emitSequenceLogProbsFwd(const LogitsLoss &l, std::string *why);
/// logits, targets, mask, sequence ids, dlogprobs → dlogits.
std::optional<Source> emitSequenceLogProbsBwd(const LogitsLoss &l, std::string *why);

/// policy, reference, pair_mask → loss_sum, count, chosen, rejected,
/// accuracy, margin sums.
Source emitDpoLossFwd(int64_t pairs, double beta, bool ipo);
/// policy, reference, pair_mask, dloss → dpolicy.
Source emitDpoLossBwd(int64_t pairs, double beta, bool ipo);
/// fwd: lm_sum, lm_count, pair_mask → loss; bwd: lm_count, pair_mask, dloss → dlm_sum.
Source emitReplayLoss(int64_t pairs, double weight, bool bwd);

/// EWC's λ·Σ F∘(s·B·A)²: a [rank, k], b [n, rank], fisher [n, k], count.
struct EwcPenalty {
  int64_t n = 0, k = 0, rank = 0;
  double scaling = 0, lambda = 0;
  std::string aType, bType, fisherType;
};
/// fwd: → weighted, penalty (workspace: a double per row); bwd (+ dloss) → da, db.
std::optional<Source> emitEwcPenalty(const EwcPenalty &e, bool bwd, std::string *why);

} // namespace lorac::cuda

#endif // LORAC_CODEGEN_CUDA_LOSSES_H
