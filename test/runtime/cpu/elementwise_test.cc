// The elementwise kernels (elementwise.cc) against double-precision
// references on random inputs: RMSNorm (HF LlamaRMSNorm rounding), RoPE with
// no, linear and llama3 scaling, SwiGLU, add, the packed-sequence loss mask,
// fill/accumulate/copy/zero/cast; every backward against central finite
// differences; and the errors for bad operands and parameters.
#include <cmath>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "harness.h"

namespace lorart::cpu {
namespace {

using testing::FillInts;
using testing::FillUniform;
using testing::FiniteDifferenceError;
using testing::NormalizedError;
using testing::Owned;
using testing::RunKernel;


// Rounds v through `dtype` (as storing it would).
float Round(DType dtype, float v) {
  Owned t(dtype, {1});
  t.set(0, v);
  return t.get(0);
}

std::vector<float> Weights(size_t n, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> w(n);
  for (float& x : w) x = d(rng);
  return w;
}

//===----------------------------------------------------------------------===//
// RMSNorm
//===----------------------------------------------------------------------===//

KernelParams NormParams(int64_t rows, int64_t hidden, double eps) {
  KernelParams p;
  p.Set("rows", rows);
  p.Set("hidden", hidden);
  p.Set("eps", eps);
  return p;
}

// LlamaRMSNorm in double, with its two roundings: the normalized row to x's
// dtype, the product to y's dtype.
std::vector<float> RmsNormRef(const Owned& x, const Owned& w, int64_t rows, int64_t hidden,
                              double eps, DType y_type) {
  std::vector<float> y(static_cast<size_t>(rows * hidden));
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0.0;
    for (int64_t i = 0; i < hidden; ++i)
      ss += double(x.get(r * hidden + i)) * x.get(r * hidden + i);
    const double inv = 1.0 / std::sqrt(ss / double(hidden) + eps);
    for (int64_t i = 0; i < hidden; ++i) {
      const float n = Round(x.view.dtype, static_cast<float>(x.get(r * hidden + i) * inv));
      y[static_cast<size_t>(r * hidden + i)] =
          Round(y_type, static_cast<float>(double(w.get(i)) * n));
    }
  }
  return y;
}

TEST(ElementwiseTest, RmsNormForwardMatchesReference) {
  struct Case {
    DType xt, wt;
    int64_t rows, hidden;
    double bound;
  };
  for (const Case& c :
       {Case{DType::F32, DType::F32, 7, 100, 1e-5},
        Case{DType::F32, DType::F32, 300, 64, 1e-5},  // parallel rows
        Case{DType::BF16, DType::BF16, 9, 96, 1e-2}, Case{DType::F16, DType::F32, 5, 40, 2e-3}}) {
    std::mt19937_64 rng(11);
    Owned x(c.xt, {c.rows, c.hidden}), w(c.wt, {c.hidden}), y(c.xt, {c.rows, c.hidden});
    FillUniform(x, rng, -2.0f, 2.0f);
    FillUniform(w, rng, 0.5f, 1.5f);
    ASSERT_TRUE(RunKernel("rms_norm_fwd", NormParams(c.rows, c.hidden, 1e-5), {&x, &w}, {&y}).ok());
    EXPECT_LT(NormalizedError(y.floats(), RmsNormRef(x, w, c.rows, c.hidden, 1e-5, c.xt)), c.bound)
        << "rows " << c.rows << " hidden " << c.hidden;
  }
}

TEST(ElementwiseTest, RmsNormBackwardMatchesFiniteDifferences) {
  const int64_t rows = 5, hidden = 24;
  std::mt19937_64 rng(12);
  Owned x(DType::F32, {rows, hidden}), w(DType::F32, {hidden});
  FillUniform(x, rng);
  FillUniform(w, rng, 0.5f, 1.5f);
  std::vector<float> dyv = Weights(static_cast<size_t>(rows * hidden), rng);
  Owned dy(DType::F32, {rows, hidden}), dx(DType::F32, {rows, hidden}), dw(DType::F32, {hidden});
  for (int64_t i = 0; i < dy.numel(); ++i) dy.set(i, dyv[static_cast<size_t>(i)]);
  const KernelParams p = NormParams(rows, hidden, 1e-6);
  ASSERT_TRUE(RunKernel("rms_norm_bwd", p, {&dy, &x, &w}, {&dx, &dw}).ok());
  auto forward = [&]() {
    Owned y(DType::F32, {rows, hidden});
    EXPECT_TRUE(RunKernel("rms_norm_fwd", p, {&x, &w}, {&y}).ok());
    return y.floats();
  };
  EXPECT_LT(FiniteDifferenceError(x, dx.floats(), forward, dyv, rng, 0, 1e-3), 2e-3);
  EXPECT_LT(FiniteDifferenceError(w, dw.floats(), forward, dyv, rng, 0, 1e-3), 2e-3);
}

TEST(ElementwiseTest, RmsNormBackwardIsDeterministicAcrossThreadCountsAndBf16) {
  const int64_t rows = 257, hidden = 600;  // several column strips, parallel rows
  std::mt19937_64 rng(13);
  Owned x(DType::BF16, {rows, hidden}), w(DType::BF16, {hidden}), dy(DType::BF16, {rows, hidden});
  FillUniform(x, rng);
  FillUniform(w, rng);
  FillUniform(dy, rng);
  const KernelParams p = NormParams(rows, hidden, 1e-5);
  Owned dx1(DType::BF16, {rows, hidden}), dw1(DType::F32, {hidden});
  Owned dx2(DType::BF16, {rows, hidden}), dw2(DType::F32, {hidden});
  ASSERT_TRUE(RunKernel("rms_norm_bwd", p, {&dy, &x, &w}, {&dx1, &dw1}, 0, 1).ok());
  ASSERT_TRUE(RunKernel("rms_norm_bwd", p, {&dy, &x, &w}, {&dx2, &dw2}, 0, 2).ok());
  EXPECT_EQ(dx1.bytes, dx2.bytes);
  EXPECT_EQ(dw1.bytes, dw2.bytes);
  // dw against a double reference: Σ_rows dy · round_bf16(x / rms(x)).
  std::vector<float> want(static_cast<size_t>(hidden));
  std::vector<double> acc(static_cast<size_t>(hidden), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0.0;
    for (int64_t i = 0; i < hidden; ++i)
      ss += double(x.get(r * hidden + i)) * x.get(r * hidden + i);
    const double inv = 1.0 / std::sqrt(ss / hidden + 1e-5);
    for (int64_t i = 0; i < hidden; ++i)
      acc[static_cast<size_t>(i)] +=
          dy.get(r * hidden + i) * double(Round(DType::BF16, float(x.get(r * hidden + i) * inv)));
  }
  for (int64_t i = 0; i < hidden; ++i)
    want[static_cast<size_t>(i)] = float(acc[static_cast<size_t>(i)]);
  EXPECT_LT(NormalizedError(dw1.floats(), want), 1e-3);
}

TEST(ElementwiseTest, RmsNormRejectsBadOperands) {
  Owned x(DType::F32, {4, 8}), w(DType::F32, {8}), y(DType::F32, {4, 8}), wrong(DType::F32, {7});
  Owned ints(DType::I32, {4, 8});
  EXPECT_FALSE(RunKernel("rms_norm_fwd", NormParams(4, 8, 1e-5), {&x}, {&y}).ok());
  EXPECT_FALSE(RunKernel("rms_norm_fwd", NormParams(4, 8, 1e-5), {&x, &wrong}, {&y}).ok());
  EXPECT_FALSE(RunKernel("rms_norm_fwd", NormParams(4, 8, 1e-5), {&ints, &w}, {&y}).ok());
  EXPECT_FALSE(RunKernel("rms_norm_fwd", NormParams(5, 8, 1e-5), {&x, &w}, {&y}).ok());
  EXPECT_FALSE(RunKernel("rms_norm_fwd", NormParams(4, 0, 1e-5), {&x, &w}, {&y}).ok());
  KernelParams no_eps;
  no_eps.Set("rows", int64_t{4});
  no_eps.Set("hidden", int64_t{8});
  Status s = RunKernel("rms_norm_fwd", no_eps, {&x, &w}, {&y});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("eps"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("rms_norm_fwd"), std::string::npos) << s.message();
  Owned dx(DType::F32, {4, 8});
  EXPECT_FALSE(RunKernel("rms_norm_bwd", NormParams(4, 8, 1e-5), {&y, &x, &w}, {&dx}).ok());
}

//===----------------------------------------------------------------------===//
// RoPE
//===----------------------------------------------------------------------===//

struct RopeCase {
  int64_t batch = 2, seq = 5, heads = 3, head_dim = 8;
  double theta = 10000.0;
  std::string scaling = "none";
  double factor = 1.0, low = 1.0, high = 4.0;
  int64_t orig = 8192;
};

KernelParams RopeParams(const RopeCase& c) {
  KernelParams p;
  p.Set("batch", c.batch);
  p.Set("seq", c.seq);
  p.Set("features", c.heads * c.head_dim);
  p.Set("head_dim", c.head_dim);
  p.Set("theta", c.theta);
  p.Set("scaling", c.scaling);
  if (c.scaling != "none") {
    p.Set("factor", c.factor);
    p.Set("low_freq_factor", c.low);
    p.Set("high_freq_factor", c.high);
    p.Set("original_max_position_embeddings", c.orig);
  }
  return p;
}

// HF's inv_freq (ROPE_INIT_FUNCTIONS) written out from the formulas, in
// double: default, linear (inv_freq / factor), llama3
// (_compute_llama3_parameters).
std::vector<double> RefInvFreq(const RopeCase& c) {
  std::vector<double> f;
  for (int64_t i = 0; i < c.head_dim; i += 2)
    f.push_back(1.0 / std::pow(c.theta, double(i) / c.head_dim));
  if (c.scaling == "linear")
    for (double& x : f) x /= c.factor;
  if (c.scaling == "llama3") {
    const double low_wavelen = c.orig / c.low, high_wavelen = c.orig / c.high;
    for (double& x : f) {
      const double wavelen = 2 * M_PI / x;
      const double llama = wavelen > low_wavelen ? x / c.factor : x;
      const double smooth = (c.orig / wavelen - c.low) / (c.high - c.low);
      const double smoothed = (1 - smooth) * llama / c.factor + smooth * llama;
      const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
      x = medium ? smoothed : llama;
    }
  }
  return f;
}

// q·cos + rotate_half(q)·sin per head, in double.
std::vector<float> RopeRef(const Owned& x, const Owned& pos, const RopeCase& c, double sign = 1.0) {
  const std::vector<double> inv = RefInvFreq(c);
  const int64_t F = c.heads * c.head_dim, half = c.head_dim / 2;
  std::vector<float> y(static_cast<size_t>(x.numel()));
  for (int64_t t = 0; t < c.batch * c.seq; ++t) {
    const double p = pos.view.dtype == DType::I64 ? double(pos.view.as<int64_t>()[t])
                                                  : double(pos.view.as<int32_t>()[t]);
    for (int64_t h = 0; h < c.heads; ++h)
      for (int64_t i = 0; i < c.head_dim; ++i) {
        const int64_t base = t * F + h * c.head_dim;
        const int64_t fi = i % half;
        const double a = sign * p * inv[static_cast<size_t>(fi)];
        const double rot =
            i < half ? -double(x.get(base + i + half)) : double(x.get(base + i - half));
        y[static_cast<size_t>(base + i)] = float(x.get(base + i) * std::cos(a) + rot * std::sin(a));
      }
  }
  return y;
}

double RopeError(const RopeCase& c, DType dtype, DType pos_type, int64_t max_pos, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int64_t F = c.heads * c.head_dim;
  Owned x(dtype, {c.batch, c.seq, F}), y(dtype, {c.batch, c.seq, F}),
      pos(pos_type, {c.batch, c.seq});
  FillUniform(x, rng);
  FillInts(pos, rng, 0, max_pos);
  Status s = RunKernel("rope_fwd", RopeParams(c), {&x, &pos}, {&y});
  EXPECT_TRUE(s.ok()) << s.ToString();
  return NormalizedError(y.floats(), RopeRef(x, pos, c));
}

TEST(RopeTest, ForwardMatchesReference) {
  RopeCase c;
  EXPECT_LT(RopeError(c, DType::F32, DType::I32, 64, 21), 1e-5);
  EXPECT_LT(RopeError(c, DType::BF16, DType::I32, 64, 22), 1e-2);
  EXPECT_LT(RopeError(c, DType::F16, DType::I64, 64, 23), 2e-3);
  // Long-context positions: angles up to ~1.3e5 rad stay accurate.
  RopeCase big;
  big.batch = 1, big.seq = 16, big.heads = 2, big.head_dim = 128, big.theta = 500000.0;
  EXPECT_LT(RopeError(big, DType::F32, DType::I32, 131072, 24), 1e-5);
  // Many tokens: the parallel path.
  RopeCase many;
  many.batch = 4, many.seq = 300, many.heads = 2, many.head_dim = 16;
  EXPECT_LT(RopeError(many, DType::F32, DType::I32, 4096, 25), 1e-5);
}

TEST(RopeTest, LinearScalingDividesPositions) {
  RopeCase c;
  c.scaling = "linear";
  c.factor = 4.0;
  EXPECT_LT(RopeError(c, DType::F32, DType::I32, 1000, 31), 1e-5);
  // Same as the unscaled rotation at positions / factor (positions multiples of 4).
  std::mt19937_64 rng(32);
  const int64_t F = c.heads * c.head_dim;
  Owned x(DType::F32, {c.batch, c.seq, F}), y1(DType::F32, {c.batch, c.seq, F}),
      y2(DType::F32, {c.batch, c.seq, F}), pos(DType::I32, {c.batch, c.seq}),
      pos4(DType::I32, {c.batch, c.seq});
  FillUniform(x, rng);
  FillInts(pos, rng, 0, 500);
  for (int64_t i = 0; i < pos.numel(); ++i)
    pos4.view.as<int32_t>()[i] = 4 * pos.view.as<int32_t>()[i];
  RopeCase plain;
  ASSERT_TRUE(RunKernel("rope_fwd", RopeParams(c), {&x, &pos4}, {&y1}).ok());
  ASSERT_TRUE(RunKernel("rope_fwd", RopeParams(plain), {&x, &pos}, {&y2}).ok());
  EXPECT_LT(NormalizedError(y1.floats(), y2.floats()), 1e-6);
}

TEST(RopeTest, Llama3ScalingMatchesFormula) {
  // Llama 3.1's published rope_scaling.
  RopeCase c;
  c.batch = 1, c.seq = 6, c.heads = 2, c.head_dim = 128, c.theta = 500000.0;
  c.scaling = "llama3", c.factor = 8.0, c.low = 1.0, c.high = 4.0, c.orig = 8192;
  // The three regimes all occur at this head_dim.
  int high_freq = 0, low_freq = 0, medium = 0;
  for (int64_t i = 0; i < c.head_dim; i += 2) {
    const double wavelen = 2 * M_PI * std::pow(c.theta, double(i) / c.head_dim);
    if (wavelen < c.orig / c.high)
      ++high_freq;
    else if (wavelen > c.orig / c.low)
      ++low_freq;
    else
      ++medium;
  }
  EXPECT_GT(high_freq, 0);
  EXPECT_GT(low_freq, 0);
  EXPECT_GT(medium, 0);
  EXPECT_LT(RopeError(c, DType::F32, DType::I32, 131072, 41), 1e-5);
  EXPECT_LT(RopeError(c, DType::BF16, DType::I64, 131072, 42), 1e-2);
  // The scaled frequencies are not the plain ones (the test would not see a
  // kernel that ignores the scaling).
  RopeCase plain = c;
  plain.scaling = "none";
  std::mt19937_64 rng(43);
  Owned x(DType::F32, {1, 6, 256}), y(DType::F32, {1, 6, 256}), pos(DType::I32, {1, 6});
  FillUniform(x, rng);
  FillInts(pos, rng, 1000, 100000);
  ASSERT_TRUE(RunKernel("rope_fwd", RopeParams(c), {&x, &pos}, {&y}).ok());
  EXPECT_GT(NormalizedError(y.floats(), RopeRef(x, pos, plain)), 1e-2);
}

TEST(RopeTest, BackwardIsInverseRotationAndMatchesFiniteDifferences) {
  RopeCase c;
  c.scaling = "llama3", c.factor = 8.0, c.low = 1.0, c.high = 4.0, c.orig = 64;
  std::mt19937_64 rng(51);
  const int64_t F = c.heads * c.head_dim;
  Owned x(DType::F32, {c.batch, c.seq, F}), pos(DType::I32, {c.batch, c.seq});
  FillUniform(x, rng);
  FillInts(pos, rng, 0, 2000);
  std::vector<float> wv = Weights(static_cast<size_t>(x.numel()), rng);
  Owned dy(DType::F32, {c.batch, c.seq, F}), dx(DType::F32, {c.batch, c.seq, F});
  for (int64_t i = 0; i < dy.numel(); ++i) dy.set(i, wv[static_cast<size_t>(i)]);
  const KernelParams p = RopeParams(c);
  ASSERT_TRUE(RunKernel("rope_bwd", p, {&dy, &pos}, {&dx}).ok());
  EXPECT_LT(NormalizedError(dx.floats(), RopeRef(dy, pos, c, -1.0)), 1e-5);
  auto forward = [&]() {
    Owned y(DType::F32, {c.batch, c.seq, F});
    EXPECT_TRUE(RunKernel("rope_fwd", p, {&x, &pos}, {&y}).ok());
    return y.floats();
  };
  EXPECT_LT(FiniteDifferenceError(x, dx.floats(), forward, wv, rng, 0, 1e-2), 1e-3);
  // bwd(fwd(x)) == x.
  Owned y(DType::F32, {c.batch, c.seq, F}), back(DType::F32, {c.batch, c.seq, F});
  ASSERT_TRUE(RunKernel("rope_fwd", p, {&x, &pos}, {&y}).ok());
  ASSERT_TRUE(RunKernel("rope_bwd", p, {&y, &pos}, {&back}).ok());
  EXPECT_LT(NormalizedError(back.floats(), x.floats()), 1e-6);
}

TEST(RopeTest, RejectsBadOperandsAndParameters) {
  RopeCase c;
  const int64_t F = c.heads * c.head_dim;
  Owned x(DType::F32, {c.batch, c.seq, F}), y(DType::F32, {c.batch, c.seq, F});
  Owned pos(DType::I32, {c.batch, c.seq}), fpos(DType::F32, {c.batch, c.seq}),
      short_pos(DType::I32, {3});
  EXPECT_TRUE(RunKernel("rope_fwd", RopeParams(c), {&x, &pos}, {&y}).ok());
  EXPECT_FALSE(RunKernel("rope_fwd", RopeParams(c), {&x, &fpos}, {&y}).ok());
  EXPECT_FALSE(RunKernel("rope_fwd", RopeParams(c), {&x, &short_pos}, {&y}).ok());
  EXPECT_FALSE(RunKernel("rope_fwd", RopeParams(c), {&x}, {&y}).ok());
  RopeCase odd = c;
  odd.head_dim = 7, odd.heads = 3;  // features 21 != 24 and odd head_dim
  EXPECT_FALSE(RunKernel("rope_fwd", RopeParams(odd), {&x, &pos}, {&y}).ok());
  KernelParams p = RopeParams(c);
  p.Set("features", int64_t{24});
  p.Set("head_dim", int64_t{5});  // does not divide 24
  EXPECT_FALSE(RunKernel("rope_fwd", p, {&x, &pos}, {&y}).ok());
  RopeCase yarn = c;
  yarn.scaling = "yarn";
  Status s = RunKernel("rope_fwd", RopeParams(yarn), {&x, &pos}, {&y});
  EXPECT_EQ(s.code(), StatusCode::kUnimplemented);
  EXPECT_NE(s.message().find("yarn"), std::string::npos) << s.message();
  RopeCase bad = c;
  bad.scaling = "llama3", bad.low = 4.0, bad.high = 1.0;
  EXPECT_FALSE(RunKernel("rope_fwd", RopeParams(bad), {&x, &pos}, {&y}).ok());
  KernelParams missing = RopeParams(c);
  missing.Set("scaling", std::string("linear"));  // no factor
  EXPECT_FALSE(RunKernel("rope_fwd", missing, {&x, &pos}, {&y}).ok());
}

//===----------------------------------------------------------------------===//
// SwiGLU, add
//===----------------------------------------------------------------------===//

KernelParams ElementsParams(int64_t n) {
  KernelParams p;
  p.Set("elements", n);
  return p;
}

double Silu(double g) { return g / (1.0 + std::exp(-g)); }

TEST(ElementwiseTest, SwigluForwardMatchesReference) {
  for (auto [dtype, n, bound] : {std::tuple{DType::F32, int64_t{1000}, 1e-5},
                                 std::tuple{DType::F32, int64_t{20000}, 1e-5},  // parallel chunks
                                 std::tuple{DType::BF16, int64_t{3001}, 1e-2}}) {
    std::mt19937_64 rng(61);
    Owned g(dtype, {n}), u(dtype, {n}), y(dtype, {n});
    FillUniform(g, rng, -6.0f, 6.0f);
    FillUniform(u, rng, -2.0f, 2.0f);
    // Gates where exp saturates (the vectorized sigmoid clamps beyond 87).
    for (float big : {-200.0f, -90.0f, -87.5f, -40.0f, 40.0f, 87.5f, 90.0f, 200.0f})
      g.set(static_cast<int64_t>(rng() % static_cast<uint64_t>(n)), big);
    ASSERT_TRUE(RunKernel("swiglu_fwd", ElementsParams(n), {&g, &u}, {&y}).ok());
    std::vector<float> want(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) want[static_cast<size_t>(i)] = float(Silu(g.get(i)) * u.get(i));
    EXPECT_LT(NormalizedError(y.floats(), want), bound);
  }
}

TEST(ElementwiseTest, SwigluBackwardMatchesFiniteDifferences) {
  const int64_t n = 200;
  std::mt19937_64 rng(62);
  Owned g(DType::F32, {n}), u(DType::F32, {n}), dy(DType::F32, {n}), dg(DType::F32, {n}),
      du(DType::F32, {n});
  FillUniform(g, rng, -5.0f, 5.0f);
  FillUniform(u, rng);
  std::vector<float> wv = Weights(static_cast<size_t>(n), rng);
  for (int64_t i = 0; i < n; ++i) dy.set(i, wv[static_cast<size_t>(i)]);
  ASSERT_TRUE(RunKernel("swiglu_bwd", ElementsParams(n), {&dy, &g, &u}, {&dg, &du}).ok());
  auto forward = [&]() {
    Owned y(DType::F32, {n});
    EXPECT_TRUE(RunKernel("swiglu_fwd", ElementsParams(n), {&g, &u}, {&y}).ok());
    return y.floats();
  };
  EXPECT_LT(FiniteDifferenceError(g, dg.floats(), forward, wv, rng, 0, 1e-3), 1e-3);
  EXPECT_LT(FiniteDifferenceError(u, du.floats(), forward, wv, rng, 0, 1e-3), 1e-3);
  // Against the closed form too, in bf16.
  Owned gb(DType::BF16, {n}), ub(DType::BF16, {n}), dyb(DType::BF16, {n}), dgb(DType::BF16, {n}),
      dub(DType::BF16, {n});
  for (int64_t i = 0; i < n; ++i) gb.set(i, g.get(i)), ub.set(i, u.get(i)), dyb.set(i, dy.get(i));
  ASSERT_TRUE(RunKernel("swiglu_bwd", ElementsParams(n), {&dyb, &gb, &ub}, {&dgb, &dub}).ok());
  std::vector<float> want_g(static_cast<size_t>(n)), want_u(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double x = gb.get(i), s = 1.0 / (1.0 + std::exp(-x));
    want_g[static_cast<size_t>(i)] = float(dyb.get(i) * ub.get(i) * s * (1 + x * (1 - s)));
    want_u[static_cast<size_t>(i)] = float(dyb.get(i) * Silu(x));
  }
  EXPECT_LT(NormalizedError(dgb.floats(), want_g), 1e-2);
  EXPECT_LT(NormalizedError(dub.floats(), want_u), 1e-2);
}

TEST(ElementwiseTest, AddMatchesReferenceAndMayWriteInPlace) {
  const int64_t n = 5000;
  std::mt19937_64 rng(71);
  Owned a(DType::BF16, {n}), b(DType::BF16, {n}), y(DType::BF16, {n});
  FillUniform(a, rng);
  FillUniform(b, rng);
  ASSERT_TRUE(RunKernel("add", ElementsParams(n), {&a, &b}, {&y}).ok());
  std::vector<float> want(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    want[static_cast<size_t>(i)] = Round(DType::BF16, a.get(i) + b.get(i));
  EXPECT_EQ(y.floats(), want);  // one rounding of the exact f32 sum
  ASSERT_TRUE(RunKernel("add", ElementsParams(n), {&a, &b}, {&a}).ok());  // in place
  EXPECT_EQ(a.floats(), want);
  Owned short_b(DType::BF16, {n - 1});
  EXPECT_FALSE(RunKernel("add", ElementsParams(n), {&a, &short_b}, {&y}).ok());
  EXPECT_FALSE(RunKernel("add", KernelParams(), {&a, &b}, {&y}).ok());
  EXPECT_FALSE(RunKernel("add", ElementsParams(-1), {&a, &b}, {&y}).ok());
}

//===----------------------------------------------------------------------===//
// Segment boundary mask
//===----------------------------------------------------------------------===//

TEST(ElementwiseTest, SegmentBoundaryMaskClearsDocumentEnds) {
  // Two rows of 6 tokens; row 0 packs documents 0,0,0,1,1,2; row 1 is one
  // document with a padded mask.
  Owned mask(DType::BOOL, {2, 6}), seg(DType::I32, {2, 6}), out(DType::BOOL, {2, 6});
  const uint8_t m[] = {1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0};
  const int32_t s[] = {0, 0, 0, 1, 1, 2, 5, 5, 5, 5, 5, 5};
  std::memcpy(mask.view.data, m, sizeof(m));
  std::memcpy(seg.view.data, s, sizeof(s));
  KernelParams p;
  p.Set("batch", int64_t{2});
  p.Set("seq", int64_t{6});
  ASSERT_TRUE(RunKernel("segment_boundary_mask", p, {&mask, &seg}, {&out}).ok());
  const uint8_t want[] = {1, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1, 0};
  EXPECT_EQ(std::vector<uint8_t>(out.bytes.begin(), out.bytes.begin() + 12),
            std::vector<uint8_t>(want, want + 12));
  // I64 ids, in place, random against the definition.
  std::mt19937_64 rng(81);
  const int64_t B = 3, T = 50;
  Owned mk(DType::BOOL, {B, T}), sg(DType::I64, {B, T});
  FillInts(sg, rng, 0, 3);
  std::vector<uint8_t> orig(static_cast<size_t>(B * T));
  for (auto& v : orig) v = static_cast<uint8_t>(rng() & 1);
  std::memcpy(mk.view.data, orig.data(), orig.size());
  p.Set("batch", B);
  p.Set("seq", T);
  ASSERT_TRUE(RunKernel("segment_boundary_mask", p, {&mk, &sg}, {&mk}).ok());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const int64_t* ids = sg.view.as<int64_t>() + b * T;
      const bool keep = orig[static_cast<size_t>(b * T + t)] && t + 1 < T && ids[t + 1] == ids[t];
      EXPECT_EQ(mk.view.as<uint8_t>()[b * T + t], keep ? 1 : 0) << b << "," << t;
    }
  Owned fmask(DType::F32, {2, 6});
  p.Set("batch", int64_t{2});
  p.Set("seq", int64_t{6});
  EXPECT_FALSE(RunKernel("segment_boundary_mask", p, {&fmask, &seg}, {&out}).ok());
  EXPECT_FALSE(RunKernel("segment_boundary_mask", p, {&mask, &fmask}, {&out}).ok());
  p.Set("seq", int64_t{7});
  EXPECT_FALSE(RunKernel("segment_boundary_mask", p, {&mask, &seg}, {&out}).ok());
}

//===----------------------------------------------------------------------===//
// Fill, accumulate, copy, zero, cast
//===----------------------------------------------------------------------===//

TEST(ElementwiseTest, FillWritesTheValue) {
  Owned s(DType::F32, {});
  KernelParams p = ElementsParams(1);
  p.Set("value", 0.125);
  ASSERT_TRUE(RunKernel("fill", p, {}, {&s}).ok());
  EXPECT_EQ(s.get(0), 0.125f);
  Owned big(DType::BF16, {3000});
  p = ElementsParams(3000);
  p.Set("value", -3.0);
  ASSERT_TRUE(RunKernel("fill", p, {}, {&big}).ok());
  for (int64_t i = 0; i < 3000; ++i) ASSERT_EQ(big.get(i), -3.0f);
  EXPECT_FALSE(RunKernel("fill", ElementsParams(3000), {}, {&big}).ok());  // no value
  Owned ints(DType::I32, {3000});
  EXPECT_FALSE(RunKernel("fill", p, {}, {&ints}).ok());
}

TEST(ElementwiseTest, AccumulateAddsAnyFloatIntoF32InPlace) {
  const int64_t n = 10000;
  std::mt19937_64 rng(91);
  Owned acc(DType::F32, {n}), g(DType::BF16, {n});
  FillUniform(acc, rng);
  FillUniform(g, rng);
  std::vector<float> want(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) want[static_cast<size_t>(i)] = acc.get(i) + g.get(i);
  ASSERT_TRUE(RunKernel("accumulate", ElementsParams(n), {&acc, &g}, {&acc}).ok());
  EXPECT_EQ(acc.floats(), want);
  Owned out(DType::F32, {n}), bf_acc(DType::BF16, {n});
  EXPECT_FALSE(RunKernel("accumulate", ElementsParams(n), {&bf_acc, &g}, {&out}).ok());
  EXPECT_FALSE(RunKernel("accumulate", ElementsParams(n + 1), {&acc, &g}, {&out}).ok());
}

TEST(ElementwiseTest, CopyZeroAndCast) {
  std::mt19937_64 rng(101);
  const int64_t n = 777;
  Owned src(DType::BF16, {n}), dst(DType::BF16, {n});
  FillUniform(src, rng);
  ASSERT_TRUE(RunKernel("copy", ElementsParams(n), {&src}, {&dst}).ok());
  EXPECT_EQ(0, std::memcmp(src.view.data, dst.view.data, size_t(n) * 2));
  ASSERT_TRUE(RunKernel("copy", ElementsParams(n), {&src}, {&src}).ok());  // same buffer
  Owned ids(DType::I64, {n}), ids2(DType::I64, {n});
  FillInts(ids, rng, -100, 100);
  ASSERT_TRUE(RunKernel("copy", ElementsParams(n), {&ids}, {&ids2}).ok());
  EXPECT_EQ(0, std::memcmp(ids.view.data, ids2.view.data, size_t(n) * 8));
  Owned f32(DType::F32, {n});
  ASSERT_TRUE(RunKernel("copy", ElementsParams(n), {&src}, {&f32}).ok());  // widening copy
  EXPECT_EQ(f32.floats(), src.floats());
  EXPECT_FALSE(RunKernel("copy", ElementsParams(n), {&ids}, {&f32}).ok());
  EXPECT_FALSE(RunKernel("copy", ElementsParams(n - 1), {&src}, {&dst}).ok());

  Owned z(DType::F32, {n});
  FillUniform(z, rng);
  ASSERT_TRUE(RunKernel("zero", ElementsParams(n), {}, {&z}).ok());
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(z.get(i), 0.0f);
  Owned zi(DType::I64, {5});
  FillInts(zi, rng, 1, 9);
  ASSERT_TRUE(RunKernel("zero", ElementsParams(5), {}, {&zi}).ok());
  for (int64_t i = 0; i < 5; ++i) ASSERT_EQ(zi.view.as<int64_t>()[i], 0);
  EXPECT_FALSE(RunKernel("zero", ElementsParams(6), {}, {&zi}).ok());
  Owned nf4(DType::NF4, {64});
  EXPECT_FALSE(RunKernel("zero", ElementsParams(64), {}, {&nf4}).ok());

  // Cast: round to nearest, ties to even, in both narrow types.
  const float in[] = {1.0f + 0x1p-8f,  1.0f + 3 * 0x1p-8f,  -(1.0f + 0x1p-8f),
                      1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 65504.0f,
                      1e-8f,           3.14159265f};
  Owned x(DType::F32, {8}), bf(DType::BF16, {8}), hf(DType::F16, {8}), back(DType::F32, {8});
  for (int i = 0; i < 8; ++i) x.set(i, in[i]);
  ASSERT_TRUE(RunKernel("cast", ElementsParams(8), {&x}, {&bf}).ok());
  ASSERT_TRUE(RunKernel("cast", ElementsParams(8), {&x}, {&hf}).ok());
  EXPECT_EQ(bf.get(0), 1.0f);
  EXPECT_EQ(bf.get(1), 1.0f + 0x1p-6f);
  EXPECT_EQ(bf.get(2), -1.0f);
  EXPECT_EQ(hf.get(3), 1.0f);
  EXPECT_EQ(hf.get(4), 1.0f + 0x1p-9f);
  EXPECT_EQ(hf.get(5), 65504.0f);
  EXPECT_EQ(bf.get(7), 3.140625f);
  ASSERT_TRUE(RunKernel("cast", ElementsParams(8), {&hf}, {&back}).ok());
  for (int i = 0; i < 8; ++i) EXPECT_EQ(back.get(i), hf.get(i));
  // bf16 -> f16 and a large random cast against per-element rounding.
  Owned big(DType::F32, {5000}), big_bf(DType::BF16, {5000});
  FillUniform(big, rng, -100.0f, 100.0f);
  ASSERT_TRUE(RunKernel("cast", ElementsParams(5000), {&big}, {&big_bf}).ok());
  for (int64_t i = 0; i < 5000; ++i) ASSERT_EQ(big_bf.get(i), Round(DType::BF16, big.get(i)));
  Owned ints(DType::I32, {8});
  EXPECT_FALSE(RunKernel("cast", ElementsParams(8), {&ints}, {&bf}).ok());
}

TEST(ElementwiseTest, EveryKindIsRegistered) {
  for (const char* kind :
       {"rms_norm_fwd", "rms_norm_bwd", "rope_fwd", "rope_bwd", "swiglu_fwd", "swiglu_bwd", "add",
        "segment_boundary_mask", "fill", "accumulate", "copy", "zero", "cast"}) {
    KernelFn fn = nullptr;
    EXPECT_TRUE(LookupKernel(kind, &fn).ok()) << kind;
    EXPECT_NE(fn, nullptr) << kind;
  }
}

}  // namespace
}  // namespace lorart::cpu
