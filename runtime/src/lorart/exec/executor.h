// An Executor runs a train.bin plan's programs on one device: it owns the
// arena (the tensors and kernel workspaces the compiler placed in it) and
// the kernels resolved or compiled for the device, and walks a program's
// launches in order. Like Session it decides nothing about the graph.
// Implementations: cpu::Executor (lorart/cpu/executor.h), the CPU backend's
// kernels on host memory, and cuda::Executor (lorart/cuda/executor.h), the
// plan's generated kernels on one GPU. Session (lorart/exec/session.h)
// chooses one, holds it, and keeps no per-device launch code of its own.
//
// Persistent tensors (weights, adapters, optimizer state, gradients) always
// have a host copy, owned by Session: binding, initialization, checkpoints
// and adapters are host work. Where the kernels use that copy matters:
//
// - host_resident() true (the CPU): the executor is created with Session's
//   host views of the persistent tensors and its kernels read and write them
//   in place (and it hands back the host views of its arena tensors). There
//   is no second copy, so nothing is copied or synchronized: Session skips
//   SyncDevice/SyncHost, and Write/Read/Zero of a persistent tensor touch the
//   host memory itself.
// - host_resident() false (CUDA): the executor keeps its own copy of every
//   persistent tensor. Session uploads host changes with Write before the
//   next Run and downloads results with Read when the host reads them.
//
// Program inputs and outputs in the arena always move through Write and
// Read.
#ifndef LORART_EXEC_EXECUTOR_H_
#define LORART_EXEC_EXECUTOR_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "lorart/base/status.h"

namespace lorart {

class Executor {
 public:
  virtual ~Executor() = default;

  // Whether the kernels use the persistent tensors in place in the host
  // memory the executor was given (see above).
  virtual bool host_resident() const = 0;

  // Whole-tensor copies between the caller's memory and the memory the
  // kernels use for tensor `id` (`bytes` must be Plan::tensor_bytes(id)).
  virtual Status Write(uint32_t id, const void* data, size_t bytes) = 0;
  virtual Status Read(uint32_t id, void* data, size_t bytes) const = 0;
  // Sets tensor `id` to zero bytes.
  virtual Status Zero(uint32_t id) = 0;

  // Runs a program's launches in order and returns when they are done;
  // `step_seed` seeds dropout masks. Errors name the program, the launch
  // ("in %s, launch %u (...)") and the kernel. With `launch_ms`, each
  // launch's time in milliseconds, in program order (CPU: the kernel call's
  // wall time; CUDA: device events around it).
  virtual Status Run(const std::string& program, uint64_t step_seed,
                     std::vector<double>* launch_ms) = 0;

  // Waits for the collectives a program left running: the CUDA executor's
  // gradient sums on NCCL's stream, which the optimizer's waits would wait
  // for otherwise (the CPU executor's MPI sums are waited for through its
  // dist::Collective). `lorart profile` times what the backward did not hide
  // with it.
  virtual Status FinishCollectives() { return OkStatus(); }
  // The milliseconds one sum over the ranks of `bytes` bytes of gradients
  // takes with nothing else running, the way the executor's gradient sums
  // run (`lorart profile`'s overlapped fraction). Every rank must call it.
  // The CPU executor's sums are the dist::Collective's, which the caller
  // times itself: UNIMPLEMENTED there.
  virtual Status TimeGradientSum(int64_t bytes, double* ms) {
    (void)bytes;
    (void)ms;
    return UnimplementedError("this executor's gradient sums are the collective's");
  }

  // One line about the device and what the executor prepared on it.
  virtual const std::string& description() const = 0;
};

}  // namespace lorart

#endif  // LORART_EXEC_EXECUTOR_H_
