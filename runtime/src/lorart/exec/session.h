// A Session executes a train.bin plan: it owns the plan, the persistent
// tensors (base weights bound by name from safetensors, quantized to NF4 at
// load when the plan says so; adapters; optimizer state) and one Executor
// (lorart/exec/executor.h) for its device, which owns the arena and the
// kernels and walks the programs' launches in order. It decides nothing
// about the graph. Saving and loading adapters and models is in
// lorart/io/peft_adapter.h and lorart/io/hf_model.h, over this public API.
//
// Devices: on the CPU a cpu::Executor runs the kernels of lorart/cpu on the
// host copies of the persistent tensors, in place. On CUDA a cuda::Executor
// holds the arena and a device copy of every persistent tensor and runs the
// plan's generated kernels; the host keeps its copies of the persistent
// tensors for binding, initialization, checkpoints and adapters. Host
// changes (weights, adapters, state) reach the device before the next Run;
// device results come back to the host when the host reads them (State,
// SyncHost, and so SaveAdapter and SaveModel) — frozen weights only go up,
// once. Program inputs and outputs move directly.
#ifndef LORART_EXEC_SESSION_H_
#define LORART_EXEC_SESSION_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lorart/base/status.h"
#include "lorart/cpu/kernel.h"
#include "lorart/exec/executor.h"
#include "lorart/io/safetensors.h"
#include "lorart/plan/plan.h"
#include "lorart/plan/ports.h"

namespace lorart {
namespace dist {
class Collective;
}  // namespace dist

// kAuto: CUDA when a driver with a device is present, NVRTC loads and every
// kernel the plan launches has CUDA source; else the CPU, with the reason in
// DeviceDescription().
enum class DeviceKind { kCpu, kCuda, kAuto };
// Converts `n` elements of safetensors dtype `src` (BF16, F16, F32) to float;
// other dtypes are an error naming `what`.
Status DecodeFloats(lorart::DType src, const uint8_t* data, int64_t n, float* out,
                    const std::string& what);
// OK when all `n` values are finite; else INVALID_ARGUMENT "<what> has N
// non-finite values (the first at element i: nan)<hint>".
Status CheckFiniteValues(const float* x, int64_t n, const std::string& what,
                         const std::string& hint = "");

// "cpu", "cuda", "cuda:N" (the GPU of ordinal N; "cuda" is "cuda:0") or
// "auto" (GPU 0 when it can run the plan). `cuda_ordinal` (optional) gets N.
StatusOr<DeviceKind> ParseDevice(const std::string& name, int* cuda_ordinal = nullptr);

// The safetensors dtype a plan tensor of `dtype` is written as
// (checkpoints, adapters, models); U8 for NF4's packed bytes.
DType SafetensorsDType(schema::DType dtype);

struct SessionOptions {
  int num_threads = 0;  // 0: all hardware threads (CPU kernels, CUDA compiles)
  DeviceKind device = DeviceKind::kCpu;
  int cuda_device = 0;       // the GPU's ordinal for kCuda
  std::string kernel_cache;  // CUDA: compiled-kernel cache ("" = the default)
  // The run's ranks, for the plan's collective kernels (data-parallel plans,
  // lorart/dist/collective.h); null: one process. Must outlive the session.
  dist::Collective* collective = nullptr;
};

class Session {
 public:
  // Loads and validates the plan, allocates the persistent tensors and
  // creates the executor for the device (which resolves or compiles every
  // kernel and allocates the arena).
  static Status Open(const std::string& plan_path, const SessionOptions& options,
                     std::unique_ptr<Session>* out);
  ~Session();

  const Plan& plan() const { return plan_; }

  // Binds every tensor initialized from the checkpoint (frozen weights, and
  // trainable ones in full fine-tuning) by name from a Hugging Face model
  // directory's safetensors (one file or shards with an index), converting
  // bf16/f16/f32 to the plan's dtype or quantizing to NF4. Errors name the
  // directory and the tensor.
  //
  // The plan is pinned to the base it was compiled for: when the directory
  // has a config.json, its architecture and sizes must equal the plan's
  // ModelConfig, and no safetensors tensor may belong to a layer the plan
  // does not have; the error names the first difference. Every bound value
  // must be finite (a NaN or Inf weight is an error naming the tensor, the
  // count and the first index) unless `allow_nonfinite`.
  Status BindWeights(const std::string& model_dir, bool allow_nonfinite = false);
  // A plan compiled with --ewc-lambda reads the diagonal Fisher of each
  // adapted weight as a frozen tensor with init Fisher whose `of` names the
  // weight, bound here from `lorart fisher`'s safetensors file (where it is
  // stored under the weight's name), not from the model directory. Errors
  // name the file and the tensor.
  bool HasEwcPenalty() const;
  Status BindFisher(const std::string& path);
  // Replaces one tensor bound from the checkpoint (a frozen weight, say) by
  // `values` (its element count), converted to the plan's dtype or quantized
  // to NF4 as BindWeights does.
  Status SetWeight(const std::string& name, const float* values, int64_t count);
  // Initializes trainable tensors not bound from the checkpoint as PEFT does
  // (lora_A Kaiming-uniform, lora_B zero) from `seed`, then the optimizer
  // state (master copies from their owners, moments and gradients zero).
  Status InitTrainable(uint64_t seed);
  // Sets Trainable tensor `name` from `values` (its element count),
  // converted to the plan's dtype, and its float32 master copy, if it has
  // one, to `values` exactly (LoadAdapter in lorart/io/peft_adapter.h).
  Status SetTrainable(const std::string& name, const float* values, int64_t count);

  // Program I/O by port (Program.input_ports / output_ports, lorart/plan/
  // ports.h); `program` is a programs::k* name. Sizes must match.
  Status SetInput(const std::string& program, schema::InputPort port, const void* data,
                  size_t bytes);
  Status GetOutput(const std::string& program, schema::OutputPort port, void* data,
                   size_t bytes) const;
  Status SetScalar(const std::string& program, schema::InputPort port, float value);
  StatusOr<double> GetScalar(const std::string& program, schema::OutputPort port) const;

  // Runs a program's launches in order; `step_seed` seeds dropout masks.
  // With `launch_ms`, each launch's time in milliseconds, in program order
  // (CPU: the kernel call's wall time; CUDA: device events around it).
  Status Run(const std::string& program, uint64_t step_seed,
             std::vector<double>* launch_ms = nullptr);

  // Sets every Gradient-role tensor to zero (a skipped step).
  Status ZeroGradients();

  // Waits for the collectives a program left running (Executor::FinishCollectives).
  Status FinishCollectives() { return executor_->FinishCollectives(); }
  // Executor::TimeGradientSum.
  Status TimeGradientSum(int64_t bytes, double* ms) {
    return executor_->TimeGradientSum(bytes, ms);
  }

  // Every non-frozen persistent tensor (trainable, optimizer state,
  // gradients), for checkpoints: name -> (dtype, shape, bytes).
  struct StateTensor {
    std::string name;
    schema::Role role;  // Trainable, OptimizerState or Gradient
    std::string of;     // the Trainable tensor a moment or gradient belongs to
    schema::DType dtype;
    std::vector<int64_t> shape;
    uint8_t* data;
    uint64_t bytes;
  };
  // On CUDA the host copies are brought up to date first.
  StatusOr<std::vector<StateTensor>> State() const;
  // Sets a state tensor by name (sizes must match).
  Status SetState(const std::string& name, const void* data, uint64_t bytes);

  // The host view of a persistent tensor by name (null when absent). On CUDA
  // it is current after SyncHost (or State).
  const cpu::TensorView* FindPersistent(const std::string& name) const;
  // The host view of the float32 master copy of Trainable tensor `name` (the
  // tensor whose init is CopyOfOwner and whose `of` names it); null when it
  // has none. Current as FindPersistent's.
  const cpu::TensorView* FindMaster(const std::string& name) const;

  // CUDA: copies the device's trainable, optimizer and gradient tensors to
  // the host copies if a Run changed them since. A no-op on the CPU.
  Status SyncHost() const;

  DeviceKind device() const { return device_; }
  // One line: "cpu (2 threads)", with why not CUDA when it was chosen
  // automatically, or "cuda: " and the CUDA executor's description.
  std::string DeviceDescription() const;

 private:
  Session() = default;
  Status Prepare(const SessionOptions& options);
  // The tensor of a program's input or output port (schema::InputPort or
  // schema::OutputPort); NOT_FOUND naming the program or the port.
  template <typename Port>
  Status FindPortTensor(const std::string& program, Port port, uint32_t* id) const;
  // A device executor: uploads host changes of persistent tensors before a
  // Run. A no-op when the executor is host-resident.
  Status SyncDevice();
  // Before a host-side change of persistent tensors: the host copies must be
  // current; afterwards the device's are not.
  Status BeginHostWrite();

  Plan plan_;
  // Per tensor id: dtype, shape, NF4 layout, and the host data: of the
  // persistent tensors, and with a host-resident executor (the CPU) of the
  // arena tensors too, in the executor's arena (null on CUDA).
  std::vector<cpu::TensorView> views_;
  // Per tensor id (empty for arena). Mutable: SyncHost refreshes it.
  mutable std::vector<std::vector<uint8_t>> persistent_;
  std::map<std::string, uint32_t> persistent_by_name_;
  // The float32 master copy of a Trainable tensor (the tensor whose init is
  // CopyOfOwner and whose `of` names it), by tensor id; absent for none.
  std::map<uint32_t, uint32_t> master_of_;

  std::unique_ptr<Executor> executor_;
  DeviceKind device_ = DeviceKind::kCpu;
  bool device_current_ = false;       // the device's persistent tensors equal the host's
  bool frozen_on_device_ = false;     // frozen weights uploaded since they last changed
  mutable bool host_current_ = true;  // the host's persistent tensors equal the device's
};

}  // namespace lorart

#endif  // LORART_EXEC_SESSION_H_
