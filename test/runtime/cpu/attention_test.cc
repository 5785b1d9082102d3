// FlashAttention-style attention (attention.cc) against a naive full-softmax
// reference in double: MHA, GQA and MQA; segments, sliding windows and
// block sizes smaller than (and not dividing) the sequence; bf16; a packed
// row equal to running each document on its own; the backward against the
// reference gradients and central finite differences; the forward's saved
// logsumexp and the backward that reads it (bitwise the recomputing one in
// f32); determinism across thread counts; and the errors for bad operands.
// AttentionTest.DISABLED_Perf prints GFLOP/s of a Llama-like layer (run it
// with --gtest_also_run_disabled_tests --gtest_filter=AttentionTest.DISABLED_Perf).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "harness.h"

namespace lorart::cpu {
namespace {

using testing::FillInts;
using testing::FillUniform;
using testing::FiniteDifferenceError;
using testing::ForEachLevel;
using testing::NormalizedError;
using testing::Owned;
using testing::RunKernel;

struct Config {
  int64_t B = 1, T = 16, H = 2, KV = 2, D = 8;
  int64_t bq = 64, bk = 64, window = 0;
  bool segments = false, causal = true;
  DType dtype = DType::F32;
  double scale() const { return 1.0 / std::sqrt(double(D)); }
};

KernelParams Params(const Config& c) {
  KernelParams p;
  p.Set("batch", c.B);
  p.Set("seq", c.T);
  p.Set("num_heads", c.H);
  p.Set("num_kv_heads", c.KV);
  p.Set("head_dim", c.D);
  p.Set("scale", c.scale());
  p.Set("causal", int64_t{c.causal ? 1 : 0});
  p.Set("segments", int64_t{c.segments ? 1 : 0});
  p.Set("sliding_window", c.window);
  p.Set("block_q", c.bq);
  p.Set("block_k", c.bk);
  return p;
}

// Random operands; segment ids are runs of documents (a new one with
// probability 1/4 per token), as sequence packing writes them.
struct Operands {
  Owned q, k, v, seg;
  Operands(const Config& c, uint64_t seed)
      : q(c.dtype, {c.B, c.T, c.H * c.D}),
        k(c.dtype, {c.B, c.T, c.KV * c.D}),
        v(c.dtype, {c.B, c.T, c.KV * c.D}),
        seg(DType::I32, {c.B, c.T}) {
    std::mt19937_64 rng(seed);
    FillUniform(q, rng, -2.0f, 2.0f);
    FillUniform(k, rng, -2.0f, 2.0f);
    FillUniform(v, rng);
    for (int64_t b = 0; b < c.B; ++b) {
      int32_t doc = 0;
      for (int64_t t = 0; t < c.T; ++t) {
        if (t > 0 && rng() % 4 == 0) ++doc;
        seg.view.as<int32_t>()[b * c.T + t] = doc;
      }
    }
  }
  std::vector<Owned*> inputs(const Config& c) {
    std::vector<Owned*> in = {&q, &k, &v};
    if (c.segments) in.push_back(&seg);
    return in;
  }
};

bool Allowed(const Config& c, const Owned& seg, int64_t b, int64_t i, int64_t j) {
  if (c.causal && j > i) return false;
  if (c.window > 0 && i - j >= c.window) return false;
  if (c.segments && seg.view.as<int32_t>()[b * c.T + j] != seg.view.as<int32_t>()[b * c.T + i])
    return false;
  return true;
}

// Naive attention in double; with `dout`, also the gradients.
struct Reference {
  std::vector<float> o, lse, dq, dk, dv;  // lse [B, H, T], +inf for a row without keys
};
Reference Naive(const Config& c, const Operands& x, const Owned* dout = nullptr) {
  const int64_t D = c.D, HD = c.H * D, KD = c.KV * D;
  Reference r;
  r.o.assign(size_t(c.B * c.T * HD), 0.0f);
  r.lse.assign(size_t(c.B * c.H * c.T), INFINITY);
  std::vector<double> dq(size_t(c.B * c.T * HD), 0.0), dk(size_t(c.B * c.T * KD), 0.0),
      dv(dk.size(), 0.0);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.H; ++h) {
      const int64_t kv = h / (c.H / c.KV);
      for (int64_t i = 0; i < c.T; ++i) {
        auto qv = [&](int64_t e) { return double(x.q.get((b * c.T + i) * HD + h * D + e)); };
        auto kvv = [&](const Owned& t, int64_t j, int64_t e) {
          return double(t.get((b * c.T + j) * KD + kv * D + e));
        };
        std::vector<double> s(size_t(c.T), 0.0), p(size_t(c.T), 0.0);
        double mx = -INFINITY;
        for (int64_t j = 0; j < c.T; ++j) {
          if (!Allowed(c, x.seg, b, i, j)) continue;
          double d = 0.0;
          for (int64_t e = 0; e < D; ++e) d += qv(e) * kvv(x.k, j, e);
          s[size_t(j)] = d * c.scale();
          mx = std::max(mx, s[size_t(j)]);
        }
        if (mx == -INFINITY) continue;
        double sum = 0.0;
        for (int64_t j = 0; j < c.T; ++j)
          if (Allowed(c, x.seg, b, i, j)) sum += p[size_t(j)] = std::exp(s[size_t(j)] - mx);
        r.lse[size_t((b * c.H + h) * c.T + i)] = float(mx + std::log(sum));
        for (double& pj : p) pj /= sum;
        for (int64_t e = 0; e < D; ++e) {
          double o = 0.0;
          for (int64_t j = 0; j < c.T; ++j) o += p[size_t(j)] * kvv(x.v, j, e);
          r.o[size_t((b * c.T + i) * HD + h * D + e)] = float(o);
        }
        if (!dout) continue;
        auto dov = [&](int64_t e) { return double(dout->get((b * c.T + i) * HD + h * D + e)); };
        std::vector<double> dp(size_t(c.T), 0.0);
        double dd = 0.0;
        for (int64_t j = 0; j < c.T; ++j) {
          if (p[size_t(j)] == 0.0) continue;
          for (int64_t e = 0; e < D; ++e) dp[size_t(j)] += dov(e) * kvv(x.v, j, e);
          dd += p[size_t(j)] * dp[size_t(j)];
        }
        for (int64_t j = 0; j < c.T; ++j) {
          if (p[size_t(j)] == 0.0) continue;
          const double ds = p[size_t(j)] * (dp[size_t(j)] - dd) * c.scale();
          for (int64_t e = 0; e < D; ++e) {
            dq[size_t((b * c.T + i) * HD + h * D + e)] += ds * kvv(x.k, j, e);
            dk[size_t((b * c.T + j) * KD + kv * D + e)] += ds * qv(e);
            dv[size_t((b * c.T + j) * KD + kv * D + e)] += p[size_t(j)] * dov(e);
          }
        }
      }
    }
  auto to_f = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
  r.dq = to_f(dq), r.dk = to_f(dk), r.dv = to_f(dv);
  return r;
}

std::vector<float> Forward(const Config& c, Operands& x, int threads = 2) {
  Owned o(c.dtype, {c.B, c.T, c.H * c.D});
  Status s = RunKernel("attention_fwd", Params(c), x.inputs(c), {&o}, 0, threads);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return o.floats();
}

// The configurations every test runs: MHA with one tile; GQA with segments,
// a window and tiles smaller than (not dividing) the sequence; MQA;
// non-causal with segments; one-row tiles; a longer sequence across many
// tiles (kLongConfig); odd sizes everywhere.
constexpr size_t kLongConfig = 5;
std::vector<Config> Configs() {
  std::vector<Config> cs;
  cs.push_back(Config{});
  Config gqa;
  gqa.B = 2, gqa.T = 13, gqa.H = 4, gqa.KV = 2, gqa.D = 8, gqa.bq = 3, gqa.bk = 5;
  gqa.window = 5, gqa.segments = true;
  cs.push_back(gqa);
  Config mqa;
  mqa.T = 20, mqa.H = 3, mqa.KV = 1, mqa.D = 4, mqa.bq = 4, mqa.bk = 4, mqa.window = 7;
  cs.push_back(mqa);
  Config nc;
  nc.T = 11, nc.bq = 4, nc.bk = 3, nc.causal = false, nc.segments = true;
  cs.push_back(nc);
  Config unit;  // one-row tiles: the causal/window band is visited exactly
  unit.T = 10, unit.KV = 1, unit.D = 4, unit.bq = 1, unit.bk = 1, unit.window = 3;
  unit.segments = true;
  cs.push_back(unit);
  Config lng;
  lng.B = 2, lng.T = 70, lng.H = 4, lng.KV = 2, lng.D = 16, lng.bq = 16, lng.bk = 32;
  lng.segments = true;
  cs.push_back(lng);
  Config odd;  // odd head_dim, group rows and key tiles: every pad of the packed tiles
  odd.T = 23, odd.H = 3, odd.KV = 1, odd.D = 5, odd.bq = 3, odd.bk = 7, odd.segments = true;
  cs.push_back(odd);
  Config plan;  // the compiler's 64 × 64 tiles, a last tile of 22 keys (vectors and a tail)
  plan.T = 150, plan.H = 4, plan.KV = 2, plan.D = 32, plan.segments = true;
  cs.push_back(plan);
  return cs;
}

TEST(AttentionTest, ForwardMatchesNaiveSoftmax) {
  ForEachLevel([&] {
    uint64_t seed = 1;
    for (const Config& c : Configs()) {
      Operands x(c, seed++);
      EXPECT_LT(NormalizedError(Forward(c, x), Naive(c, x).o), 1e-5)
          << "T=" << c.T << " H=" << c.H << " KV=" << c.KV << " window=" << c.window;
    }
  });
}

TEST(AttentionTest, ForwardBf16MatchesNaiveSoftmax) {
  ForEachLevel([&] {
    uint64_t seed = 7;
    for (Config c : Configs()) {
      c.dtype = DType::BF16;
      Operands x(c, seed++);
      EXPECT_LT(NormalizedError(Forward(c, x), Naive(c, x).o), 1e-2) << "T=" << c.T;
    }
    Config c = Configs()[1];
    c.dtype = DType::F16;
    Operands y(c, 8);
    EXPECT_LT(NormalizedError(Forward(c, y), Naive(c, y).o), 2e-3);
  });
}

TEST(AttentionTest, PackedRowEqualsSeparateDocuments) {
  ForEachLevel([&] {
    // One row packs documents of lengths 5, 9, 1 and 9; with segment ids the
    // output of each document equals attention over that document alone.
    Config packed;
    packed.T = 24, packed.H = 4, packed.KV = 2, packed.D = 8, packed.bq = 4, packed.bk = 8;
    packed.segments = true;
    Operands x(packed, 21);
    const int64_t lengths[] = {5, 9, 1, 9};
    int64_t start = 0;
    for (int d = 0; d < 4; ++d)
      for (int64_t t = 0; t < lengths[d]; ++t) x.seg.view.as<int32_t>()[start++] = d;
    const std::vector<float> out = Forward(packed, x);
    start = 0;
    for (int64_t len : lengths) {
      Config one = packed;
      one.T = len, one.segments = false;
      Operands doc(one, 0);
      const int64_t qw = one.H * one.D, kw = one.KV * one.D;
      for (int64_t i = 0; i < len * qw; ++i) doc.q.set(i, x.q.get(start * qw + i));
      for (int64_t i = 0; i < len * kw; ++i) {
        doc.k.set(i, x.k.get(start * kw + i));
        doc.v.set(i, x.v.get(start * kw + i));
      }
      const std::vector<float> alone = Forward(one, doc);
      std::vector<float> slice(out.begin() + start * qw, out.begin() + (start + len) * qw);
      EXPECT_LT(NormalizedError(slice, alone), 1e-6) << "document at " << start;
      start += len;
    }
  });
}

// The forward with save_lse: the output and the [B, H, T] logsumexp.
struct Saved {
  Owned o, lse;
  explicit Saved(const Config& c)
      : o(c.dtype, {c.B, c.T, c.H * c.D}), lse(DType::F32, {c.B, c.H, c.T}) {}
};
KernelParams SavedParams(const Config& c, const char* key) {
  KernelParams p = Params(c);
  p.Set(key, int64_t{1});
  return p;
}
Saved ForwardSaved(const Config& c, Operands& x, int threads = 2) {
  Saved sv(c);
  Status s = RunKernel("attention_fwd", SavedParams(c, "save_lse"), x.inputs(c), {&sv.o, &sv.lse},
                       0, threads);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return sv;
}

struct Grads {
  Owned dq, dk, dv;
  explicit Grads(const Config& c)
      : dq(c.dtype, {c.B, c.T, c.H * c.D}),
        dk(c.dtype, {c.B, c.T, c.KV * c.D}),
        dv(c.dtype, {c.B, c.T, c.KV * c.D}) {}
};

// An output gradient of fresh uniform values.
Owned RandomDout(const Config& c, uint64_t seed) {
  Owned dout(c.dtype, {c.B, c.T, c.H * c.D});
  std::mt19937_64 rng(seed);
  FillUniform(dout, rng);
  return dout;
}

// The backward; with `saved`, from the forward's saved output and lse
// (saved_stats).
Grads Backward(const Config& c, Operands& x, Owned& dout, int threads = 2, Saved* saved = nullptr) {
  Grads g(c);
  std::vector<Owned*> in = {&dout, &x.q, &x.k, &x.v};
  if (saved) in.insert(in.end(), {&saved->o, &saved->lse});
  if (c.segments) in.push_back(&x.seg);
  Status s = RunKernel("attention_bwd", saved ? SavedParams(c, "saved_stats") : Params(c), in,
                       {&g.dq, &g.dk, &g.dv}, 0, threads);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return g;
}

TEST(AttentionTest, BackwardMatchesNaiveGradients) {
  ForEachLevel([&] {
    uint64_t seed = 31;
    for (const Config& c : Configs()) {
      Operands x(c, seed++);
      Owned dout = RandomDout(c, seed++);
      Grads g = Backward(c, x, dout);
      Reference r = Naive(c, x, &dout);
      EXPECT_LT(NormalizedError(g.dq.floats(), r.dq), 1e-5) << "T=" << c.T << " KV=" << c.KV;
      EXPECT_LT(NormalizedError(g.dk.floats(), r.dk), 1e-5) << "T=" << c.T << " KV=" << c.KV;
      EXPECT_LT(NormalizedError(g.dv.floats(), r.dv), 1e-5) << "T=" << c.T << " KV=" << c.KV;
    }
    uint64_t bseed = 99;
    for (Config bf : Configs()) {
      bf.dtype = DType::BF16;
      Operands x(bf, bseed++);
      Owned dout = RandomDout(bf, bseed++);
      Grads g = Backward(bf, x, dout);
      Reference r = Naive(bf, x, &dout);
      EXPECT_LT(NormalizedError(g.dq.floats(), r.dq), 2e-2) << "bf16 T=" << bf.T;
      EXPECT_LT(NormalizedError(g.dk.floats(), r.dk), 2e-2) << "bf16 T=" << bf.T;
      EXPECT_LT(NormalizedError(g.dv.floats(), r.dv), 2e-2) << "bf16 T=" << bf.T;
    }
  });
}

// Saved statistics: the forward's lse is the reference logsumexp and its
// output the plain forward's; the backward reading them gives bitwise the
// recomputing backward's gradients in f32 (the same O and L values), at
// every thread count, and the reference gradients in bf16 (D from the
// rounded O).

TEST(AttentionTest, SavedStatisticsGiveTheRecomputedGradients) {
  ForEachLevel([&] {
    uint64_t seed = 131;
    for (const Config& c : Configs()) {
      Operands x(c, seed++);
      Owned dout = RandomDout(c, seed++);
      Saved sv = ForwardSaved(c, x);
      EXPECT_EQ(sv.o.floats(), Forward(c, x)) << "T=" << c.T;
      const Reference r = Naive(c, x);
      const std::vector<float> lse = sv.lse.floats();
      ASSERT_EQ(lse.size(), r.lse.size());
      for (size_t i = 0; i < lse.size(); ++i) {
        if (std::isinf(r.lse[i])) {
          EXPECT_TRUE(std::isinf(lse[i]) && lse[i] > 0) << "row " << i << " has no keys";
        } else {
          EXPECT_NEAR(lse[i], r.lse[i], 1e-5 * (1 + std::fabs(r.lse[i]))) << "row " << i;
        }
      }
      const Grads want = Backward(c, x, dout);
      for (int threads : {1, 3}) {
        const Grads got = Backward(c, x, dout, threads, &sv);
        EXPECT_EQ(got.dq.bytes, want.dq.bytes) << "T=" << c.T << " threads=" << threads;
        EXPECT_EQ(got.dk.bytes, want.dk.bytes) << "T=" << c.T << " threads=" << threads;
        EXPECT_EQ(got.dv.bytes, want.dv.bytes) << "T=" << c.T << " threads=" << threads;
      }
    }
    uint64_t bseed = 171;
    for (Config bf : Configs()) {
      bf.dtype = DType::BF16;
      Operands x(bf, bseed++);
      Owned dout = RandomDout(bf, bseed++);
      Saved sv = ForwardSaved(bf, x);
      const Grads g = Backward(bf, x, dout, 2, &sv);
      const Reference r = Naive(bf, x, &dout);
      EXPECT_LT(NormalizedError(g.dq.floats(), r.dq), 2e-2) << "bf16 T=" << bf.T;
      EXPECT_LT(NormalizedError(g.dk.floats(), r.dk), 2e-2) << "bf16 T=" << bf.T;
      EXPECT_LT(NormalizedError(g.dv.floats(), r.dv), 2e-2) << "bf16 T=" << bf.T;
    }
  });
}

TEST(AttentionTest, BackwardMatchesFiniteDifferences) {
  ForEachLevel([&] {
    // GQA + segments + sliding window, both tile sizes smaller than T.
    Config c;
    c.B = 2, c.T = 9, c.H = 4, c.KV = 2, c.D = 4, c.bq = 4, c.bk = 3, c.window = 4;
    c.segments = true;
    Operands x(c, 41);
    std::mt19937_64 rng(42);
    Owned dout(DType::F32, {c.B, c.T, c.H * c.D});
    FillUniform(dout, rng);
    const std::vector<float> w = dout.floats();
    Grads g = Backward(c, x, dout);
    auto forward = [&]() { return Forward(c, x, 1); };
    EXPECT_LT(FiniteDifferenceError(x.q, g.dq.floats(), forward, w, rng, 0, 3e-3), 2e-3);
    EXPECT_LT(FiniteDifferenceError(x.k, g.dk.floats(), forward, w, rng, 0, 3e-3), 2e-3);
    EXPECT_LT(FiniteDifferenceError(x.v, g.dv.floats(), forward, w, rng, 0, 3e-3), 2e-3);
  });
}

TEST(AttentionTest, BackwardIsDeterministicAcrossThreadCounts) {
  ForEachLevel([&] {
    Config c = Configs()[kLongConfig];
    Operands x(c, 51);
    Owned dout = RandomDout(c, 52);
    Grads one = Backward(c, x, dout, 1), two = Backward(c, x, dout, 2),
          three = Backward(c, x, dout, 3);
    EXPECT_EQ(one.dq.bytes, two.dq.bytes);
    EXPECT_EQ(one.dk.bytes, two.dk.bytes);
    EXPECT_EQ(one.dv.bytes, two.dv.bytes);
    EXPECT_EQ(one.dk.bytes, three.dk.bytes);
    EXPECT_EQ(Forward(c, x, 1), Forward(c, x, 3));
  });
}

TEST(AttentionTest, RejectsBadOperandsAndParameters) {
  Config c = Configs()[1];
  Operands x(c, 61);
  Owned o(c.dtype, {c.B, c.T, c.H * c.D});
  EXPECT_TRUE(RunKernel("attention_fwd", Params(c), x.inputs(c), {&o}).ok());
  // Segment ids missing while the parameters say segments = 1.
  Status s = RunKernel("attention_fwd", Params(c), {&x.q, &x.k, &x.v}, {&o});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("attention_fwd"), std::string::npos) << s.message();
  // Heads not a multiple of the kv heads.
  KernelParams p = Params(c);
  p.Set("num_kv_heads", int64_t{3});
  EXPECT_FALSE(RunKernel("attention_fwd", p, x.inputs(c), {&o}).ok());
  // k with the wrong number of elements (kv heads = heads).
  Owned wide(c.dtype, {c.B, c.T, c.H * c.D});
  EXPECT_FALSE(RunKernel("attention_fwd", Params(c), {&x.q, &wide, &x.v, &x.seg}, {&o}).ok());
  // Float segment ids, non-positive blocks, a negative window, no scale.
  Owned fseg(DType::F32, {c.B, c.T});
  EXPECT_FALSE(RunKernel("attention_fwd", Params(c), {&x.q, &x.k, &x.v, &fseg}, {&o}).ok());
  p = Params(c);
  p.Set("block_q", int64_t{0});
  EXPECT_FALSE(RunKernel("attention_fwd", p, x.inputs(c), {&o}).ok());
  p = Params(c);
  p.Set("sliding_window", int64_t{-1});
  EXPECT_FALSE(RunKernel("attention_fwd", p, x.inputs(c), {&o}).ok());
  p = Params(c);
  p.Set("scale", std::string("big"));
  EXPECT_FALSE(RunKernel("attention_fwd", p, x.inputs(c), {&o}).ok());
  // Backward: outputs missing.
  Owned dq(c.dtype, {c.B, c.T, c.H * c.D});
  EXPECT_FALSE(RunKernel("attention_bwd", Params(c), {&o, &x.q, &x.k, &x.v, &x.seg}, {&dq}).ok());
  Owned ints(DType::I32, {c.B, c.T, c.H * c.D}), dk(c.dtype, {c.B, c.T, c.KV * c.D}),
      dv(c.dtype, {c.B, c.T, c.KV * c.D});
  EXPECT_FALSE(
      RunKernel("attention_bwd", Params(c), {&ints, &x.q, &x.k, &x.v, &x.seg}, {&dq, &dk, &dv})
          .ok());
  // Saved statistics: save_lse without the lse output, an lse of the wrong
  // type or size, saved_stats without the forward's operands.
  Saved sv(c);
  EXPECT_FALSE(RunKernel("attention_fwd", SavedParams(c, "save_lse"), x.inputs(c), {&sv.o}).ok());
  Owned lse16(DType::BF16, {c.B, c.H, c.T}), short_lse(DType::F32, {c.B, c.H, c.T - 1});
  EXPECT_FALSE(
      RunKernel("attention_fwd", SavedParams(c, "save_lse"), x.inputs(c), {&sv.o, &lse16}).ok());
  EXPECT_FALSE(
      RunKernel("attention_fwd", SavedParams(c, "save_lse"), x.inputs(c), {&sv.o, &short_lse})
          .ok());
  ASSERT_TRUE(
      RunKernel("attention_fwd", SavedParams(c, "save_lse"), x.inputs(c), {&sv.o, &sv.lse}).ok());
  const KernelParams saved = SavedParams(c, "saved_stats");
  EXPECT_TRUE(RunKernel("attention_bwd", saved, {&o, &x.q, &x.k, &x.v, &sv.o, &sv.lse, &x.seg},
                        {&dq, &dk, &dv})
                  .ok());
  s = RunKernel("attention_bwd", saved, {&o, &x.q, &x.k, &x.v, &x.seg}, {&dq, &dk, &dv});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(RunKernel("attention_bwd", saved, {&o, &x.q, &x.k, &x.v, &sv.o, &short_lse, &x.seg},
                         {&dq, &dk, &dv})
                   .ok());
  EXPECT_FALSE(RunKernel("attention_bwd", saved, {&o, &x.q, &x.k, &x.v, &dk, &sv.lse, &x.seg},
                         {&dq, &dk, &dv})
                   .ok());
}

TEST(AttentionTest, DISABLED_Perf) {
  // One micro-batch row of 2048 tokens, 8 query heads over 2 kv heads of 128.
  Config c;
  c.T = 2048, c.H = 8, c.KV = 2, c.D = 128, c.bq = 64, c.bk = 64;
  c.segments = true;
  for (DType dt : {DType::F32, DType::BF16}) {
    c.dtype = dt;
    Operands x(c, 71);
    Owned o(dt, {c.B, c.T, c.H * c.D}), dout(dt, {c.B, c.T, c.H * c.D});
    std::mt19937_64 rng(72);
    FillUniform(dout, rng);
    for (int32_t i = 0; i < c.T; ++i) x.seg.view.as<int32_t>()[i] = 0;  // one document
    // Causal: half of the T² score matrix; 2 products fwd, 5 bwd (useful work).
    const double flops = 2.0 * c.T * c.T / 2 * c.D * c.H;
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(RunKernel("attention_fwd", Params(c), x.inputs(c), {&o}).ok());
    auto t1 = std::chrono::steady_clock::now();
    Grads g = Backward(c, x, dout);
    auto t2 = std::chrono::steady_clock::now();
    Saved sv = ForwardSaved(c, x);
    auto t3 = std::chrono::steady_clock::now();
    Grads gs = Backward(c, x, dout, 2, &sv);
    auto t4 = std::chrono::steady_clock::now();
    const double fs = std::chrono::duration<double>(t1 - t0).count();
    const double bs = std::chrono::duration<double>(t2 - t1).count();
    const double bss = std::chrono::duration<double>(t4 - t3).count();
    std::printf(
        "attention %s T=%lld H=%lld KV=%lld D=%lld: fwd %.3f s (%.1f GFLOP/s), "
        "bwd %.3f s (%.1f GFLOP/s), bwd with saved statistics %.3f s (%.1f GFLOP/s)\n",
        dt == DType::F32 ? "f32" : "bf16", static_cast<long long>(c.T), static_cast<long long>(c.H),
        static_cast<long long>(c.KV), static_cast<long long>(c.D), fs, 2 * flops / fs * 1e-9, bs,
        5 * flops / bs * 1e-9, bss, 5 * flops / bss * 1e-9);
  }
}

}  // namespace
}  // namespace lorart::cpu
