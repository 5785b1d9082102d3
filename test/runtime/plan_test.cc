// train.bin loading: plans built with FlatBufferBuilder (through the
// generated object API), round trips, every rejection path, truncation at
// every length and a byte-flip fuzz loop, and `lorart inspect` on a plan.
#include "lorart/plan/plan.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lorart/cli/main.h"
#include "lorart/plan/ports.h"
#include "lorart/plan/seal.h"
#include "test_util.h"

namespace lorart {
namespace {

namespace s = schema;
using testing::TempDir;
using testing::WriteFile;

// ---- building plans --------------------------------------------------------

std::unique_ptr<s::TensorT> MakeTensor(const std::string& name, s::Role role, s::DType dtype,
                                       std::vector<int64_t> shape) {
  auto t = std::make_unique<s::TensorT>();
  t->name = name;
  t->role = role;
  t->dtype = dtype;
  t->shape = std::move(shape);
  return t;
}

std::unique_ptr<s::TensorT> Persistent(const std::string& name, s::Role role, s::DType dtype,
                                       std::vector<int64_t> shape, s::TensorInit init,
                                       const std::string& of = "") {
  auto t = MakeTensor(name, role, dtype, std::move(shape));
  t->storage = s::Storage::Persistent;
  t->init = init;
  t->of = of;
  return t;
}

std::unique_ptr<s::TensorT> InArena(const std::string& name, s::Role role, s::DType dtype,
                                    std::vector<int64_t> shape, uint64_t offset, uint64_t size) {
  auto t = MakeTensor(name, role, dtype, std::move(shape));
  t->storage = s::Storage::Arena;
  t->buffer = std::make_unique<s::Buffer>(offset, size);
  return t;
}

template <typename T>
std::unique_ptr<s::KernelParamT> Param(const std::string& key, T value) {
  auto p = std::make_unique<s::KernelParamT>();
  p->key = key;
  p->value.Set(std::move(value));
  return p;
}

s::IntValueT Int(int64_t v) {
  s::IntValueT x;
  x.value = v;
  return x;
}
s::FloatValueT Float(double v) {
  s::FloatValueT x;
  x.value = v;
  return x;
}
s::StringValueT String(const std::string& v) {
  s::StringValueT x;
  x.value = v;
  return x;
}
s::IntListValueT Ints(std::vector<int64_t> v) {
  s::IntListValueT x;
  x.values = std::move(v);
  return x;
}
s::FloatListValueT Floats(std::vector<double> v) {
  s::FloatListValueT x;
  x.values = std::move(v);
  return x;
}

std::unique_ptr<s::LaunchT> MakeLaunch(uint32_t kernel, std::vector<uint32_t> inputs,
                                       std::vector<uint32_t> outputs, bool recompute = false) {
  auto l = std::make_unique<s::LaunchT>();
  l->kernel = kernel;
  l->inputs = std::move(inputs);
  l->outputs = std::move(outputs);
  l->recompute = recompute;
  return l;
}

// Tensor ids of the sample plan.
enum : uint32_t {
  kEmbed = 0,
  kQProj,  // NF4
  kLoraA,
  kLoraB,
  kMomentA,
  kGradA,
  kTokens,
  kHidden,
  kLoss,
  kLr,
  kNumTensors
};
const char kLoraAName[] = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";

// A small but complete plan: every table, every role, an NF4 weight, every
// kind of kernel param, three programs.
std::unique_ptr<s::PlanT> SamplePlan() {
  auto plan = std::make_unique<s::PlanT>();
  plan->format_version = kPlanFormatVersion;

  auto model = std::make_unique<s::ModelConfigT>();
  model->architecture = "LlamaForCausalLM";
  model->hidden_size = 8;
  model->intermediate_size = 16;
  model->num_hidden_layers = 1;
  model->num_attention_heads = 2;
  model->num_key_value_heads = 1;
  model->head_dim = 4;
  model->vocab_size = 16;
  model->rms_norm_eps = 1e-5;
  model->rope_theta = 500000;
  model->rope_scaling = std::make_unique<s::RopeScalingT>();
  model->rope_scaling->kind = s::RopeScalingKind::Llama3;
  model->rope_scaling->factor = 8;
  model->max_position_embeddings = 128;
  model->bos_token_id = 1;
  model->eos_token_ids = {2, 3};
  plan->model = std::move(model);

  auto lora = std::make_unique<s::LoraConfigT>();
  lora->r = 2;
  lora->alpha = 4;
  lora->dropout = 0.05;
  lora->target_modules = {"q_proj", "v_proj"};
  lora->layers_to_transform = {0};
  plan->lora = std::move(lora);

  const std::string lora_b = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight";
  plan->tensors.push_back(Persistent("model.embed_tokens.weight", s::Role::Frozen, s::DType::BF16,
                                     {16, 8}, s::TensorInit::Checkpoint));
  auto q = Persistent("model.layers.0.self_attn.q_proj.weight", s::Role::Frozen, s::DType::NF4,
                      {8, 8}, s::TensorInit::Checkpoint);
  q->quant = std::make_unique<s::QuantInfoT>();
  q->quant->block_size = 64;
  q->quant->code_bytes = 32;
  q->quant->scale_bytes = 4;
  plan->tensors.push_back(std::move(q));
  plan->tensors.push_back(Persistent(kLoraAName, s::Role::Trainable, s::DType::F32, {2, 8},
                                     s::TensorInit::KaimingUniform));
  plan->tensors.push_back(
      Persistent(lora_b, s::Role::Trainable, s::DType::F32, {8, 2}, s::TensorInit::Zeros));
  plan->tensors.push_back(Persistent("adamw.m.lora_A", s::Role::OptimizerState, s::DType::F32,
                                     {2, 8}, s::TensorInit::Zeros, kLoraAName));
  plan->tensors.push_back(Persistent("grad.lora_A", s::Role::Gradient, s::DType::F32, {2, 8},
                                     s::TensorInit::Zeros, kLoraAName));
  plan->tensors.push_back(InArena("tokens", s::Role::Input, s::DType::I32, {1, 4}, 0, 16));
  plan->tensors.push_back(InArena("hidden", s::Role::Activation, s::DType::BF16, {1, 4, 8}, 64, 64));
  plan->tensors.push_back(InArena("loss", s::Role::Output, s::DType::F32, {}, 128, 4));
  plan->tensors.push_back(InArena("lr", s::Role::Scalar, s::DType::F32, {}, 192, 8));

  plan->arena = std::make_unique<s::ArenaT>();
  plan->arena->size = 256;
  plan->arena->alignment = 64;

  // Kernels of declared kinds with their parameters (kernel_kinds.def).
  auto embed = std::make_unique<s::KernelT>();
  embed->kind = "embedding_fwd";
  embed->params.push_back(Param("vocab", Int(16)));
  embed->params.push_back(Param("tokens", Int(4)));
  embed->params.push_back(Param("hidden", Int(8)));
  plan->kernels.push_back(std::move(embed));
  auto linear = std::make_unique<s::KernelT>();
  linear->kind = "fused_linear_fwd";
  linear->name = "fused_linear_q_proj";
  linear->params.push_back(Param("scaling", Float(2.0)));
  linear->params.push_back(Param("weight_format", String("nf4")));
  linear->params.push_back(Param("m", Int(4)));
  linear->params.push_back(Param("n", Int(8)));
  linear->params.push_back(Param("k", Int(8)));
  linear->params.push_back(Param("bias", Int(0)));
  linear->params.push_back(Param("rank", Int(2)));
  linear->params.push_back(Param("block_size", Int(64)));
  linear->params.push_back(Param("double_quant_block", Int(0)));
  linear->cuda_source = "extern \"C\" __global__ void k(float* x) {}";
  linear->entry = "k";
  linear->grid = std::make_unique<s::Dim3>(4, 1, 1);
  linear->block = std::make_unique<s::Dim3>(128, 1, 1);
  linear->shared_bytes = 1024;
  plan->kernels.push_back(std::move(linear));
  auto norm = std::make_unique<s::KernelT>();
  norm->kind = "global_norm";
  norm->params.push_back(Param("tensors", Int(1)));
  plan->kernels.push_back(std::move(norm));
  auto adamw = std::make_unique<s::KernelT>();
  adamw->kind = "adamw";
  adamw->params.push_back(Param("elements", Int(16)));
  adamw->params.push_back(Param("beta1", Float(0.9)));
  adamw->params.push_back(Param("beta2", Float(0.999)));
  adamw->params.push_back(Param("eps", Float(1e-8)));
  adamw->params.push_back(Param("weight_decay", Float(0.0)));
  plan->kernels.push_back(std::move(adamw));

  auto train = std::make_unique<s::ProgramT>();
  train->name = "train_step";
  train->inputs = {kTokens};
  train->input_ports = {s::InputPort::Tokens};
  train->outputs = {kLoss};
  train->output_ports = {s::OutputPort::LossSum};
  // Operands as kernel_kinds.def declares them (the loader checks them).
  train->launches.push_back(MakeLaunch(0, {kEmbed, kTokens}, {kHidden}));
  train->launches.push_back(MakeLaunch(1, {kHidden, kQProj, kLoraA, kLoraB}, {kHidden}, true));
  train->launches.push_back(MakeLaunch(2, {kHidden}, {kLoss}));
  plan->programs.push_back(std::move(train));
  auto opt = std::make_unique<s::ProgramT>();
  opt->name = "optimizer_step";
  opt->inputs = {kLr};
  opt->input_ports = {s::InputPort::LearningRate};
  opt->launches.push_back(MakeLaunch(3, {kLoraA, kGradA, kMomentA, kMomentA, kLr, kLr, kLr},
                                    {kLoraA, kMomentA, kMomentA}));
  plan->programs.push_back(std::move(opt));
  auto eval = std::make_unique<s::ProgramT>();
  eval->name = "eval_step";
  eval->inputs = {kTokens};
  eval->input_ports = {s::InputPort::Tokens};
  eval->outputs = {kLoss};
  eval->output_ports = {s::OutputPort::LossSum};
  eval->launches.push_back(MakeLaunch(0, {kEmbed, kTokens}, {kHidden}));
  eval->launches.push_back(MakeLaunch(2, {kHidden}, {kLoss}));
  plan->programs.push_back(std::move(eval));

  plan->defaults = std::make_unique<s::HyperparametersT>();
  plan->defaults->objective = "sft";
  plan->defaults->micro_batch = 1;
  plan->defaults->seq_len = 4;
  plan->defaults->remat = "layer";
  plan->defaults->schedule = "cosine";
  plan->defaults->warmup_steps = 10;
  plan->defaults->seed = 42;

  plan->provenance = std::make_unique<s::ProvenanceT>();
  plan->provenance->compiler_version = "lorac 0.1.0";
  plan->provenance->pipeline = "builtin.module(lora-attach-adapters)";
  plan->provenance->input_hash = "0123456789abcdef";
  plan->provenance->source = "model.mlir";
  return plan;
}

// The FlatBuffer of a train.bin: size-prefixed, with the file identifier.
std::string PackUnsealed(const s::PlanT& plan) {
  flatbuffers::FlatBufferBuilder fbb;
  s::FinishSizePrefixedPlanBuffer(fbb, s::Plan::Pack(fbb, &plan));
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}

// The bytes of a train.bin: the FlatBuffer and its checksum trailer.
std::string Pack(const s::PlanT& plan) { return SealPlan(PackUnsealed(plan)); }

std::string SampleBytes() { return Pack(*SamplePlan()); }

// ---- checking results ------------------------------------------------------

void ExpectError(const Status& status, StatusCode code, const std::string& needle,
                 const std::string& name = "plan.bin") {
  ASSERT_FALSE(status.ok()) << "expected an error containing: " << needle;
  EXPECT_EQ(status.code(), code) << status.ToString();
  EXPECT_EQ(status.message().rfind(name + ": ", 0), 0u) << status.message();
  EXPECT_EQ(status.message().find('\n'), std::string::npos) << status.message();
  EXPECT_NE(status.message().find(needle), std::string::npos) << status.message();
}

// Walks everything the runtime will read from a plan that loaded: every id
// and index must be usable as is. (Out-of-range reads fail under ASan.)
void WalkPlan(const Plan& plan) {
  uint64_t sink = 0;
  for (uint32_t id = 0; id < plan.num_tensors(); ++id) {
    const s::Tensor& t = plan.tensor(id);
    sink += plan.tensor_bytes(id);
    if (t.storage() == s::Storage::Arena) {
      ASSERT_NE(t.buffer(), nullptr);
      ASSERT_LE(plan.tensor_bytes(id), t.buffer()->size());
      ASSERT_LE(t.buffer()->size(), plan.arena().size());
      ASSERT_LE(t.buffer()->offset(), plan.arena().size() - t.buffer()->size());
    }
    if (t.name()) sink += t.name()->size();
  }
  for (uint32_t p = 0; p < plan.num_programs(); ++p) {
    const s::Program& program = plan.program(p);
    ASSERT_EQ(plan.FindProgram(program.name()->string_view()), &program);
    for (const auto* ids : {program.inputs(), program.outputs()}) {
      for (uint32_t i = 0; ids && i < ids->size(); ++i) {
        sink += plan.tensor(ids->Get(i)).dtype() == s::DType::F32;
      }
    }
    for (uint32_t l = 0; program.launches() && l < program.launches()->size(); ++l) {
      const s::Launch& launch = *program.launches()->Get(l);
      const s::Kernel& kernel = plan.kernel(launch.kernel());
      sink += kernel.kind()->size();
      for (const auto* ids : {launch.inputs(), launch.outputs()}) {
        for (uint32_t i = 0; ids && i < ids->size(); ++i) {
          sink += plan.tensor_bytes(ids->Get(i));
        }
      }
    }
  }
  (void)sink;
}

// ---- round trip ------------------------------------------------------------

TEST(PlanTest, RoundTrip) {
  const std::string bytes = SampleBytes();
  Plan plan;
  Status status = ParsePlan(bytes, "plan.bin", &plan);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(plan.is_loaded());
  EXPECT_EQ(plan.size(), bytes.size());
  EXPECT_EQ(plan.format_version(), 3u);
  EXPECT_EQ(plan.model().architecture()->str(), "LlamaForCausalLM");
  EXPECT_EQ(plan.model().rope_scaling()->kind(), s::RopeScalingKind::Llama3);
  EXPECT_EQ(plan.model().rope_scaling()->high_freq_factor(), 4.0);  // schema default
  ASSERT_NE(plan.lora(), nullptr);
  EXPECT_EQ(plan.lora()->r(), 2u);
  EXPECT_EQ(plan.num_tensors(), kNumTensors);
  EXPECT_EQ(plan.tensor_bytes(kEmbed), 16u * 8 * 2);
  EXPECT_EQ(plan.tensor_bytes(kQProj), 32u + 4);
  EXPECT_EQ(plan.tensor_bytes(kLoss), 4u);  // a scalar
  EXPECT_EQ(plan.tensor(kGradA).of()->str(), kLoraAName);
  EXPECT_EQ(plan.FindParameter(kLoraAName), kLoraA);
  EXPECT_EQ(plan.FindParameter("adamw.m.lora_A"), kMomentA);
  EXPECT_EQ(plan.FindParameter("grad.lora_A"), -1);  // gradients are not bound
  EXPECT_EQ(plan.FindParameter("nope"), -1);
  EXPECT_EQ(plan.arena().size(), 256u);
  EXPECT_EQ(plan.num_kernels(), 4u);
  EXPECT_EQ(plan.kernel(1).grid()->x(), 4u);
  EXPECT_EQ(plan.kernel(1).params()->Get(2)->value_as_IntValue()->value(), 4);
  ASSERT_NE(plan.FindProgram("train_step"), nullptr);
  EXPECT_EQ(plan.FindProgram("train_step")->launches()->size(), 3u);
  EXPECT_TRUE(plan.FindProgram("train_step")->launches()->Get(1)->recompute());
  EXPECT_EQ(plan.FindProgram("dpo_step"), nullptr);
  EXPECT_EQ(plan.defaults().adam_beta2(), 0.999);  // schema default
  EXPECT_EQ(plan.defaults().grad_accum(), 1u);
  EXPECT_EQ(plan.provenance().pipeline()->str(), "builtin.module(lora-attach-adapters)");
  WalkPlan(plan);

  // Unpack and pack again: the same bytes.
  std::unique_ptr<s::PlanT> unpacked(plan.root().UnPack());
  EXPECT_EQ(Pack(*unpacked), bytes);

  // From a file, memory-mapped; and a move keeps the views valid.
  TempDir dir;
  WriteFile(dir.Join("train.bin"), bytes);
  Plan loaded;
  status = LoadPlan(dir.Join("train.bin"), &loaded);
  ASSERT_TRUE(status.ok()) << status.ToString();
  Plan moved = std::move(loaded);
  EXPECT_FALSE(loaded.is_loaded());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(moved.path(), dir.Join("train.bin"));
  EXPECT_EQ(moved.FindProgram("eval_step")->launches()->size(), 2u);
  WalkPlan(moved);
}

TEST(PlanTest, FullFineTuningHasNoLora) {
  auto plan = SamplePlan();
  plan->lora.reset();
  Plan loaded;
  ASSERT_TRUE(ParsePlan(Pack(*plan), "plan.bin", &loaded).ok());
  EXPECT_EQ(loaded.lora(), nullptr);
}

TEST(PlanTest, EmptyVectorsAreFine) {
  auto plan = SamplePlan();
  plan->programs.clear();
  plan->kernels.clear();
  plan->tensors.clear();
  Plan loaded;
  Status status = ParsePlan(Pack(*plan), "plan.bin", &loaded);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(loaded.num_tensors(), 0u);
  EXPECT_EQ(loaded.num_programs(), 0u);
}

// ---- file-level rejections -------------------------------------------------

TEST(PlanTest, MissingFileAndDirectory) {
  TempDir dir;
  Plan plan;
  Status status = LoadPlan(dir.Join("nope.bin"), &plan);
  EXPECT_EQ(status.code(), StatusCode::kNotFound) << status.ToString();
  EXPECT_FALSE(plan.is_loaded());
  EXPECT_FALSE(LoadPlan(dir.path(), &plan).ok());
}

TEST(PlanTest, WrongIdentifier) {
  std::string bytes = SampleBytes();
  bytes.replace(8, 4, "XXXX");
  Plan plan;
  ExpectError(ParsePlan(bytes, "plan.bin", &plan), StatusCode::kInvalidArgument,
              "not a train.bin: file identifier is 'XXXX', expected 'LORA'");
  EXPECT_FALSE(plan.is_loaded());

  // Control bytes in the identifier are escaped.
  bytes.replace(8, 4, std::string("\x01\n\0Z", 4));
  ExpectError(ParsePlan(bytes, "plan.bin", &plan), StatusCode::kInvalidArgument,
              "file identifier is '\\x01\\n\\x00Z'");

  // A safetensors file, text, a short file.
  ExpectError(ParsePlan(testing::BuildSafetensors({{"w", "F32", {2}, 4}}), "plan.bin", &plan),
              StatusCode::kInvalidArgument, "not a train.bin: file identifier is");
  ExpectError(ParsePlan("hello, world! this is text", "plan.bin", &plan),
              StatusCode::kInvalidArgument, "file identifier is 'orld'");
  ExpectError(ParsePlan("LORA", "plan.bin", &plan), StatusCode::kDataLoss,
              "4 bytes is too short");
  ExpectError(ParsePlan("", "plan.bin", &plan), StatusCode::kDataLoss, "0 bytes is too short");
}

TEST(PlanTest, NotSizePrefixed) {
  flatbuffers::FlatBufferBuilder fbb;
  s::FinishPlanBuffer(fbb, s::Plan::Pack(fbb, SamplePlan().get()));
  const std::string bytes(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
  Plan plan;
  ExpectError(ParsePlan(bytes, "plan.bin", &plan), StatusCode::kInvalidArgument,
              "was not written size-prefixed");
}

TEST(PlanTest, SizePrefixDisagrees) {
  std::string bytes = SampleBytes();
  Plan plan;
  ExpectError(ParsePlan(bytes + std::string(8, '\0'), "plan.bin", &plan), StatusCode::kDataLoss,
              "corrupt train.bin: the size prefix says");
  bytes[0] = static_cast<char>(bytes[0] + 4);
  ExpectError(ParsePlan(bytes, "plan.bin", &plan), StatusCode::kDataLoss, "is the file truncated");
}

TEST(PlanTest, WrongVersion) {
  // 1: the format before the Fisher's TensorInit (a version-1 EWC plan
  // named its Fisher tensors by prefix, which this lorart no longer reads);
  // 2: the format before program ports (inputs bound by tensor name).
  for (uint32_t version : {0u, 1u, 2u, 4u, 77u}) {
    auto plan = SamplePlan();
    plan->format_version = version;
    Plan loaded;
    ExpectError(ParsePlan(Pack(*plan), "plan.bin", &loaded), StatusCode::kInvalidArgument,
                StrFormat("train.bin format version %u, but this lorart reads format version 3",
                          version));
  }
}

// A plan of another version whose layout no longer verifies against this
// schema still gets the version message, not "corrupt".
TEST(PlanTest, WrongVersionWithIncompatibleLayout) {
  flatbuffers::FlatBufferBuilder fbb;
  // Field 1 (`model`, a table here) written as a scalar, as a future format
  // might.
  auto start = fbb.StartTable();
  fbb.AddElement<uint32_t>(s::Plan::VT_FORMAT_VERSION, 4, 0);
  fbb.AddElement<uint32_t>(s::Plan::VT_MODEL, 12345, 0);
  fbb.FinishSizePrefixed(flatbuffers::Offset<s::Plan>(fbb.EndTable(start)), "LORA");
  const std::string bytes(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
  Plan plan;
  ExpectError(ParsePlan(bytes, "plan.bin", &plan), StatusCode::kInvalidArgument,
              "format version 4, but this lorart reads format version 3");

  // The same layout at version 3 is simply corrupt.
  flatbuffers::FlatBufferBuilder fbb1;
  start = fbb1.StartTable();
  fbb1.AddElement<uint32_t>(s::Plan::VT_FORMAT_VERSION, 3, 0);
  fbb1.AddElement<uint32_t>(s::Plan::VT_MODEL, 12345, 0);
  fbb1.FinishSizePrefixed(flatbuffers::Offset<s::Plan>(fbb1.EndTable(start)), "LORA");
  const std::string bytes1 = SealPlan(std::string_view(
      reinterpret_cast<const char*>(fbb1.GetBufferPointer()), fbb1.GetSize()));
  ExpectError(ParsePlan(bytes1, "plan.bin", &plan), StatusCode::kDataLoss,
              "corrupt train.bin: FlatBuffers verification failed");
}

// The checksum trailer: every single-bit flip anywhere in a plan is refused
// before a field is read (the header's bytes get their own messages); a plan
// without the trailer, or with a wrong one, is refused naming it.
TEST(PlanTest, ChecksumCatchesEveryBitFlip) {
  const std::string bytes = SampleBytes();
  size_t by_checksum = 0;
  for (size_t pos = 0; pos < bytes.size(); ++pos) {
    for (int bit = 0; bit < 8; bit += 3) {
      std::string flipped = bytes;
      flipped[pos] ^= static_cast<char>(1u << bit);
      Plan plan;
      Status st = ParsePlan(flipped, "plan.bin", &plan);
      ASSERT_FALSE(st.ok()) << "a flip of bit " << bit << " of byte " << pos << " loaded";
      EXPECT_EQ(st.message().find('\n'), std::string::npos);
      if (st.message().find("its checksum does not match its contents") != std::string::npos)
        ++by_checksum;
    }
  }
  // All but the flips in the size prefix, the identifier and the trailer's
  // magic, which fail the framing checks first.
  EXPECT_GE(by_checksum, 3 * (bytes.size() - 4 - 4 - 8) - 3 * 4);

  Plan plan;
  ExpectError(ParsePlan(PackUnsealed(*SamplePlan()), "plan.bin", &plan), StatusCode::kDataLoss,
              "corrupt train.bin: the checksum trailer ('LORAXXH3' and the XXH3-64 of the plan, "
              "16 bytes after the FlatBuffer) is missing");
  std::string wrong = bytes;
  wrong[wrong.size() - 1] ^= 1;
  ExpectError(ParsePlan(wrong, "plan.bin", &plan), StatusCode::kDataLoss,
              "corrupt train.bin: its checksum does not match its contents (stored ");
}

TEST(PlanTest, EveryPrefixIsRejected) {
  auto small = SamplePlan();
  const std::string bytes = Pack(*small);
  ASSERT_GT(bytes.size(), 500u);
  for (size_t n = 0; n < bytes.size(); ++n) {
    Plan plan;
    Status status = ParsePlan(bytes.substr(0, n), "plan.bin", &plan);
    ASSERT_FALSE(status.ok()) << "a prefix of " << n << " bytes loaded";
    EXPECT_FALSE(plan.is_loaded());
    EXPECT_TRUE(status.code() == StatusCode::kDataLoss ||
                status.code() == StatusCode::kInvalidArgument)
        << status.ToString();
    EXPECT_EQ(status.message().rfind("plan.bin: ", 0), 0u) << status.message();
    EXPECT_EQ(status.message().find('\n'), std::string::npos);
  }
}

// Byte edits with a fixed seed: each input loads into a plan that is safe
// to walk, or is rejected with a one-line message. Crashes, sanitizer
// reports and aborts fail the test.
TEST(PlanTest, ByteFlipFuzz) {
  // The edits go into the FlatBuffer, which is then sealed (as a buggy
  // writer would produce it): the checksum would catch every one of them
  // (ChecksumCatchesEveryBitFlip), and this test is about what lies behind it.
  std::vector<std::string> seeds = {PackUnsealed(*SamplePlan())};
  {
    auto full = SamplePlan();
    full->lora.reset();
    full->model->rope_scaling.reset();
    seeds.push_back(PackUnsealed(*full));
  }
  std::mt19937_64 rng(20240611);
  auto below = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  std::map<std::string, int> outcomes;
  int accepted = 0;
  TempDir dir;
  const int kIterations = 4000;
  for (int iter = 0; iter < kIterations; ++iter) {
    std::string bytes = seeds[iter % seeds.size()];
    const size_t edits = 1 + below(4);
    for (size_t e = 0; e < edits; ++e) {
      const size_t pos = below(bytes.size());
      switch (below(4)) {
        case 0:
          bytes[pos] ^= static_cast<char>(1u << below(8));
          break;
        case 1:
          bytes[pos] = static_cast<char>(below(256));
          break;
        case 2:  // a small integer, as offsets and ids are
          bytes[pos] = static_cast<char>(below(16));
          break;
        default:  // an extreme byte
          bytes[pos] = static_cast<char>(below(2) ? 0xff : 0x80);
          break;
      }
    }
    bytes = SealPlan(bytes);
    Plan plan;
    Status status = ParsePlan(bytes, "fuzz.bin", &plan);
    if (status.ok()) {
      ++accepted;
      outcomes["accepted"]++;
      WalkPlan(plan);
      // The inspector must handle anything the loader accepts.
      if (accepted <= 100) {
        const std::string path = dir.Join("fuzz.bin");
        WriteFile(path, bytes);
        for (bool json : {false, true}) {
          std::vector<const char*> argv = {"lorart", "inspect", path.c_str(), "--tensors"};
          if (json) argv.push_back("--json");
          std::ostringstream out, err;
          EXPECT_EQ(cli::Main(static_cast<int>(argv.size()), argv.data(), out, err), 0)
              << err.str();
        }
      }
    } else {
      EXPECT_EQ(status.message().rfind("fuzz.bin: ", 0), 0u) << status.message();
      EXPECT_EQ(status.message().find('\n'), std::string::npos) << status.message();
      std::string m = status.message();
      if (m.find("verification failed") != std::string::npos) {
        outcomes["verifier"]++;
      } else if (m.find("size prefix") != std::string::npos) {
        outcomes["size prefix"]++;
      } else if (m.find("identifier") != std::string::npos) {
        outcomes["identifier"]++;
      } else if (m.find("format version") != std::string::npos) {
        outcomes["version"]++;
      } else {
        outcomes["semantic"]++;
      }
    }
  }
  std::string summary;
  for (const auto& [k, v] : outcomes) summary += StrFormat(" %s=%d", k.c_str(), v);
  std::printf("byte-flip fuzz over %d inputs:%s\n", kIterations, summary.c_str());
  // Every stage is reached.
  for (const char* stage : {"accepted", "verifier", "semantic", "version", "identifier",
                            "size prefix"}) {
    EXPECT_GT(outcomes[stage], 0) << stage;
  }
}

// ---- semantic errors -------------------------------------------------------

struct SemanticCase {
  const char* name;
  std::function<void(s::PlanT&)> mutate;
  StatusCode code;
  std::string needle;
};

void PrintTo(const SemanticCase& c, std::ostream* os) { *os << c.name; }

class PlanSemanticTest : public ::testing::TestWithParam<SemanticCase> {};

TEST_P(PlanSemanticTest, Rejected) {
  const SemanticCase& c = GetParam();
  auto plan = SamplePlan();
  c.mutate(*plan);
  Plan loaded;
  ExpectError(ParsePlan(Pack(*plan), "plan.bin", &loaded), c.code, c.needle);
  EXPECT_FALSE(loaded.is_loaded());
}

s::TensorT& T(s::PlanT& p, uint32_t id) { return *p.tensors[id]; }
s::ProgramT& Program(s::PlanT& p, uint32_t i) { return *p.programs[i]; }

const StatusCode kInvalid = StatusCode::kInvalidArgument;
const StatusCode kRange = StatusCode::kOutOfRange;

// lora-data-parallel's bucket over grad.lora_A (64 bytes), as lorac lays it
// out: kernel 4 starts it at the end of train_step (launch 3, synced by the
// loss scalar), kernel 5 waits for it first thing in optimizer_step (launch 0).
void AddBucket(s::PlanT& p, int64_t bytes = 64) {
  for (const char* kind : {"grad_all_reduce_start", "grad_all_reduce_wait"}) {
    auto k = std::make_unique<s::KernelT>();
    k->kind = kind;
    k->params.push_back(Param("bucket", Int(0)));
    k->params.push_back(Param("tensors", Int(1)));
    k->params.push_back(Param("bytes", Int(bytes)));
    p.kernels.push_back(std::move(k));
  }
  Program(p, 0).launches.push_back(MakeLaunch(4, {kLoss}, {kGradA}));
  auto& opt = Program(p, 1).launches;
  opt.insert(opt.begin(), MakeLaunch(5, {}, {kGradA}));
}
void InsertLaunch(s::PlanT& p, uint32_t program, size_t at, std::unique_ptr<s::LaunchT> launch) {
  auto& l = Program(p, program).launches;
  l.insert(l.begin() + static_cast<std::ptrdiff_t>(at), std::move(launch));
}
void EraseLaunch(s::PlanT& p, uint32_t program, size_t at) {
  auto& l = Program(p, program).launches;
  l.erase(l.begin() + static_cast<std::ptrdiff_t>(at));
}

TEST(PlanTest, GradientBucketLoads) {
  auto plan = SamplePlan();
  AddBucket(*plan);
  Plan loaded;
  Status status = ParsePlan(Pack(*plan), "plan.bin", &loaded);
  ASSERT_TRUE(status.ok()) << status.ToString();
}

const SemanticCase kSemanticCases[] = {
    // Ids and indices.
    {"LaunchInputOutOfRange", [](s::PlanT& p) { Program(p, 0).launches[1]->inputs[2] = 10; },
     kRange,
     "program 'train_step': launch 1: field 'inputs'[2] is 10, not a tensor id (the plan has 10 "
     "tensors)"},
    {"LaunchOutputOutOfRange",
     [](s::PlanT& p) { Program(p, 1).launches[0]->outputs[1] = 0xffffffffu; }, kRange,
     "program 'optimizer_step': launch 0: field 'outputs'[1] is 4294967295"},
    {"ProgramInputOutOfRange", [](s::PlanT& p) { Program(p, 2).inputs = {3, 99}; }, kRange,
     "program 'eval_step': field 'inputs'[1] is 99"},
    {"ProgramOutputOutOfRange", [](s::PlanT& p) { Program(p, 0).outputs = {10}; }, kRange,
     "program 'train_step': field 'outputs'[0] is 10"},
    {"KernelIndexOutOfRange", [](s::PlanT& p) { Program(p, 0).launches[2]->kernel = 4; }, kRange,
     "program 'train_step': launch 2: field 'kernel' is 4, not a kernel index (the plan has 4 "
     "kernels)"},
    // Arena buffers.
    {"BufferPastArena", [](s::PlanT& p) { T(p, kLr).buffer = std::make_unique<s::Buffer>(252, 8); },
     kRange, "tensor 9 'lr': field 'buffer' (offset 252, size 8) ends past the arena (256 bytes)"},
    {"BufferOffsetOverflows",
     [](s::PlanT& p) {
       T(p, kLr).buffer = std::make_unique<s::Buffer>(UINT64_MAX - 3, 8);
     },
     kRange, "ends past the arena"},
    {"BufferSizeHuge",
     [](s::PlanT& p) { T(p, kLr).buffer = std::make_unique<s::Buffer>(0, UINT64_MAX); }, kRange,
     "ends past the arena"},
    {"ArenaShrunk", [](s::PlanT& p) { p.arena->size = 100; }, kRange,
     "tensor 7 'hidden': field 'buffer' (offset 64, size 64) ends past the arena (100 bytes)"},
    {"TensorLargerThanBuffer", [](s::PlanT& p) { T(p, kHidden).shape = {1, 4, 9}; }, kInvalid,
     "tensor 7 'hidden': dtype BF16 x shape [1, 4, 9] needs 72 bytes but field 'buffer' holds 64"},
    {"TensorLargerThanBufferByDtype", [](s::PlanT& p) { T(p, kHidden).dtype = s::DType::F32; },
     kInvalid, "needs 128 bytes but field 'buffer' holds 64"},
    {"MisalignedBuffer",
     [](s::PlanT& p) { T(p, kTokens).buffer = std::make_unique<s::Buffer>(2, 16); }, kInvalid,
     "tensor 6 'tokens': field 'buffer.offset' 2 is not a multiple of 4"},
    {"ArenaWithoutBuffer", [](s::PlanT& p) { T(p, kLoss).buffer.reset(); }, kInvalid,
     "tensor 8 'loss': storage is Arena but field 'buffer' is missing"},
    {"PersistentWithBuffer",
     [](s::PlanT& p) { T(p, kGradA).buffer = std::make_unique<s::Buffer>(0, 64); }, kInvalid,
     "tensor 5 'grad.lora_A': field 'buffer' is set but storage is Persistent"},
    {"ArenaAlignmentNotPowerOfTwo", [](s::PlanT& p) { p.arena->alignment = 48; }, kInvalid,
     "field 'arena.alignment' is 48, not a power of two"},
    // Programs.
    {"DuplicateProgramName", [](s::PlanT& p) { Program(p, 2).name = "train_step"; }, kInvalid,
     "programs 0 and 2 are both named 'train_step'"},
    {"ProgramWithoutName", [](s::PlanT& p) { Program(p, 1).name = ""; }, kInvalid,
     "program 1: field 'name' is missing"},
    // A twin of a Trainable tensor (moment, gradient, master copy) has its
    // shape: the runtime copies element for element (a changed shape used to
    // make InitTrainable write past the master copy).
    {"TwinShapeDiffers", [](s::PlanT& p) { T(p, kLoraA).shape = {2097160, 8}; }, kInvalid,
     "tensor 4 'adamw.m.lora_A': shape [2, 8] differs from the shape [2097160, 8] of tensor 2 "
     "'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', which field 'of' names"},
    {"GradientShapeDiffers", [](s::PlanT& p) { T(p, kGradA).shape = {8, 2}; }, kInvalid,
     "tensor 5 'grad.lora_A': shape [8, 2] differs from the shape [2, 8]"},
    {"MasterCopyNotF32",
     [](s::PlanT& p) {
       T(p, kMomentA).init = s::TensorInit::CopyOfOwner;
       T(p, kMomentA).dtype = s::DType::BF16;
     },
     kInvalid, "tensor 4 'adamw.m.lora_A': init CopyOfOwner makes an F32 copy, but the dtype is BF16"},
    // Program signatures (format version 3).
    {"PortsMissing", [](s::PlanT& p) { Program(p, 0).input_ports.clear(); }, kInvalid,
     "program 'train_step': field 'input_ports' has 0 entries for 1 inputs (one port per "
     "tensor)"},
    {"UnknownPort",
     [](s::PlanT& p) { Program(p, 2).output_ports = {static_cast<s::OutputPort>(200)}; },
     kInvalid,
     "program 'eval_step': field 'output_ports'[0] has the value 200, which this lorart does not "
     "know"},
    {"PortTwice",
     [](s::PlanT& p) {
       Program(p, 0).inputs = {kTokens, kTokens};
       Program(p, 0).input_ports = {s::InputPort::Tokens, s::InputPort::Tokens};
     },
     kInvalid, "program 'train_step': field 'input_ports' names 'tokens' twice"},
    {"PortWrongDtype",
     [](s::PlanT& p) { Program(p, 0).input_ports = {s::InputPort::LossMask}; }, kInvalid,
     "program 'train_step': inputs[0] is tensor 6 'tokens', I32 of rank 2, but 'loss_mask' is "
     "BOOL of rank 2"},
    {"PortWrongRank",
     [](s::PlanT& p) { Program(p, 1).input_ports = {s::InputPort::LastIndex}; }, kInvalid,
     "program 'optimizer_step': inputs[0] is tensor 9 'lr', F32 of rank 0, but 'last_index' is "
     "I32 of rank 1"},
    {"OutputPortWrongDtype",
     [](s::PlanT& p) { Program(p, 0).output_ports = {s::OutputPort::Count}; }, kInvalid,
     "outputs[0] is tensor 8 'loss', F32 of rank 0, but 'count' is I64 of rank 0"},
    // Required tables.
    {"NoModel", [](s::PlanT& p) { p.model.reset(); }, kInvalid, "field 'model' is missing"},
    {"NoArena", [](s::PlanT& p) { p.arena.reset(); }, kInvalid, "field 'arena' is missing"},
    {"NoDefaults", [](s::PlanT& p) { p.defaults.reset(); }, kInvalid,
     "field 'defaults' is missing"},
    {"NoProvenance", [](s::PlanT& p) { p.provenance.reset(); }, kInvalid,
     "field 'provenance' is missing"},
    {"NoArchitecture", [](s::PlanT& p) { p.model->architecture.clear(); }, kInvalid,
     "field 'model.architecture' is missing"},
    {"ZeroHiddenSize", [](s::PlanT& p) { p.model->hidden_size = 0; }, kInvalid,
     "field 'model.hidden_size' is 0"},
    {"HeadsNotMultipleOfKv", [](s::PlanT& p) { p.model->num_key_value_heads = 3; }, kInvalid,
     "field 'model.num_attention_heads' (2) is not a multiple of 'model.num_key_value_heads' (3)"},
    {"UnknownRopeKind",
     [](s::PlanT& p) { p.model->rope_scaling->kind = static_cast<s::RopeScalingKind>(9); },
     kInvalid, "field 'model.rope_scaling.kind' has the value 9"},
    {"LoraRankZero", [](s::PlanT& p) { p.lora->r = 0; }, kInvalid, "field 'lora.r' is 0"},
    {"LoraDropoutOne", [](s::PlanT& p) { p.lora->dropout = 1; }, kInvalid,
     "field 'lora.dropout' is 1, not in [0, 1)"},
    {"NoMicroBatch", [](s::PlanT& p) { p.defaults->micro_batch = 0; }, kInvalid,
     "field 'defaults.micro_batch' is 0"},
    {"NanLearningRate",
     [](s::PlanT& p) { p.defaults->lr = std::numeric_limits<double>::quiet_NaN(); }, kInvalid,
     "field 'defaults.lr' is nan"},
    {"Beta2One", [](s::PlanT& p) { p.defaults->adam_beta2 = 1.0; }, kInvalid,
     "field 'defaults.adam_beta2' is 1, not in [0, 1)"},
    // Tensors.
    {"UnknownDtype", [](s::PlanT& p) { T(p, kTokens).dtype = static_cast<s::DType>(42); },
     kInvalid, "tensor 6 'tokens': field 'dtype' has the value 42, which this lorart does not know"},
    {"UnknownRole", [](s::PlanT& p) { T(p, kTokens).role = static_cast<s::Role>(8); }, kInvalid,
     "tensor 6 'tokens': field 'role' has the value 8"},
    {"UnknownStorage", [](s::PlanT& p) { T(p, kTokens).storage = static_cast<s::Storage>(-1); },
     kInvalid, "field 'storage' has the value -1"},
    {"NegativeDimension", [](s::PlanT& p) { T(p, kHidden).shape = {1, -4, 8}; }, kInvalid,
     "tensor 7 'hidden': field 'shape' [1, -4, 8] has a negative dimension"},
    {"TooManyElements",
     [](s::PlanT& p) { T(p, kHidden).shape = {INT64_MAX, 2}; }, kInvalid,
     "has more than 2^63 elements"},
    {"TooManyBytes",
     [](s::PlanT& p) {
       T(p, kHidden).dtype = s::DType::I64;
       T(p, kHidden).shape = {INT64_MAX / 4 + 1};
     },
     kInvalid, "tensor 7 'hidden': field 'shape' [2305843009213693952] needs more than 2^64 bytes"},
    {"Nf4WithoutQuant", [](s::PlanT& p) { T(p, kQProj).quant.reset(); }, kInvalid,
     "tensor 1 'model.layers.0.self_attn.q_proj.weight': dtype NF4 needs field 'quant'"},
    {"Nf4CodeBytes", [](s::PlanT& p) { T(p, kQProj).quant->code_bytes = 31; }, kInvalid,
     "field 'quant.code_bytes' is 31, but 64 NF4 elements take 32 bytes of codes"},
    {"Nf4OddBlock", [](s::PlanT& p) { T(p, kQProj).quant->block_size = 63; }, kInvalid,
     "field 'quant.block_size' is 63"},
    {"Nf4NoScales", [](s::PlanT& p) { T(p, kQProj).quant->scale_bytes = 0; }, kInvalid,
     "field 'quant.scale_bytes' is 0"},
    {"QuantOnFloat",
     [](s::PlanT& p) { T(p, kEmbed).quant = std::make_unique<s::QuantInfoT>(); }, kInvalid,
     "field 'quant' is set but dtype is BF16"},
    {"FrozenWithoutName", [](s::PlanT& p) { T(p, kEmbed).name.clear(); }, kInvalid,
     "tensor 0: field 'name' is missing (a frozen tensor is bound by name)"},
    {"FrozenInArena",
     [](s::PlanT& p) {
       T(p, kEmbed).storage = s::Storage::Arena;
       T(p, kEmbed).buffer = std::make_unique<s::Buffer>(0, 256);
     },
     kInvalid, "a frozen tensor must have storage Persistent"},
    {"DuplicateParameterName",
     [](s::PlanT& p) { T(p, kLoraB).name = T(p, kLoraA).name; }, kInvalid,
     std::string("tensors 2 and 3 are both named '") + kLoraAName + "'"},
    {"OptimizerStateWithoutOf", [](s::PlanT& p) { T(p, kMomentA).of.clear(); }, kInvalid,
     "tensor 4 'adamw.m.lora_A': field 'of' is missing"},
    {"GradientOfUnknown", [](s::PlanT& p) { T(p, kGradA).of = "nope"; }, kInvalid,
     "tensor 5 'grad.lora_A': field 'of' is 'nope', which is not the name of a Trainable tensor"},
    {"GradientOfFrozen", [](s::PlanT& p) { T(p, kGradA).of = "model.embed_tokens.weight"; },
     kInvalid, "which is not the name of a Trainable tensor"},
    {"OfOnActivation", [](s::PlanT& p) { T(p, kHidden).of = kLoraAName; }, kInvalid,
     "tensor 7 'hidden': field 'of' is set but role is activation"},
    {"CheckpointInitWithoutName",
     [](s::PlanT& p) {
       T(p, kHidden).name.clear();
       T(p, kHidden).init = s::TensorInit::Checkpoint;
     },
     kInvalid, "tensor 7: field 'name' is missing (init Checkpoint binds the tensor by name)"},
    {"CopyOfOwnerWithoutOf",
     [](s::PlanT& p) { T(p, kHidden).init = s::TensorInit::CopyOfOwner; }, kInvalid,
     "tensor 7 'hidden': field 'of' is missing (init CopyOfOwner copies the tensor it names)"},
    // Kernels.
    {"KernelWithoutKind", [](s::PlanT& p) { p.kernels[2]->kind.clear(); }, kInvalid,
     "kernel 2: field 'kind' is missing"},
    {"ParamWithoutValue", [](s::PlanT& p) { p.kernels[0]->params[0]->value.Reset(); }, kInvalid,
     "kernel 0 'embedding_fwd': param 'vocab': field 'value' is missing"},
    {"ParamWithoutKey", [](s::PlanT& p) { p.kernels[0]->params[0]->key.clear(); }, kInvalid,
     "kernel 0 'embedding_fwd': field 'params'[0]: field 'key' is missing"},
    {"DuplicateParamKey", [](s::PlanT& p) { p.kernels[1]->params[2]->key = "scaling"; }, kInvalid,
     "kernel 1 'fused_linear_fwd': params 0 and 2 both have the key 'scaling'"},
    // Against the kind's declaration (kernel_kinds.def).
    {"UnknownKernelKind", [](s::PlanT& p) { p.kernels[2]->kind = "softmax_fwd"; }, kInvalid,
     "kernel 2 'softmax_fwd': unknown kernel kind 'softmax_fwd'"},
    {"MissingRequiredParam", [](s::PlanT& p) { p.kernels[3]->params.erase(p.kernels[3]->params.begin() + 2); },
     kInvalid, "kernel 3 'adamw': required parameter 'beta2' (float) of kernel kind 'adamw' is missing"},
    {"UndeclaredParam", [](s::PlanT& p) { p.kernels[2]->params.push_back(Param("tile", Ints({64, 64}))); },
     kInvalid, "kernel 2 'global_norm': parameter 'tile' is not a parameter of kernel kind "
     "'global_norm'"},
    {"MistypedParam", [](s::PlanT& p) { p.kernels[1]->params[2]->value.Set(Float(4.0)); }, kInvalid,
     "kernel 1 'fused_linear_fwd': parameter 'm' of kernel kind 'fused_linear_fwd' must be int, got "
     "float"},
    {"ListParam", [](s::PlanT& p) { p.kernels[3]->params[1]->value.Set(Floats({0.9, 0.99})); },
     kInvalid, "kernel 3 'adamw': parameter 'beta1' of kernel kind 'adamw' must be float, got list"},
    {"CudaWithoutEntry", [](s::PlanT& p) { p.kernels[1]->entry.clear(); }, kInvalid,
     "kernel 1 'fused_linear_fwd': field 'cuda_source' is set but field 'entry' is missing"},
    {"CudaWithoutGrid", [](s::PlanT& p) { p.kernels[1]->grid.reset(); }, kInvalid,
     "field 'cuda_source' is set but field 'grid' is missing"},
    {"CudaZeroBlock",
     [](s::PlanT& p) { p.kernels[1]->block = std::make_unique<s::Dim3>(128, 0, 1); }, kInvalid,
     "kernel 1 'fused_linear_fwd': field 'block' (128, 0, 1) has a zero dimension"},
    {"CudaStepWithoutEntry",
     [](s::PlanT& p) {
       auto st = std::make_unique<s::CudaStepT>();
       st->grid = std::make_unique<s::Dim3>(1, 1, 1);
       st->block = std::make_unique<s::Dim3>(32, 1, 1);
       p.kernels[1]->cuda_next.push_back(std::move(st));
     },
     kInvalid, "kernel 1 'fused_linear_fwd': cuda_next[0]: field 'entry' is missing"},
    {"CudaStepZeroGrid",
     [](s::PlanT& p) {
       auto st = std::make_unique<s::CudaStepT>();
       st->entry = "k2";
       st->grid = std::make_unique<s::Dim3>(0, 1, 1);
       st->block = std::make_unique<s::Dim3>(32, 1, 1);
       p.kernels[1]->cuda_next.push_back(std::move(st));
     },
     kInvalid, "cuda_next[0]: a launch dimension (0, 1, 1) is zero"},
    {"WorkspaceOutsideArena",
     [](s::PlanT& p) {
       p.kernels[1]->cuda_workspace_bytes = 64;
       p.programs[0]->launches[1]->workspace_offset = p.arena->size;
     },
     kRange, "launch 1: the kernel's workspace (64 bytes at offset"},
    // Launch operands against kernel_kinds.def: count, dtype, size, NF4 blocks.
    {"OperandMissing", [](s::PlanT& p) { Program(p, 0).launches[0]->inputs.pop_back(); }, kInvalid,
     "program 'train_step': launch 0 (kernel 0 'embedding_fwd'): kernel kind 'embedding_fwd' "
     "takes 2 inputs (table, ids) and 1 outputs (y) with these parameters, but the launch has 1 "
     "and 1"},
    {"OptionalOperandMissing",
     [](s::PlanT& p) { p.kernels[1]->params[5]->value.Set(Int(1)); },  // bias
     kInvalid,
     "program 'train_step': launch 1 (kernel 1 'fused_linear_fwd'): kernel kind "
     "'fused_linear_fwd' takes 5 inputs (x, W, bias, A, B) and 1 outputs (y) with these "
     "parameters, but the launch has 4 and 1"},
    {"ExtraOperand", [](s::PlanT& p) { Program(p, 2).launches[1]->inputs.push_back(kLoss); },
     kInvalid, "program 'eval_step': launch 1 (kernel 2 'global_norm'): kernel kind 'global_norm' "
     "takes 1 inputs (g...) and 1 outputs (norm)"},
    {"NegativeOperandCount", [](s::PlanT& p) { p.kernels[2]->params[0]->value.Set(Int(-1)); },
     kInvalid, "operand 'g': its count tensors is -1, not a count of operands"},
    {"OperandDtype", [](s::PlanT& p) { Program(p, 0).launches[0]->inputs[1] = kLoraA; }, kInvalid,
     "program 'train_step': launch 0 (kernel 0 'embedding_fwd'): input 1 'ids' (tensor 2 "
     "'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight') is F32, but kernel kind "
     "'embedding_fwd' takes I32 or I64 there"},
    {"OutputDtype", [](s::PlanT& p) { Program(p, 1).launches[0]->outputs[0] = kLoss; }, kInvalid,
     "output 0 'p_new' (tensor 8 'loss') has 1 elements, but kernel kind 'adamw' takes "
     "[elements] = 16 there with these parameters"},
    {"OperandSize", [](s::PlanT& p) { p.kernels[0]->params[1]->value.Set(Int(5)); }, kInvalid,
     "program 'train_step': launch 0 (kernel 0 'embedding_fwd'): input 1 'ids' (tensor 6 "
     "'tokens') has 4 elements, but kernel kind 'embedding_fwd' takes [tokens] = 5 there with "
     "these parameters"},
    {"DenseWeightIsNf4", [](s::PlanT& p) { p.kernels[1]->params[1]->value.Set(String("dense")); },
     kInvalid,
     "input 1 'W' (tensor 1 'model.layers.0.self_attn.q_proj.weight') is NF4, but kernel kind "
     "'fused_linear_fwd' takes a float type (a dense weight) there"},
    {"Nf4WeightIsDense",
     [](s::PlanT& p) { Program(p, 0).launches[1]->inputs[1] = kLoraB; },
     kInvalid,
     "input 1 'W' (tensor 3 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight') is "
     "F32, but kernel kind 'fused_linear_fwd' takes NF4 (weight_format \"nf4\") there"},
    {"Nf4BlockSizeDiffers", [](s::PlanT& p) { p.kernels[1]->params[7]->value.Set(Int(32)); },
     kInvalid,
     "input 1 'W' (tensor 1 'model.layers.0.self_attn.q_proj.weight') is NF4 with block_size 64 "
     "and double_quant_block 0, but the kernel's parameters say 32 and 0"},
    {"Nf4ScaleBytes", [](s::PlanT& p) { T(p, kQProj).quant->scale_bytes = 3; }, kInvalid,
     "field 'quant.scale_bytes' is 3, but 64 NF4 elements in blocks of 64 (double quantization "
     "block 0) take 4 bytes of scales"},
    {"Nf4LayoutInvalid", [](s::PlanT& p) { T(p, kQProj).quant->block_size = 6; }, kInvalid,
     "field 'quant'"},
    // Gradient buckets (lora-data-parallel): summed in place between start and wait.
    {"BucketBytesDiffer", [](s::PlanT& p) { AddBucket(p, 60); }, kInvalid,
     "program 'train_step', launch 3 (kernel 4 'grad_all_reduce_start'): parameter 'bytes' is 60, "
     "but its accumulators hold 64 bytes"},
    {"BucketNeverWaited",
     [](s::PlanT& p) {
       AddBucket(p);
       EraseLaunch(p, 1, 0);
     },
     kInvalid, "bucket 0 is started (program 'train_step', launch 3) but never waited for"},
    {"BucketNeverStarted",
     [](s::PlanT& p) {
       AddBucket(p);
       EraseLaunch(p, 0, 3);
     },
     kInvalid, "bucket 0 is waited for (program 'optimizer_step', launch 0) but never started"},
    {"BucketReadBeforeItsWait",
     [](s::PlanT& p) {
       AddBucket(p);
       auto& opt = Program(p, 1).launches;
       std::swap(opt[0], opt[1]);  // the optimizer reads grad.lora_A, then waits
     },
     kInvalid,
     "program 'optimizer_step', launch 0 (kernel 3 'adamw') uses tensor 5 'grad.lora_A' while "
     "bucket 0 sums it over the ranks (from program 'train_step', launch 3 to program "
     "'optimizer_step', launch 1)"},
    {"BucketUsedAfterItsStart",
     [](s::PlanT& p) {
       AddBucket(p);
       InsertLaunch(p, 0, 4, MakeLaunch(2, {kGradA}, {kLoss}));
     },
     kInvalid,
     "program 'train_step', launch 4 (kernel 2 'global_norm') uses tensor 5 'grad.lora_A' while "
     "bucket 0 sums it"},
    {"BucketStartedTwice",
     [](s::PlanT& p) {
       AddBucket(p);
       InsertLaunch(p, 0, 4, MakeLaunch(4, {kLoss}, {kGradA}));
     },
     kInvalid,
     "bucket 0 is started twice (program 'train_step', launch 3; program 'train_step', launch 4)"},
    {"BucketWaitsForOtherTensors",
     [](s::PlanT& p) {
       AddBucket(p);
       Program(p, 1).launches[0]->outputs = {kMomentA};
     },
     kInvalid,
     "bucket 0's wait (program 'optimizer_step', launch 0) lists other accumulators than its "
     "start (program 'train_step', launch 3)"},
    {"BucketWaitedBeforeItStarts",
     [](s::PlanT& p) {
       AddBucket(p);
       EraseLaunch(p, 1, 0);
       InsertLaunch(p, 0, 3, MakeLaunch(5, {}, {kGradA}));
     },
     kInvalid,
     "bucket 0 is waited for (program 'train_step', launch 3) before it starts (program "
     "'train_step', launch 4)"},
};

INSTANTIATE_TEST_SUITE_P(All, PlanSemanticTest, ::testing::ValuesIn(kSemanticCases),
                         [](const ::testing::TestParamInfo<SemanticCase>& info) {
                           return std::string(info.param.name);
                         });

// An unknown union member (a newer writer's param type): the verifier lets
// it through, the loader rejects it by name.
TEST(PlanTest, UnknownParamType) {
  std::string bytes = SampleBytes();
  // Find the embedding kernel's param type byte: patch through the view.
  Plan plan;
  ASSERT_TRUE(ParsePlan(bytes, "plan.bin", &plan).ok());
  const s::KernelParam* param = plan.kernel(0).params()->Get(0);
  ASSERT_EQ(param->value_type(), s::ParamValue::IntValue);
  // The type byte is the field at VT_VALUE_TYPE of that table.
  const auto* table = reinterpret_cast<const flatbuffers::Table*>(param);
  const uint8_t* field = table->GetAddressOf(s::KernelParam::VT_VALUE_TYPE);
  ASSERT_NE(field, nullptr);
  bytes[field - plan.data()] = 9;
  // Resealed, as a writer with that bug would produce it.
  bytes = SealPlan(std::string_view(bytes).substr(0, bytes.size() - kPlanTrailerBytes));
  ExpectError(ParsePlan(bytes, "plan.bin", &plan), kInvalid,
              "kernel 0 'embedding_fwd': param 'vocab': field 'value' has the type 9, which this "
              "lorart does not know");
}

TEST(PlanTest, HelperFunctions) {
  EXPECT_EQ(ElementSize(s::DType::BF16), 2u);
  EXPECT_EQ(ElementSize(s::DType::I64), 8u);
  EXPECT_EQ(ElementSize(s::DType::BOOL), 1u);
  EXPECT_EQ(ElementSize(s::DType::NF4), 0u);
  EXPECT_EQ(ElementSize(static_cast<s::DType>(50)), 0u);
  EXPECT_EQ(DTypeToString(s::DType::BF16), "BF16");
  EXPECT_EQ(DTypeToString(static_cast<s::DType>(50)), "DType(50)");
  EXPECT_EQ(RoleToString(s::Role::OptimizerState), "optimizer_state");
  EXPECT_EQ(RoleToString(static_cast<s::Role>(-3)), "Role(-3)");
}

// ---- lorart inspect --------------------------------------------------------

struct CliResult {
  int code;
  std::string out;
  std::string err;
};

CliResult Lorart(std::vector<std::string> args) {
  args.insert(args.begin(), "lorart");
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  std::ostringstream out, err;
  int code = cli::Main(static_cast<int>(argv.size()), argv.data(), out, err);
  return {code, out.str(), err.str()};
}

TEST(PlanInspectTest, Text) {
  TempDir dir;
  const std::string path = dir.Join("train.bin");
  WriteFile(path, SampleBytes());
  CliResult r = Lorart({"inspect", path});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  for (const char* needle : {
           ": train.bin format version 3, ",
           "model: LlamaForCausalLM, 1 layer, hidden 8, intermediate 16, 2 heads (1 kv, "
           "head_dim 4), vocab 16",
           "rope_scaling llama3 (factor 8, low_freq_factor 1, high_freq_factor 4, "
           "original_max_position_embeddings 8192)",
           "eos [2, 3]",
           "lora: r 2, alpha 4 (scaling 2), dropout 0.05, target_modules [q_proj, v_proj], "
           "layers [0]",
           "tensors: 10, ",
           "  persistent 6 (548 B), arena 4 (88 B)\n"
           "  role             count  bytes\n"
           "  frozen               2    292\n"
           "  trainable            2    128\n"
           "  optimizer_state      1     64\n",
           "arena: 256 bytes (256 B), alignment 64",
           "kernels: 4",
           "  1  fused_linear_fwd (fused_linear_q_proj): cuda 41 bytes, entry k, grid (4, 1, 1), "
           "block (128, 1, 1), shared 1024: scaling=2 weight_format='nf4' m=4 n=8 k=8 bias=0 "
           "rank=2 block_size=64 double_quant_block=0",
           "  3  adamw: elements=16 beta1=0.9 beta2=0.999 eps=1e-08 weight_decay=0",
           "programs: 3",
           "  train_step      3 launches (1 recomputed), 1 input, 1 output\n"
           "  optimizer_step  1 launch, 1 input, 0 outputs\n"
           "  eval_step       2 launches, 1 input, 1 output\n",
           "defaults: objective sft, micro_batch 1, seq_len 4, grad_accum 1, packing no, remat "
           "layer, memory_budget none",
           "lr 0.0002 (min 0, schedule cosine, warmup_steps 10), adam_beta1 0.9, adam_beta2 "
           "0.999, adam_eps 1e-08, weight_decay 0, max_grad_norm 1, seed 42",
           "provenance: lorac 0.1.0, source model.mlir, input_hash 0123456789abcdef",
           "  pipeline builtin.module(lora-attach-adapters)",
       }) {
    EXPECT_NE(r.out.find(needle), std::string::npos) << "missing: " << needle << "\n" << r.out;
  }
  EXPECT_EQ(r.out.find("  id  name"), std::string::npos);  // no tensor list by default
  r = Lorart({"inspect", path, "--tensors"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* needle : {
           "  id  name ",
           "   4  adamw.m.lora_A                                                  optimizer_state  "
           "F32    [2, 8]     persistent          64  "
           "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight\n",
           "   7  hidden                                                          activation       "
           "BF16   [1, 4, 8]  arena [64, +64)     64\n",
       }) {
    EXPECT_NE(r.out.find(needle), std::string::npos) << "missing: " << needle << "\n" << r.out;
  }
}

TEST(PlanInspectTest, Json) {
  TempDir dir;
  const std::string path = dir.Join("plan.lorabin");  // found by its identifier
  WriteFile(path, SampleBytes());
  CliResult r = Lorart({"inspect", path, "--json", "--tensors"});
  ASSERT_EQ(r.code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["kind"], "train.bin");
  EXPECT_EQ(j["format_version"], 3);
  EXPECT_EQ(j["model"]["architecture"], "LlamaForCausalLM");
  EXPECT_EQ(j["model"]["rope_scaling"]["kind"], "llama3");
  EXPECT_EQ(j["lora"]["target_modules"], nlohmann::json::array({"q_proj", "v_proj"}));
  EXPECT_EQ(j["tensors"]["count"], 10);
  EXPECT_EQ(j["tensors"]["by_role"]["frozen"]["count"], 2);
  EXPECT_EQ(j["tensors"]["by_role"]["frozen"]["bytes"], 292);
  EXPECT_EQ(j["tensors"]["list"][7]["buffer"]["offset"], 64);
  EXPECT_EQ(j["tensors"]["list"][5]["of"], kLoraAName);
  EXPECT_EQ(j["arena"]["size"], 256);
  EXPECT_EQ(j["kernels"][1]["params"]["m"], 4);
  EXPECT_EQ(j["kernels"][1]["params"]["weight_format"], "nf4");
  EXPECT_EQ(j["kernels"][1]["grid"], nlohmann::json::array({4, 1, 1}));
  EXPECT_EQ(j["programs"][0]["name"], "train_step");
  EXPECT_EQ(j["programs"][0]["input_ports"], nlohmann::json::array({"tokens"}));
  EXPECT_EQ(j["programs"][0]["output_ports"], nlohmann::json::array({"loss_sum"}));
  EXPECT_EQ(j["programs"][0]["launches"], 3);
  EXPECT_EQ(j["programs"][0]["recompute_launches"], 1);
  EXPECT_EQ(j["defaults"]["seed"], 42);
  EXPECT_EQ(j["provenance"]["source"], "model.mlir");
}

TEST(PlanInspectTest, ErrorsAreOneLine) {
  TempDir dir;
  std::string bytes = SampleBytes();
  WriteFile(dir.Join("cut.bin"), bytes.substr(0, bytes.size() / 2));
  CliResult r = Lorart({"inspect", dir.Join("cut.bin")});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "lorart: error: " + dir.Join("cut.bin") +
                       ": truncated train.bin: the size prefix says " +
                       std::to_string(bytes.size() - 4 - kPlanTrailerBytes) +
                       " bytes follow it, and the 16-byte checksum trailer after them; the file "
                       "has " +
                       std::to_string(bytes.size() / 2 - 4) + " after the prefix (is the file "
                       "truncated?)\n");
  WriteFile(dir.Join("pytorch_model.bin"), "PK\x03\x04 not a plan at all");
  r = Lorart({"inspect", dir.Join("pytorch_model.bin")});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("not a train.bin: file identifier is "), std::string::npos) << r.err;
}

// The IR spells each port as the snake_case of its schema enumerator, and
// the conversion goes both ways for every port.
TEST(Ports, NamesRoundTrip) {
  EXPECT_EQ(PortName(InputPort::SegmentIds), "segment_ids");
  EXPECT_EQ(PortName(InputPort::Tokens), "tokens");
  EXPECT_EQ(PortName(OutputPort::EwcPenalty), "ewc_penalty");
  EXPECT_EQ(PortName(OutputPort::Logits), "logits");
  for (InputPort p : schema::EnumValuesInputPort()) {
    ASSERT_TRUE(ParseInputPort(PortName(p)).has_value()) << PortName(p);
    EXPECT_EQ(*ParseInputPort(PortName(p)), p);
    EXPECT_GE(RuleOf(p).rank, 0) << PortName(p);
  }
  for (OutputPort p : schema::EnumValuesOutputPort()) {
    ASSERT_TRUE(ParseOutputPort(PortName(p)).has_value()) << PortName(p);
    EXPECT_EQ(*ParseOutputPort(PortName(p)), p);
  }
  EXPECT_FALSE(ParseInputPort("input_ids").has_value());
  EXPECT_FALSE(ParseInputPort("loss_sum").has_value());
  EXPECT_FALSE(ParseOutputPort("tokens").has_value());
  EXPECT_EQ(PortList(/*inputs=*/false).substr(0, 16), "loss_sum, count,");
}

}  // namespace
}  // namespace lorart
