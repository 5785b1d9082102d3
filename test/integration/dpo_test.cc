// DPO plans on the CPU backend (tiny Llama, float32, LoRA r=4, no dropout),
// end to end:
//  - the loss equals a direct computation: each response's log-probability
//    measured separately with an SFT plan's cross-entropy (its mask on that
//    response only), under the adapters (policy) and with lora_B = 0 (the
//    reference), put through -log σ(β·h) or IPO's (h − 1/(2β))² by hand;
//    the reward metrics likewise;
//  - every adapter gradient of @train_step matches central finite
//    differences of @eval_step's DPO loss (sigmoid and IPO), a pair absent
//    from pair_mask contributes nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "e2e_util.h"
#include "lorart/exec/session.h"

namespace lorart {
namespace {

std::string PlanPath(const std::string& name) {
  return std::string(LORAC_TEST_PLAN_DIR) + "/" + name + ".bin";
}

using lorart::testing::StateOf;

const std::string& ModelDir() {
  static std::string dir = lorart::testing::MakeTinyModel("lorart_dpo_model", "f32", 9);
  return dir;
}

// Random adapters by name (the same in every session), or lora_B = 0.
void SetAdapters(Session& s, bool zero_b) {
  for (const Session::StateTensor& t : StateOf(s)) {
    if (t.name.find(".lora_") == std::string::npos || t.name.rfind("grad/", 0) == 0 ||
        t.name.rfind("adam_", 0) == 0)
      continue;
    std::string param = t.name.rfind("master/", 0) == 0 ? t.name.substr(7) : t.name;
    std::mt19937_64 rng(std::hash<std::string>()(param));
    std::uniform_real_distribution<float> d(-0.3f, 0.3f);
    std::vector<float> v(t.bytes / 4);
    bool b = param.find(".lora_B.") != std::string::npos;
    for (float& x : v) x = zero_b && b ? 0.0f : d(rng);
    ASSERT_TRUE(s.SetState(t.name, v.data(), t.bytes).ok());
  }
}

std::unique_ptr<Session> Open(const std::string& plan) {
  SessionOptions so;
  so.num_threads = 2;
  return lorart::testing::OpenBound(PlanPath(plan), so, ModelDir(), 5);
}

// Two rows of 16 tokens, each a pair: a chosen document of 9 tokens whose
// last 4 targets are its response, then a rejected one of 7 tokens with 3.
struct PairBatch {
  std::vector<int32_t> tokens, positions, segments, targets, sequence_ids;
  std::vector<uint8_t> mask, pair_mask, replay_mask;
};

PairBatch MakePairs(uint64_t seed) {
  PairBatch b;
  std::mt19937_64 rng(seed);
  for (int r = 0; r < 2; ++r) {
    int lens[2] = {9, 7}, resp[2] = {4, 3};
    for (int d = 0; d < 2; ++d)
      for (int i = 0; i < lens[d]; ++i) {
        b.tokens.push_back(static_cast<int32_t>(rng() % 256));
        b.positions.push_back(i);
        b.segments.push_back(d);
      }
    size_t row = static_cast<size_t>(r) * 16, at = row;
    for (int d = 0; d < 2; ++d) {
      for (int i = 0; i < lens[d]; ++i, ++at) {
        bool last = i + 1 == lens[d];
        b.targets.push_back(last ? 0 : b.tokens[at + 1]);
        bool in = !last && i + 1 >= lens[d] - resp[d];
        b.mask.push_back(in ? 1 : 0);
        b.sequence_ids.push_back(in ? 2 * r + d : -1);
      }
    }
  }
  b.pair_mask = {1, 1};
  b.replay_mask.assign(b.tokens.size(), 0);
  return b;
}

// Row 1 becomes replayed general text: no pair, every next-token target of
// its documents in replay_mask.
void MakeRow1Replay(PairBatch& b) {
  b.pair_mask = {1, 0};
  for (size_t i = 16; i < 32; ++i) {
    bool last = i + 1 == 32 || b.segments[i + 1] != b.segments[i];
    b.replay_mask[i] = last ? 0 : 1;
    b.mask[i] = 0;
    b.sequence_ids[i] = -1;
  }
}

void Feed(Session& s, const std::string& program, const PairBatch& b, bool dpo) {
  size_t n = b.tokens.size();
  ASSERT_TRUE(s.SetInput(program, InputPort::Tokens, b.tokens.data(), n * 4).ok());
  ASSERT_TRUE(s.SetInput(program, InputPort::Positions, b.positions.data(), n * 4).ok());
  ASSERT_TRUE(s.SetInput(program, InputPort::SegmentIds, b.segments.data(), n * 4).ok());
  ASSERT_TRUE(s.SetInput(program, InputPort::Targets, b.targets.data(), n * 4).ok());
  ASSERT_TRUE(s.SetInput(program, InputPort::LossMask, b.mask.data(), n).ok());
  if (dpo) {
    ASSERT_TRUE(s.SetInput(program, InputPort::SequenceIds, b.sequence_ids.data(), n * 4).ok());
    ASSERT_TRUE(
        s.SetInput(program, InputPort::PairMask, b.pair_mask.data(), b.pair_mask.size()).ok());
    Status st = s.SetInput(program, InputPort::ReplayMask, b.replay_mask.data(), n);
    ASSERT_TRUE(st.ok() || st.code() == StatusCode::kNotFound) << st.ToString();
  }
}

double Out(Session& s, const std::string& program, OutputPort port) {
  StatusOr<double> v = s.GetScalar(program, port);
  EXPECT_TRUE(v.ok()) << PortName(port) << ": " << v.status().ToString();
  return v.ok() ? *v : NAN;
}

// log p of sequence `id`'s response through an SFT plan's cross-entropy.
double SequenceLogProb(Session& sft, const PairBatch& b, int id) {
  PairBatch one = b;
  for (size_t i = 0; i < one.mask.size(); ++i) one.mask[i] = b.sequence_ids[i] == id;
  Feed(sft, programs::kEvalStep, one, false);
  Status st = sft.Run(programs::kEvalStep, 0);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return -Out(sft, programs::kEvalStep, OutputPort::LossSum);
}

void CheckAgainstDirectComputation(const std::string& plan, double beta, bool ipo) {
  std::unique_ptr<Session> dpo = Open(plan), policy = Open("lora_b2_t16"),
                           reference = Open("lora_b2_t16");
  ASSERT_TRUE(dpo && policy && reference);
  SetAdapters(*dpo, false);
  SetAdapters(*policy, false);
  SetAdapters(*reference, true);
  PairBatch b = MakePairs(4);
  b.pair_mask = {1, 0};  // the second pair is absent: it must not count
  Feed(*dpo, programs::kEvalStep, b, true);
  Status st = dpo->Run(programs::kEvalStep, 0);
  ASSERT_TRUE(st.ok()) << st.ToString();
  double lp[2], lr[2];
  for (int id = 0; id < 2; ++id) {
    lp[id] = SequenceLogProb(*policy, b, id);
    lr[id] = SequenceLogProb(*reference, b, id);
  }
  double h = (lp[0] - lr[0]) - (lp[1] - lr[1]);
  double want = ipo ? (h - 1 / (2 * beta)) * (h - 1 / (2 * beta))
                    : std::log1p(std::exp(-beta * h));
  EXPECT_NEAR(Out(*dpo, programs::kEvalStep, OutputPort::LossSum), want,
              1e-4 * std::max(1.0, want));
  EXPECT_EQ(Out(*dpo, programs::kEvalStep, OutputPort::Count), 1);
  EXPECT_NEAR(Out(*dpo, programs::kEvalStep, OutputPort::ChosenRewards), beta * (lp[0] - lr[0]),
              1e-4);
  EXPECT_NEAR(Out(*dpo, programs::kEvalStep, OutputPort::RejectedRewards), beta * (lp[1] - lr[1]),
              1e-4);
  EXPECT_NEAR(Out(*dpo, programs::kEvalStep, OutputPort::Margin), beta * h, 1e-4);
  EXPECT_EQ(Out(*dpo, programs::kEvalStep, OutputPort::Accuracy), h > 0 ? 1 : 0);
  EXPECT_GT(std::fabs(h), 1e-3) << "the adapters changed nothing";
  std::printf("%s: h = %.5f, loss %.6f (direct %.6f)\n", plan.c_str(), h,
              Out(*dpo, programs::kEvalStep, OutputPort::LossSum), want);
}

TEST(Dpo, SigmoidLossEqualsADirectComputation) { CheckAgainstDirectComputation("dpo_b2_t16", 0.5, false); }
TEST(Dpo, IpoLossEqualsADirectComputation) { CheckAgainstDirectComputation("dpo_ipo", 0.2, true); }

// With replay: the DPO loss of the pair plus weight · pairs · the policy's
// mean cross-entropy on the replay tokens (measured through the SFT plan).
TEST(Dpo, ReplayAddsTheWeightedCrossEntropyOfTheGeneralText) {
  std::unique_ptr<Session> dpo = Open("dpo_replay"), plain = Open("dpo_b2_t16"),
                           policy = Open("lora_b2_t16");
  ASSERT_TRUE(dpo && plain && policy);
  for (Session* s : {dpo.get(), plain.get(), policy.get()}) SetAdapters(*s, false);
  PairBatch b = MakePairs(4);
  MakeRow1Replay(b);
  Feed(*dpo, programs::kEvalStep, b, true);
  ASSERT_TRUE(dpo->Run(programs::kEvalStep, 0).ok());
  Feed(*plain, programs::kEvalStep, b, true);
  ASSERT_TRUE(plain->Run(programs::kEvalStep, 0).ok());
  PairBatch general = b;
  general.mask = b.replay_mask;
  Feed(*policy, programs::kEvalStep, general, false);
  ASSERT_TRUE(policy->Run(programs::kEvalStep, 0).ok());
  double ce = Out(*policy, programs::kEvalStep, OutputPort::LossSum),
         n = Out(*policy, programs::kEvalStep, OutputPort::Count);
  EXPECT_GT(n, 5);
  EXPECT_NEAR(Out(*dpo, programs::kEvalStep, OutputPort::ReplayLossSum), ce, 1e-4 * ce);
  EXPECT_EQ(Out(*dpo, programs::kEvalStep, OutputPort::ReplayCount), n);
  EXPECT_EQ(Out(*dpo, programs::kEvalStep, OutputPort::Count), 1);
  double want = Out(*plain, programs::kEvalStep, OutputPort::LossSum) + 0.7 * 1 * ce / n;
  EXPECT_NEAR(Out(*dpo, programs::kEvalStep, OutputPort::LossSum), want, 1e-4 * want);
}

void CheckFiniteDifferences(const std::string& plan) {
  std::unique_ptr<Session> s = Open(plan);
  ASSERT_TRUE(s);
  SetAdapters(*s, false);
  PairBatch b = MakePairs(7);
  if (plan == "dpo_replay") MakeRow1Replay(b);
  Feed(*s, programs::kTrainStep, b, true);
  Status st = s->Run(programs::kTrainStep, 1);
  ASSERT_TRUE(st.ok()) << st.ToString();
  auto eval_loss = [&] {
    Feed(*s, programs::kEvalStep, b, true);
    Status e = s->Run(programs::kEvalStep, 0);
    EXPECT_TRUE(e.ok()) << e.ToString();
    return Out(*s, programs::kEvalStep, OutputPort::LossSum);
  };
  EXPECT_NEAR(eval_loss(), Out(*s, programs::kTrainStep, OutputPort::LossSum), 1e-6);
  std::mt19937_64 rng(3);
  int checked = 0;
  for (const Session::StateTensor& t : StateOf(*s)) {
    if (t.name.rfind("grad/", 0) != 0) continue;
    std::string name = t.name.substr(5);
    const float* g = reinterpret_cast<const float*>(t.data);
    double scale = 1e-6;
    for (uint64_t i = 0; i < t.bytes / 4; ++i) scale = std::max(scale, std::fabs(double(g[i])));
    EXPECT_GT(scale, 1e-5) << name << ": a zero gradient";
    const cpu::TensorView* p = s->FindPersistent(name);
    ASSERT_NE(p, nullptr);
    std::uniform_int_distribution<int64_t> pick(0, p->numel() - 1);
    for (int k = 0; k < 2; ++k) {
      int64_t i = pick(rng);
      float orig = p->as<float>()[i];
      const float eps = 1e-2f;
      p->as<float>()[i] = orig + eps;
      double lp = eval_loss();
      p->as<float>()[i] = orig - eps;
      double lm = eval_loss();
      p->as<float>()[i] = orig;
      double numeric = (lp - lm) / (2 * eps);
      EXPECT_LE(std::fabs(numeric - g[i]) / scale, 2e-2)
          << plan << ": d loss / d " << name << "[" << i << "]: analytic " << g[i]
          << ", numeric " << numeric << " (tensor scale " << scale << ")";
      ++checked;
    }
  }
  EXPECT_GT(checked, 20);
  std::printf("%s: %d gradient elements checked\n", plan.c_str(), checked);
}

TEST(Dpo, SigmoidGradientsMatchFiniteDifferences) { CheckFiniteDifferences("dpo_b2_t16"); }
TEST(Dpo, IpoGradientsMatchFiniteDifferences) { CheckFiniteDifferences("dpo_ipo"); }
TEST(Dpo, ReplayGradientsMatchFiniteDifferences) { CheckFiniteDifferences("dpo_replay"); }

}  // namespace
}  // namespace lorart
