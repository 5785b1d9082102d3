// The data-parallel collectives on the CPU (lora-data-parallel's kernels):
// they call the run's dist::Collective (KernelContext::collective; null or
// one rank: the identity). docs/distributed.md describes the protocol.
#include <cstring>
#include <vector>

#include "lorart/cpu/kernel.h"
#include "lorart/cpu/rowwise.h"
#include "lorart/dist/collective.h"

namespace lorart::cpu {
namespace {

bool MultiRank(const KernelContext& ctx) {
  return ctx.collective && ctx.collective->world_size() > 1;
}

// [x F32] -> [y F32]: y = Σ over the ranks of x.
Status AllReduceSum(const KernelContext& ctx, const KernelParams& p,
                    const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 1, out, 1));
  int64_t n = 0;
  LORA_RETURN_IF_ERROR(rowwise::Elements<kernels::params::all_reduce_sum>(p, &n));
  LORA_RETURN_IF_ERROR(ExpectElements(p, in[0], n, "x"));
  LORA_RETURN_IF_ERROR(ExpectElements(p, out[0], n, "y"));
  if (in[0].dtype != DType::F32 || out[0].dtype != DType::F32)
    return InvalidArgumentError(StrFormat("kernel '%s': x and y must be F32", p.kind().c_str()));
  float* y = out[0].as<float>();
  if (y != in[0].as<const float>())
    std::memcpy(y, in[0].as<const float>(), static_cast<size_t>(n) * sizeof(float));
  if (!MultiRank(ctx)) return OkStatus();
  return ctx.collective->AllReduceSum(y, static_cast<size_t>(n), "all_reduce_sum");
}

// The bucket's accumulators, checked against its parameters.
template <class Params>
Status BucketSpans(const KernelParams& p, const std::vector<TensorView>& out, Params* prm,
                   std::vector<dist::Collective::Span>* spans) {
  LORA_RETURN_IF_ERROR(p.Typed(prm));
  if (prm->tensors < 0 || static_cast<size_t>(prm->tensors) != out.size())
    return InvalidArgumentError(StrFormat("kernel '%s': 'tensors' is %lld but the launch has %zu",
                                          p.kind().c_str(), static_cast<long long>(prm->tensors),
                                          out.size()));
  int64_t bytes = 0;
  for (const TensorView& t : out) {
    if (t.dtype != DType::F32)
      return InvalidArgumentError(
          StrFormat("kernel '%s': gradient accumulators must be F32", p.kind().c_str()));
    spans->push_back({t.as<float>(), static_cast<size_t>(t.numel())});
    bytes += t.numel() * 4;
  }
  if (bytes != prm->bytes)
    return InvalidArgumentError(StrFormat("kernel '%s': 'bytes' is %lld, the tensors hold %lld",
                                          p.kind().c_str(), static_cast<long long>(prm->bytes),
                                          static_cast<long long>(bytes)));
  return OkStatus();
}

// [sync F32 scalar] -> [g1 .. gn F32, in place]: when sync is not 0, starts
// summing the bucket over the ranks and returns at once.
Status GradAllReduceStart(const KernelContext& ctx, const KernelParams& p,
                          const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  kernels::params::grad_all_reduce_start prm;
  std::vector<dist::Collective::Span> spans;
  LORA_RETURN_IF_ERROR(BucketSpans(p, out, &prm, &spans));
  if (in.size() != 1)
    return InvalidArgumentError(StrFormat("kernel '%s' takes 1 input", p.kind().c_str()));
  if (in[0].dtype != DType::F32 || in[0].numel() != 1)
    return InvalidArgumentError(
        StrFormat("kernel '%s': sync must be an F32 scalar", p.kind().c_str()));
  if (!MultiRank(ctx) || in[0].as<const float>()[0] == 0.0f) return OkStatus();
  return ctx.collective->StartBucket(
      prm.bucket, spans, StrFormat("gradient bucket %lld", static_cast<long long>(prm.bucket)));
}

// [] -> [g1 .. gn F32]: waits for the bucket's sums (nothing when it was not
// started).
Status GradAllReduceWait(const KernelContext& ctx, const KernelParams& p,
                         const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  kernels::params::grad_all_reduce_wait prm;
  std::vector<dist::Collective::Span> spans;
  LORA_RETURN_IF_ERROR(BucketSpans(p, out, &prm, &spans));
  if (!in.empty())
    return InvalidArgumentError(StrFormat("kernel '%s' takes no input", p.kind().c_str()));
  if (!MultiRank(ctx)) return OkStatus();
  return ctx.collective->WaitBucket(prm.bucket);
}

}  // namespace

void RegisterCollectiveKernels() {
  RegisterKernel("all_reduce_sum", AllReduceSum);
  RegisterKernel("grad_all_reduce_start", GradAllReduceStart);
  RegisterKernel("grad_all_reduce_wait", GradAllReduceWait);
}

}  // namespace lorart::cpu
