#include "lorart/cpu/executor.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "lorart/dist/collective.h"

namespace lorart::cpu {

Status Executor::Create(const Plan& plan, const ExecutorOptions& options,
                        std::vector<TensorView>* views, std::unique_ptr<Executor>* out) {
  if (views->size() != plan.num_tensors())
    return InternalError(StrFormat("the CPU executor needs %u tensor views, got %zu",
                                   plan.num_tensors(), views->size()));
  std::unique_ptr<Executor> e(new Executor());
  e->plan_ = &plan;
  e->views_ = *views;
  LORA_RETURN_IF_ERROR(e->Prepare(options));
  for (uint32_t id = 0; id < plan.num_tensors(); ++id)
    if (plan.tensor(id).storage() == schema::Storage::Arena)
      (*views)[id].data = e->views_[id].data;
  *out = std::move(e);
  return OkStatus();
}

Executor::~Executor() { std::free(arena_); }

Status Executor::Prepare(const ExecutorOptions& options) {
  const Plan& plan = *plan_;
  ctx_.collective = options.collective;
  ctx_.num_threads = options.num_threads > 0
                         ? options.num_threads
                         : std::max(1u, std::thread::hardware_concurrency());
  uint64_t alignment = std::max<uint64_t>(64, plan.arena().alignment());
  uint64_t size = (plan.arena().size() + alignment - 1) / alignment * alignment;
  arena_ = static_cast<uint8_t*>(
      std::aligned_alloc(alignment, std::max<uint64_t>(size, alignment)));
  if (!arena_)
    return UnavailableError(StrFormat("cannot allocate the %llu-byte arena",
                                      static_cast<unsigned long long>(size)));
  std::memset(arena_, 0, size);
  for (uint32_t id = 0; id < plan.num_tensors(); ++id) {
    const schema::Tensor& t = plan.tensor(id);
    if (t.storage() == schema::Storage::Arena) views_[id].data = arena_ + t.buffer()->offset();
  }

  kernels_.resize(plan.num_kernels());
  for (uint32_t k = 0; k < plan.num_kernels(); ++k) {
    const schema::Kernel& kernel = plan.kernel(k);
    std::string kind = kernel.kind()->str();
    LORA_RETURN_IF_ERROR(LookupKernel(kind, &kernels_[k].fn), "kernel %u", k);
    LORA_RETURN_IF_ERROR(KernelParamsFromPlan(kernel, &kernels_[k].params), "kernel %u", k);
  }
  if (ctx_.collective && ctx_.collective->world_size() > 1 &&
      !ctx_.collective->sums_host_gradients())
    for (uint32_t k = 0; k < plan.num_kernels(); ++k)
      if (kernels::KindOf(plan.kernel(k).kind()->str()) == kernels::Kind::grad_all_reduce_start)
        return InvalidArgumentError(
            "a CPU plan's gradient sums run over MPI: start its ranks with mpirun or srun. The "
            "torchrun-style rendezvous (" +
            ctx_.collective->description() +
            ") bootstraps NCCL for CUDA plans and carries no gradients (docs/distributed.md)");
  description_ = StrFormat("cpu (%d threads%s%s)", ctx_.num_threads,
                           options.note.empty() ? "" : "; ", options.note.c_str());
  return OkStatus();
}

Status Executor::Write(uint32_t id, const void* data, size_t bytes) {
  if (id >= views_.size() || bytes != plan_->tensor_bytes(id))
    return InternalError(StrFormat("host write of tensor %u: bad id or size", id));
  std::memcpy(views_[id].data, data, bytes);
  return OkStatus();
}

Status Executor::Read(uint32_t id, void* data, size_t bytes) const {
  if (id >= views_.size() || bytes != plan_->tensor_bytes(id))
    return InternalError(StrFormat("host read of tensor %u: bad id or size", id));
  std::memcpy(data, views_[id].data, bytes);
  return OkStatus();
}

Status Executor::Zero(uint32_t id) {
  if (id >= views_.size()) return InternalError("host zero: bad tensor id");
  std::memset(views_[id].data, 0, plan_->tensor_bytes(id));
  return OkStatus();
}

Status Executor::Run(const std::string& program, uint64_t step_seed,
                     std::vector<double>* launch_ms) {
  const schema::Program* p = plan_->FindProgram(program);
  if (!p) return NotFoundError(StrFormat("the plan has no program '%s'", program.c_str()));
  if (launch_ms) launch_ms->clear();
  KernelContext ctx = ctx_;
  ctx.step_seed = step_seed;
  std::vector<TensorView> in, out;
  uint32_t index = 0;
  if (p->launches()) {
    for (const schema::Launch* l : *p->launches()) {
      in.clear();
      out.clear();
      if (l->inputs())
        for (uint32_t t : *l->inputs()) in.push_back(views_[t]);
      if (l->outputs())
        for (uint32_t t : *l->outputs()) out.push_back(views_[t]);
      const Prepared& k = kernels_[l->kernel()];
      std::chrono::steady_clock::time_point start;
      if (launch_ms) start = std::chrono::steady_clock::now();
      LORA_RETURN_IF_ERROR(k.fn(ctx, k.params, in, out), "in %s, launch %u (%s)",
                           program.c_str(), index, k.params.kind().c_str());
      if (launch_ms)
        launch_ms->push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                .count());
      // Lets started gradient all-reduces advance while the backward goes on
      // (MPI progresses nonblocking collectives inside its calls).
      if (ctx.collective && ctx.collective->pending())
        LORA_RETURN_IF_ERROR(ctx.collective->Progress(), "in %s, after launch %u", program.c_str(),
                             index);
      ++index;
    }
  }
  return OkStatus();
}

}  // namespace lorart::cpu
