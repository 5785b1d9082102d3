// The CPU executor: runs a train.bin plan's programs with the CPU backend's
// kernels (lorart/cpu/kernel.h) on host memory. It owns the arena, one host
// allocation of Plan.arena.size, and the kernels resolved by kind for every
// kernel of the plan. The persistent tensors are not its own: it is created
// with Session's host views of them and the kernels use that memory in place
// (host_resident(), see lorart/exec/executor.h), so nothing is ever copied
// between Session and the executor; it sets the arena tensors' views in
// return, so that Session's views address all the memory the kernels use,
// as a host-resident executor's should. Run walks a program's launches in order,
// binding each launch's tensor ids to views; it decides nothing about the
// graph.
#ifndef LORART_CPU_EXECUTOR_H_
#define LORART_CPU_EXECUTOR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lorart/base/status.h"
#include "lorart/cpu/kernel.h"
#include "lorart/exec/executor.h"
#include "lorart/plan/plan.h"

namespace lorart::cpu {

struct ExecutorOptions {
  int num_threads = 0;  // 0: all hardware threads
  // Appended to the description, "cpu (2 threads; NOTE)": why not CUDA when
  // the device was chosen automatically ("" for none).
  std::string note;
  // The run's ranks for the collective kernels (null: one process); must
  // outlive the executor.
  dist::Collective* collective = nullptr;
};

class Executor final : public ::lorart::Executor {
 public:
  // Allocates and zeroes the arena and resolves every kernel of the plan
  // (kind and params). `views` has one view per tensor id (dtype, shape, NF4
  // layout); the persistent tensors' views carry their host data, which the
  // kernels use in place: that memory must stay where it is and outlive the
  // executor. The arena tensors' data is set here, in `*views` too (it is
  // valid while the executor lives). `plan` must outlive the executor.
  static Status Create(const Plan& plan, const ExecutorOptions& options,
                       std::vector<TensorView>* views, std::unique_ptr<Executor>* out);
  ~Executor() override;

  bool host_resident() const override { return true; }
  // A persistent tensor's memory is its host view's.
  Status Write(uint32_t id, const void* data, size_t bytes) override;
  Status Read(uint32_t id, void* data, size_t bytes) const override;
  Status Zero(uint32_t id) override;
  Status Run(const std::string& program, uint64_t step_seed,
             std::vector<double>* launch_ms) override;
  // "cpu (2 threads)", or "cpu (2 threads; NOTE)".
  const std::string& description() const override { return description_; }

  int num_threads() const { return ctx_.num_threads; }

 private:
  Executor() = default;
  Status Prepare(const ExecutorOptions& options);

  const Plan* plan_ = nullptr;
  std::vector<TensorView> views_;  // per tensor id
  uint8_t* arena_ = nullptr;
  struct Prepared {
    KernelFn fn = nullptr;
    KernelParams params;
  };
  std::vector<Prepared> kernels_;  // per kernel
  KernelContext ctx_;
  std::string description_;
};

}  // namespace lorart::cpu

#endif  // LORART_CPU_EXECUTOR_H_
