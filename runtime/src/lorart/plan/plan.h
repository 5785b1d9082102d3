// Loading and validating train.bin, the executable training plan.
//
// A train.bin is a size-prefixed FlatBuffer of runtime/schema/train_bin.fbs
// (docs/train-bin.md). LoadPlan checks, in this order: the file size, the
// file identifier, the size prefix, the FlatBuffers Verifier (before any
// field is read), format_version, and then the plan's semantics (ids and
// kernel indices in range, arena buffers inside the arena and large enough,
// unique program names, required fields present). A Plan that loaded is
// safe to walk without further checks: every id it holds is in range.
#ifndef LORART_PLAN_PLAN_H_
#define LORART_PLAN_PLAN_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lorart/base/status.h"
#include "lorart/io/mapped_file.h"
#include "lorart/plan/format_version.h"
#include "lorart/schema/train_bin_generated.h"

namespace lorart {

// Bytes [8, 12) of every train.bin (after the size prefix and root offset).
inline constexpr char kPlanFileIdentifier[] = "LORA";
// FlatBuffers' limit: a buffer is smaller than 2 GiB.
inline constexpr uint64_t kMaxPlanBytes = FLATBUFFERS_MAX_BUFFER_SIZE;
// Verifier limits: nesting depth and total number of tables.
inline constexpr uint32_t kPlanMaxDepth = 64;
inline constexpr uint32_t kPlanMaxTables = 1u << 24;

// A loaded, validated plan. Move-only; the views it returns live as long as
// it does.
class Plan {
 public:
  Plan();
  ~Plan();
  Plan(Plan&& other) noexcept;
  Plan& operator=(Plan&& other) noexcept;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;

  bool is_loaded() const { return root_ != nullptr; }
  // The path (or the name given to ParsePlan) used in messages.
  const std::string& path() const { return path_; }
  // The whole file, size prefix included.
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

  // The verified FlatBuffers view.
  const schema::Plan& root() const { return *root_; }

  uint32_t format_version() const { return root_->format_version(); }
  const schema::ModelConfig& model() const { return *root_->model(); }
  // Null for full fine-tuning.
  const schema::LoraConfig* lora() const { return root_->lora(); }
  const schema::Arena& arena() const { return *root_->arena(); }
  const schema::Hyperparameters& defaults() const { return *root_->defaults(); }
  const schema::Provenance& provenance() const { return *root_->provenance(); }

  uint32_t num_tensors() const;
  const schema::Tensor& tensor(uint32_t id) const;
  // The tensor's byte size (elements x dtype size, or code + scale bytes
  // for NF4), computed once while validating.
  uint64_t tensor_bytes(uint32_t id) const { return tensor_bytes_[id]; }

  uint32_t num_kernels() const;
  const schema::Kernel& kernel(uint32_t index) const;

  uint32_t num_programs() const;
  const schema::Program& program(uint32_t index) const;
  // Null when the plan has no program of that name.
  const schema::Program* FindProgram(std::string_view name) const;

  // The tensor that program `program` takes as `port` / returns as `port`
  // (Program.input_ports / output_ports): its id, or -1 when the plan has no
  // such program or the program no such port.
  int64_t FindInput(std::string_view program, schema::InputPort port) const;
  int64_t FindOutput(std::string_view program, schema::OutputPort port) const;

  // The Frozen, Trainable or OptimizerState tensor bound by `name`: its id,
  // or -1.
  int64_t FindParameter(std::string_view name) const;

 private:
  friend Status ParsePlan(std::string_view bytes, const std::string& name, Plan* out);
  friend Status LoadPlan(const std::string& path, Plan* out);
  Status Init(std::string path);

  std::string path_;
  MappedFile file_;                     // LoadPlan: the mapping
  std::unique_ptr<uint64_t[]> owned_;   // ParsePlan: an 8-aligned copy
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  const schema::Plan* root_ = nullptr;
  std::vector<uint64_t> tensor_bytes_;
  std::unordered_map<std::string_view, uint32_t> parameters_;  // views into data_
  std::unordered_map<std::string_view, uint32_t> programs_;
};

// OK when the plan's persistent tensors and (unless `arena_on_device`) its
// activation arena fit the host memory available (MemAvailable, within the
// cgroup's limit; LORART_AVAILABLE_MEMORY overrides it); else
// INVALID_ARGUMENT with the figures and the flags that shrink a plan.
// Session::Open calls it before allocating; lorac compile warns with it.
Status CheckPlanFitsHostMemory(const Plan& plan, bool arena_on_device);

// Maps and validates the train.bin at `path`. On error `out` is left empty
// and the message starts with `path`.
Status LoadPlan(const std::string& path, Plan* out);

// Validates a train.bin held in memory (the bytes are copied); `name` stands
// for the file in messages.
Status ParsePlan(std::string_view bytes, const std::string& name, Plan* out);

// Bytes per element of a dtype; 0 for NF4 (sized by its QuantInfo) and for
// values this runtime does not know.
size_t ElementSize(schema::DType dtype);

// "F32", ...; "DType(9)" for a value this runtime does not know.
std::string DTypeToString(schema::DType dtype);
// "frozen", "trainable", "optimizer_state", "gradient", "activation", "input",
// "output", "scalar"; "Role(9)" for an unknown value.
std::string RoleToString(schema::Role role);

// The byte size of a tensor as the plan describes it: product of the shape
// times the element size, or quant.code_bytes + quant.scale_bytes for NF4.
// INVALID_ARGUMENT for negative dimensions, sizes beyond 2^64 bytes, an
// unknown dtype, an NF4 tensor without quant or with code_bytes that do not
// match its element count. Messages name the field, not the tensor.
Status TensorByteSize(const schema::Tensor& tensor, uint64_t* bytes);

// "[2, 4]"; "[]" for a scalar; "[1, 2, ... 40 dimensions]" past 16.
std::string PlanShapeToString(const flatbuffers::Vector<int64_t>* shape);

}  // namespace lorart

#endif  // LORART_PLAN_PLAN_H_
