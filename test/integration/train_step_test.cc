// Compiled training steps on the CPU backend, end to end: the plans are
// compiled by lorac from test/lit/Inputs/configs/tiny-llama (float32 compute,
// LoRA r=4 on every linear layer, no dropout), the base weights are random.
//  - every trainable parameter's gradient (from @train_step's accumulators)
//    matches central finite differences of @eval_step's loss, for plain,
//    rematerialized, NF4 and full fine-tuning plans;
//  - a packed row gives the same loss and gradients as its documents run
//    separately;
//  - two accumulated micro-batches give the same update as one batch of two.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "e2e_util.h"
#include "lorart/exec/session.h"
#include "lorart/io/mapped_file.h"
#include "lorart/io/safetensors.h"
#include "lorart/io/safetensors_write.h"

namespace lorart {
namespace {

using lorart::testing::StateOf;

std::string Plan(const std::string& name) {
  return std::string(LORAC_TEST_PLAN_DIR) + "/" + name + ".bin";
}

// One random model directory for the whole suite.
const std::string& ModelDir() {
  static std::string dir = lorart::testing::MakeTinyModel("lorart_e2e_model", "f32", 7);
  return dir;
}
// The tiny Qwen3 (plans named qwen3_*).
const std::string& Qwen3ModelDir() {
  static std::string dir =
      lorart::testing::MakeTinyModel("lorart_e2e_qwen3", "f32", 7, LORAC_TINY_QWEN3_CONFIG);
  return dir;
}

// A random positive diagonal Fisher for every init-Fisher tensor of an EWC
// plan (what lorart fisher writes), by the name of the weight in its `of`.
std::string FisherFile(const lorart::Plan& plan) {
  std::string path = ::testing::TempDir() + "lorart_e2e_fisher.safetensors";
  std::vector<TensorToWrite> tensors;
  std::vector<std::vector<float>> data;
  data.reserve(plan.num_tensors());
  for (uint32_t id = 0; id < plan.num_tensors(); ++id) {
    const schema::Tensor& t = plan.tensor(id);
    if (t.init() != schema::TensorInit::Fisher || !t.of()) continue;
    std::string w = t.of()->str();
    std::vector<int64_t> shape(t.shape()->begin(), t.shape()->end());
    std::mt19937_64 rng(std::hash<std::string>()(w));
    std::uniform_real_distribution<float> d(0.0f, 2.0f);
    data.emplace_back(static_cast<size_t>(shape[0] * shape[1]));
    for (float& x : data.back()) x = d(rng);
    tensors.push_back({w, lorart::DType::kF32, shape, data.back().data()});
  }
  EXPECT_FALSE(tensors.empty());
  EXPECT_TRUE(WriteSafetensors(path, tensors).ok());
  return path;
}

std::unique_ptr<Session> Open(const std::string& plan) {
  SessionOptions so;
  so.num_threads = 2;
  const std::string& model = plan.rfind("qwen3_", 0) == 0 ? Qwen3ModelDir() : ModelDir();
  std::unique_ptr<Session> s = lorart::testing::OpenBound(Plan(plan), so, model, 11);
  if (!s) return nullptr;
  if (s->HasEwcPenalty()) {
    Status st = s->BindFisher(FisherFile(s->plan()));
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
  // lora_B starts at zero, which makes every lora_A gradient zero: give the
  // adapters random values (by name, so every plan gets the same ones).
  for (const Session::StateTensor& t : StateOf(*s)) {
    if (t.name.find(".lora_") == std::string::npos || t.name.rfind("grad/", 0) == 0 ||
        t.name.rfind("adam_", 0) == 0)
      continue;
    std::string param = t.name.rfind("master/", 0) == 0 ? t.name.substr(7) : t.name;
    std::mt19937_64 rng(std::hash<std::string>()(param));
    std::uniform_real_distribution<float> d(-0.2f, 0.2f);
    float* p = reinterpret_cast<float*>(t.data);
    for (uint64_t i = 0; i < t.bytes / 4; ++i) p[i] = d(rng);
  }
  return s;
}

// A [rows, seq] batch of documents: `docs[r]` lists the document lengths of
// row r (the rest is padding).
struct Batch {
  int64_t rows, seq;
  std::vector<int32_t> tokens, positions, segments, targets;
  std::vector<uint8_t> mask;
  int64_t target_tokens = 0;
};

Batch MakeBatch(int64_t rows, int64_t seq, const std::vector<std::vector<int>>& docs,
                const std::vector<int32_t>& stream) {
  Batch b{rows, seq, {}, {}, {}, {}, {}, 0};
  size_t next = 0;
  for (int64_t r = 0; r < rows; ++r) {
    int64_t t = 0;
    int32_t seg = 0;
    for (int len : docs[r]) {
      for (int i = 0; i < len; ++i, ++t) {
        b.tokens.push_back(stream[next++ % stream.size()]);
        b.positions.push_back(i);
        b.segments.push_back(seg);
      }
      ++seg;
    }
    for (; t < seq; ++t) {
      b.tokens.push_back(0);
      b.positions.push_back(0);
      b.segments.push_back(-1);
    }
  }
  b.targets.assign(b.tokens.size(), 0);
  b.mask.assign(b.tokens.size(), 0);
  for (int64_t i = 0; i + 1 < rows * seq; ++i) {
    bool same_row = (i + 1) % seq != 0;
    if (same_row && b.segments[i] >= 0 && b.segments[i + 1] == b.segments[i]) {
      b.targets[i] = b.tokens[i + 1];
      b.mask[i] = 1;
      ++b.target_tokens;
    }
  }
  return b;
}

void Feed(Session& s, const std::string& program, const Batch& b) {
  auto set = [&](InputPort port, const void* data, size_t bytes) {
    Status st = s.SetInput(program, port, data, bytes);
    // Unpacked plans have no segment_ids input.
    if (!st.ok() && port == InputPort::SegmentIds) return;
    ASSERT_TRUE(st.ok()) << st.ToString();
  };
  set(InputPort::Tokens, b.tokens.data(), b.tokens.size() * 4);
  set(InputPort::Positions, b.positions.data(), b.positions.size() * 4);
  set(InputPort::SegmentIds, b.segments.data(), b.segments.size() * 4);
  set(InputPort::Targets, b.targets.data(), b.targets.size() * 4);
  set(InputPort::LossMask, b.mask.data(), b.mask.size());
}

double EvalLoss(Session& s, const Batch& b) {
  Feed(s, programs::kEvalStep, b);
  Status st = s.Run(programs::kEvalStep, 0);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return *s.GetScalar(programs::kEvalStep, OutputPort::LossSum);
}

double TrainLoss(Session& s, const Batch& b) {
  Feed(s, programs::kTrainStep, b);
  Status st = s.Run(programs::kTrainStep, 1);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return *s.GetScalar(programs::kTrainStep, OutputPort::LossSum);
}

std::vector<float> Floats(const Session& s, const std::string& name) {
  for (const Session::StateTensor& t : StateOf(s))
    if (t.name == name) {
      const float* p = reinterpret_cast<const float*>(t.data);
      return std::vector<float>(p, p + t.bytes / 4);
    }
  ADD_FAILURE() << "no state tensor " << name;
  return {};
}

std::vector<std::string> TrainableNames(const Session& s) {
  std::vector<std::string> names;
  for (const Session::StateTensor& t : StateOf(s))
    if (t.name.rfind("grad/", 0) == 0) names.push_back(t.name.substr(5));
  return names;
}

const std::vector<int32_t> kStream = {5, 17, 200, 33, 42, 7, 99, 150, 3, 77, 250, 12,
                                      64, 128, 8, 19, 230, 54, 91, 160};

void CheckFiniteDifferences(const std::string& plan, int per_tensor, double tol) {
  std::unique_ptr<Session> s = Open(plan);
  ASSERT_TRUE(s);
  Batch b = MakeBatch(2, 8, {{4, 4}, {8}}, kStream);
  TrainLoss(*s, b);
  std::mt19937_64 rng(3);
  int checked = 0;
  double max_scale = 0;
  for (const std::string& name : TrainableNames(*s)) {
    std::vector<float> grad = Floats(*s, "grad/" + name);
    const cpu::TensorView* p = s->FindPersistent(name);
    ASSERT_NE(p, nullptr);
    ASSERT_EQ(p->dtype, schema::DType::F32);
    double scale = 1e-6;
    for (float g : grad) scale = std::max(scale, std::fabs(double(g)));
    // Every parameter reaches the loss: its gradient cannot vanish.
    EXPECT_GT(scale, 1e-4) << plan << ": the gradient of " << name << " is ~0";
    max_scale = std::max(max_scale, scale);
    std::uniform_int_distribution<int64_t> pick(0, p->numel() - 1);
    for (int k = 0; k < per_tensor; ++k) {
      int64_t i = pick(rng);
      float orig = p->as<float>()[i];
      const float eps = 1e-2f;
      p->as<float>()[i] = orig + eps;
      double lp = EvalLoss(*s, b);
      p->as<float>()[i] = orig - eps;
      double lm = EvalLoss(*s, b);
      p->as<float>()[i] = orig;
      double numeric = (lp - lm) / (2 * eps);
      EXPECT_LE(std::fabs(numeric - grad[i]) / scale, tol)
          << plan << ": d loss / d " << name << "[" << i << "]: analytic " << grad[i]
          << ", numeric " << numeric << " (tensor scale " << scale << ")";
      ++checked;
    }
  }
  EXPECT_GT(checked, 20);
  std::printf("%s: %d gradient elements checked, largest |gradient| %.4g\n", plan.c_str(),
              checked, max_scale);
}

TEST(TrainStep, LoraGradientsMatchFiniteDifferences) {
  CheckFiniteDifferences("lora_b2_t8", 3, 2e-2);
}
TEST(TrainStep, RematerializedGradientsMatchFiniteDifferences) {
  CheckFiniteDifferences("lora_remat", 3, 2e-2);
}
TEST(TrainStep, QLoraGradientsMatchFiniteDifferences) {
  CheckFiniteDifferences("lora_nf4", 3, 2e-2);
}
TEST(TrainStep, UnpackedGradientsMatchFiniteDifferences) {
  CheckFiniteDifferences("lora_unpacked", 2, 2e-2);
}
TEST(TrainStep, FullFineTuningGradientsMatchFiniteDifferences) {
  CheckFiniteDifferences("full_b2_t8", 2, 2e-2);
}

// Qwen3: the per-head q_norm/k_norm (one [head_dim] scale over every head)
// and head_dim · heads ≠ hidden; full fine-tuning trains the scales.
TEST(TrainStep, Qwen3LoraGradientsMatchFiniteDifferences) {
  CheckFiniteDifferences("qwen3_lora", 3, 2e-2);
}
TEST(TrainStep, Qwen3FullFineTuningGradientsMatchFiniteDifferences) {
  CheckFiniteDifferences("qwen3_full", 3, 2e-2);
}

TEST(TrainStep, EwcGradientsMatchFiniteDifferences) {
  CheckFiniteDifferences("lora_ewc", 3, 2e-2);
}

// The EWC plan's loss is the plain plan's cross-entropy plus count · λ·Σ F ⊙
// ΔW², ΔW = (α/r)·B·A, summed over the adapters — computed here directly.
TEST(TrainStep, EwcLossIsTheCrossEntropyPlusThePenalty) {
  std::unique_ptr<Session> ewc = Open("lora_ewc"), plain = Open("lora_b2_t8");
  ASSERT_TRUE(ewc && plain);
  Batch b = MakeBatch(2, 8, {{4, 4}, {8}}, kStream);
  double total = EvalLoss(*ewc, b), ce = EvalLoss(*plain, b);
  double count = *ewc->GetScalar(programs::kEvalStep, OutputPort::Count);
  double penalty = *ewc->GetScalar(programs::kEvalStep, OutputPort::EwcPenalty);
  // Direct: from the adapters and the Fisher file.
  SafetensorsHeader header;
  std::string path = FisherFile(ewc->plan());
  ASSERT_TRUE(ReadSafetensorsHeader(path, &header).ok());
  MappedFile file;
  ASSERT_TRUE(file.Open(path).ok());
  const double lambda = 0.01, scaling = 8.0 / 4.0;
  double want = 0;
  int adapters = 0;
  for (const TensorInfo& t : header.tensors) {
    std::string module = t.name.substr(0, t.name.size() - 7);  // drop ".weight"
    const cpu::TensorView* a = ewc->FindPersistent("base_model.model." + module + ".lora_A.weight");
    const cpu::TensorView* bb = ewc->FindPersistent("base_model.model." + module + ".lora_B.weight");
    ASSERT_TRUE(a && bb) << module;
    const float* f = reinterpret_cast<const float*>(file.data() + header.DataOffset() + t.begin);
    int64_t n = t.shape[0], k = t.shape[1], r = a->shape[0];
    for (int64_t o = 0; o < n; ++o)
      for (int64_t c = 0; c < k; ++c) {
        double d = 0;
        for (int64_t q = 0; q < r; ++q)
          d += scaling * double(bb->as<float>()[o * r + q]) * a->as<float>()[q * k + c];
        want += double(f[o * k + c]) * d * d;
      }
    ++adapters;
  }
  want *= lambda;
  EXPECT_EQ(adapters, 14);
  EXPECT_GT(want, 1e-3);
  EXPECT_NEAR(penalty, want, 1e-4 * want);
  EXPECT_NEAR(total, ce + count * penalty, 1e-4 * std::fabs(total));
}

TEST(TrainStep, RematerializationChangesNothing) {
  std::unique_ptr<Session> a = Open("lora_b2_t8"), b = Open("lora_remat");
  ASSERT_TRUE(a && b);
  Batch batch = MakeBatch(2, 8, {{5, 3}, {8}}, kStream);
  EXPECT_DOUBLE_EQ(TrainLoss(*a, batch), TrainLoss(*b, batch));
  for (const std::string& name : TrainableNames(*a)) {
    std::vector<float> ga = Floats(*a, "grad/" + name), gb = Floats(*b, "grad/" + name);
    ASSERT_EQ(ga.size(), gb.size());
    for (size_t i = 0; i < ga.size(); ++i)
      ASSERT_NEAR(ga[i], gb[i], 1e-6 + 1e-5 * std::fabs(ga[i])) << name << "[" << i << "]";
  }
}

TEST(TrainStep, PackedRowEqualsDocumentsRunSeparately) {
  // One row of 16 holding two documents of 8, against each document alone.
  std::vector<int32_t> doc1(kStream.begin(), kStream.begin() + 8);
  std::vector<int32_t> doc2(kStream.begin() + 8, kStream.begin() + 16);
  std::vector<int32_t> both = doc1;
  both.insert(both.end(), doc2.begin(), doc2.end());
  std::unique_ptr<Session> packed = Open("lora_b1_t16"), single = Open("lora_b1_t8");
  ASSERT_TRUE(packed && single);
  double lp = TrainLoss(*packed, MakeBatch(1, 16, {{8, 8}}, both));
  double l1 = TrainLoss(*single, MakeBatch(1, 8, {{8}}, doc1));
  double l2 = TrainLoss(*single, MakeBatch(1, 8, {{8}}, doc2));
  EXPECT_NEAR(lp, l1 + l2, 1e-4 * std::fabs(lp));
  // The single-document session accumulated both documents' gradients.
  for (const std::string& name : TrainableNames(*packed)) {
    std::vector<float> gp = Floats(*packed, "grad/" + name), gs = Floats(*single, "grad/" + name);
    double scale = 1e-6;
    for (float g : gp) scale = std::max(scale, std::fabs(double(g)));
    for (size_t i = 0; i < gp.size(); ++i)
      ASSERT_LE(std::fabs(gp[i] - gs[i]) / scale, 1e-4) << name << "[" << i << "]";
  }
}

TEST(TrainStep, AccumulatedMicroBatchesEqualOneBatch) {
  std::unique_ptr<Session> whole = Open("lora_b2_t8"), micro = Open("lora_b1_t8");
  ASSERT_TRUE(whole && micro);
  Batch both = MakeBatch(2, 8, {{8}, {6}}, kStream);
  std::vector<int32_t> second(kStream.begin() + 8, kStream.end());
  Batch r0 = MakeBatch(1, 8, {{8}}, kStream), r1 = MakeBatch(1, 8, {{6}}, second);
  TrainLoss(*whole, both);
  TrainLoss(*micro, r0);
  TrainLoss(*micro, r1);
  ASSERT_EQ(both.target_tokens, r0.target_tokens + r1.target_tokens);
  for (Session* s : {whole.get(), micro.get()}) {
    ASSERT_TRUE(s->SetScalar(programs::kOptimizerStep, InputPort::LearningRate, 1e-2f).ok());
    ASSERT_TRUE(s->SetScalar(programs::kOptimizerStep, InputPort::Step, 1.0f).ok());
    ASSERT_TRUE(s->SetScalar(programs::kOptimizerStep, InputPort::TokenCount,
                             static_cast<float>(both.target_tokens))
                    .ok());
    Status st = s->Run(programs::kOptimizerStep, 0);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  for (const std::string& name : TrainableNames(*whole)) {
    std::vector<float> a = Floats(*whole, "master/" + name), b = Floats(*micro, "master/" + name);
    for (size_t i = 0; i < a.size(); ++i)
      ASSERT_NEAR(a[i], b[i], 1e-5 + 1e-4 * std::fabs(a[i])) << name << "[" << i << "]";
    // The accumulators were reset.
    for (float g : Floats(*whole, "grad/" + name)) ASSERT_EQ(g, 0.0f);
  }
}

}  // namespace
}  // namespace lorart

namespace lorart {
namespace {

// Optimizer steps on one batch lower that batch's loss (the update goes
// downhill), for adapters and for full fine-tuning.
void CheckDescent(const std::string& plan) {
  std::unique_ptr<Session> s = Open(plan);
  ASSERT_TRUE(s);
  Batch b = MakeBatch(2, 8, {{4, 4}, {8}}, kStream);
  double before = EvalLoss(*s, b);
  for (int step = 1; step <= 5; ++step) {
    TrainLoss(*s, b);
    ASSERT_TRUE(s->SetScalar(programs::kOptimizerStep, InputPort::LearningRate, 1e-2f).ok());
    ASSERT_TRUE(
        s->SetScalar(programs::kOptimizerStep, InputPort::Step, static_cast<float>(step)).ok());
    ASSERT_TRUE(s->SetScalar(programs::kOptimizerStep, InputPort::TokenCount,
                             static_cast<float>(b.target_tokens))
                    .ok());
    Status st = s->Run(programs::kOptimizerStep, 0);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  double after = EvalLoss(*s, b);
  std::printf("%s: loss %.4f -> %.4f after 5 steps\n", plan.c_str(), before, after);
  EXPECT_LT(after, before - 0.03 * std::fabs(before)) << plan;
}

TEST(TrainStep, LoraStepsLowerTheLoss) { CheckDescent("lora_b2_t8"); }
TEST(TrainStep, QLoraStepsLowerTheLoss) { CheckDescent("lora_nf4"); }
TEST(TrainStep, FullFineTuningStepsLowerTheLoss) { CheckDescent("full_b2_t8"); }

}  // namespace
}  // namespace lorart
