// The CUDA executor: runs a train.bin plan's programs on one GPU. It owns the
// device memory the compiler planned — one arena of Plan.arena.size (tensors
// and kernel workspaces at their planned offsets) and one block for the
// persistent tensors (weights, NF4-packed as on the host; adapters;
// optimizer state; gradients) — and the kernels, compiled from their
// Kernel.cuda_source with NVRTC for the device's architecture through the disk
// cache. Run walks a program's launches in order: each launch's arguments
// (input and output device pointers, its workspace, its dropout key) were
// bound when the executor was created; only the dropout keys change per run.
// It decides nothing about the graph. It implements lorart::Executor
// (lorart/exec/executor.h) with its own device copy of the persistent
// tensors (host_resident() is false): Session uploads and downloads them.
#ifndef LORART_CUDA_EXECUTOR_H_
#define LORART_CUDA_EXECUTOR_H_

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "lorart/base/status.h"
#include "lorart/dist/nccl.h"
#include "lorart/cuda/driver.h"
#include "lorart/exec/executor.h"
#include "lorart/plan/plan.h"

namespace lorart::dist {
class Collective;
}

namespace lorart::cuda {

struct ExecutorOptions {
  std::string kernel_cache;  // "" = KernelCacheDir("")
  int device = 0;
  int compile_threads = 0;   // 0 = all hardware threads
  // The ranks of a data-parallel run (null or one rank: the collectives are
  // the identity); their sums go over NCCL.
  dist::Collective* collective = nullptr;
};

// The __global__ entries a kernel launches, in order: Kernel.entry, then
// each Kernel.cuda_next entry.
std::vector<std::string> KernelEntries(const schema::Kernel& kernel);

// Whether every kernel that a program of `plan` launches has CUDA source: OK,
// or FailedPrecondition-style InvalidArgument naming the first one without.
Status CheckPlanHasCudaKernels(const Plan& plan);

class Executor final : public ::lorart::Executor {
 public:
  // Opens the device, checks the plan (every launched kernel has CUDA source,
  // shared memory within the device's limit), compiles the kernels, and
  // allocates and zeroes the device memory. `plan` must outlive the executor.
  static Status Create(const Plan& plan, const ExecutorOptions& options,
                       std::unique_ptr<Executor>* out);
  ~Executor() override;

  bool host_resident() const override { return false; }
  // Whole-tensor copies between the host and a tensor's device memory
  // (`bytes` must be Plan::tensor_bytes(id)).
  Status Write(uint32_t id, const void* data, size_t bytes) override;
  Status Read(uint32_t id, void* data, size_t bytes) const override;
  Status Zero(uint32_t id) override;

  // Runs a program's launches in order and waits for them; `step_seed` seeds
  // dropout masks (keys DropoutKey(step_seed, rng_stream) per launch).
  // Errors name the program, the launch and the kernel. With `launch_ms`,
  // each launch (all its cuda_next steps) is timed with device events and
  // its milliseconds stored in program order.
  Status Run(const std::string& program, uint64_t step_seed,
             std::vector<double>* launch_ms) override;
  Status FinishCollectives() override { return FinishSums("the caller's next step"); }
  // One NCCL sum of `bytes` bytes on NCCL's stream, timed with events
  // there, nothing else running.
  Status TimeGradientSum(int64_t bytes, double* ms) override;

  Device& device() const { return *device_; }
  // "NVIDIA H200 (sm_90a, 139.8 GiB): 41 kernels from 29 sources (3 compiled,
  // 26 from the cache), 1.2 GiB of device memory".
  const std::string& description() const override { return description_; }
  uint64_t device_bytes() const { return arena_bytes_ + persistent_bytes_ + keys_bytes_; }

 private:
  Executor() = default;
  Status Prepare(const ExecutorOptions& options);
  Status Compile(const ExecutorOptions& options);
  Status BindPrograms();

  struct Step {
    Function fn = nullptr;
    Dim3 grid, block;
    unsigned shared_bytes = 0;
  };
  // The collective kinds run on the host, through NCCL on a stream of their
  // own (comm_), ordered with the kernels' default stream by events
  // (docs/distributed.md).
  enum class HostOp { kNone, kBucketStart, kBucketWait, kAllReduceSum };
  struct Launch {
    uint32_t kernel = 0;
    HostOp host = HostOp::kNone;
    int64_t bucket = -1;                              // kBucketStart, kBucketWait
    std::vector<std::pair<DevicePtr, size_t>> spans;  // kBucketStart: the accumulators (floats)
    std::vector<Step> steps;
    std::vector<DevicePtr> args;  // argument values; a dropout key's slot is filled per run
    int key_arg = -1;             // index in args of the dropout key pointer, -1 without
    uint64_t rng_stream = 0;
    int key_slot = -1;
  };
  struct Program {
    std::vector<Launch> launches;
    int num_keys = 0;
    DevicePtr sync = 0;       // its sync_gradients scalar, where it starts buckets
    std::set<int64_t> waits;  // the buckets it waits for
  };

  const Plan* plan_ = nullptr;
  std::unique_ptr<Device> device_;
  std::vector<Module> modules_;
  std::vector<std::vector<Step>> kernel_steps_;  // per kernel (empty when never launched)
  std::vector<DevicePtr> tensor_ptr_;            // per tensor id
  DevicePtr arena_ = 0, persistent_ = 0, keys_ = 0;
  uint64_t arena_bytes_ = 0, persistent_bytes_ = 0, keys_bytes_ = 0;
  std::map<std::string, Program> programs_;
  std::string description_, cache_dir_;
  size_t launched_ = 0, sources_ = 0, compiled_ = 0;
  bool check_each_launch_ = false;
  dist::Collective* collective_ = nullptr;
  std::unique_ptr<dist::Nccl> nccl_;  // with more than one rank
  // With NCCL: its stream, and the events that order it with the kernels'.
  Stream comm_ = nullptr;
  Event compute_ready_ = nullptr, sum_done_ = nullptr;
  struct Bucket {
    std::vector<uint32_t> tensors;  // its accumulators
    Event done = nullptr;           // recorded on comm_ after its sums
  };
  std::map<int64_t, Bucket> buckets_;
  mutable std::set<int64_t> in_flight_;  // buckets started and not yet waited for
  Status RunHost(const Launch& l, const std::string& program, float sync);
  // Makes comm_'s next work wait for the kernels issued so far.
  Status CommAfterKernels();
  // Polls `stream` (with NCCL) until it is idle, within the collective
  // timeout; past it aborts NCCL and names the ranks that do not answer.
  // `where` prefixes a failing query's error, `what` names the sums.
  Status PollIdle(Stream stream, const std::string& where, const std::string& what) const;
  Status WaitForDevice(const std::string& program);
  // Waits until NCCL's stream is idle: before a host copy of an accumulator
  // in flight, and before a program that does not wait for the buckets in
  // flight itself.
  Status FinishSums(const std::string& before) const;
  Status FinishSumsHolding(uint32_t id, const char* copy) const;
  std::vector<Event> events_;  // for timed runs, created on first use
};

}  // namespace lorart::cuda

#endif  // LORART_CUDA_EXECUTOR_H_
