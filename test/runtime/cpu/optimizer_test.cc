// The optimizer kernels (optimizer.cc): the global norm against a double
// reference (and across thread counts), clip_scale's cases, AdamW against a
// hand-computed two-step example and a double-precision reference loop
// (separate and in-place outputs), and the errors for bad operands.
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "harness.h"

namespace lorart::cpu {
namespace {

using testing::FillUniform;
using testing::Owned;
using testing::RunKernel;


Owned Scalar(float v) {
  Owned s(DType::F32, {});
  s.set(0, v);
  return s;
}

TEST(OptimizerTest, GlobalNormMatchesDoubleReference) {
  std::mt19937_64 rng(1);
  // Sizes around the kernel's 16384-element pieces, mixed dtypes.
  Owned a(DType::F32, {40000}), b(DType::BF16, {16, 64}), c(DType::F32, {16384}),
      d(DType::F16, {3});
  FillUniform(a, rng, -1e-3f, 1e-3f);
  FillUniform(b, rng);
  FillUniform(c, rng, -10.0f, 10.0f);
  FillUniform(d, rng);
  double ss = 0.0;
  for (Owned* t : {&a, &b, &c, &d})
    for (int64_t i = 0; i < t->numel(); ++i) ss += double(t->get(i)) * t->get(i);
  KernelParams p;
  p.Set("tensors", int64_t{4});
  Owned n1(DType::F32, {}), n2(DType::F32, {});
  ASSERT_TRUE(RunKernel("global_norm", p, {&a, &b, &c, &d}, {&n1}, 0, 1).ok());
  ASSERT_TRUE(RunKernel("global_norm", p, {&a, &b, &c, &d}, {&n2}, 0, 2).ok());
  EXPECT_NEAR(n1.get(0), std::sqrt(ss), 1e-6 * std::sqrt(ss));
  EXPECT_EQ(n1.get(0), n2.get(0));  // same pieces, same order
  // One tensor, and none.
  p.Set("tensors", int64_t{1});
  ASSERT_TRUE(RunKernel("global_norm", p, {&d}, {&n1}).ok());
  EXPECT_NEAR(n1.get(0),
              std::sqrt(double(d.get(0)) * d.get(0) + double(d.get(1)) * d.get(1) +
                        double(d.get(2)) * d.get(2)),
              1e-6);
  p.Set("tensors", int64_t{0});
  ASSERT_TRUE(RunKernel("global_norm", p, {}, {&n1}).ok());
  EXPECT_EQ(n1.get(0), 0.0f);
  // Arity against `tensors`, a non-float input, a non-scalar output.
  p.Set("tensors", int64_t{2});
  EXPECT_FALSE(RunKernel("global_norm", p, {&a}, {&n1}).ok());
  Owned ints(DType::I32, {4}), vec(DType::F32, {2});
  EXPECT_FALSE(RunKernel("global_norm", p, {&a, &ints}, {&n1}).ok());
  EXPECT_FALSE(RunKernel("global_norm", p, {&a, &c}, {&vec}).ok());
}

float ClipScale(double max_norm, float norm, float count, Status* status = nullptr) {
  KernelParams p;
  p.Set("max_norm", max_norm);
  Owned n = Scalar(norm), c = Scalar(count), out(DType::F32, {});
  Status s = RunKernel("clip_scale", p, {&n, &c}, {&out});
  if (status)
    *status = s;
  else
    EXPECT_TRUE(s.ok()) << s.ToString();
  return out.get(0);
}

TEST(OptimizerTest, ClipScaleCases) {
  // Mean-gradient norm 10 / 4 = 2.5 > 1: clipped to 1 / (2.5 + 1e-6), then / 4.
  EXPECT_FLOAT_EQ(ClipScale(1.0, 10.0f, 4.0f), float(1.0 / (2.5 + 1e-6) / 4.0));
  // Below the threshold: only the 1 / count normalization.
  EXPECT_FLOAT_EQ(ClipScale(1.0, 2.0f, 4.0f), 0.25f);
  // max_norm = 0 disables clipping.
  EXPECT_FLOAT_EQ(ClipScale(0.0, 1e6f, 8.0f), 0.125f);
  // Exactly at the threshold the 1e-6 keeps it (just) below 1.
  EXPECT_FLOAT_EQ(ClipScale(1.0, 3.0f, 3.0f), float(1.0 / (1.0 + 1e-6) / 3.0));
  // A NaN or infinite norm gives a NaN scale (adamw then skips), with or
  // without clipping: an infinite norm used to clip to a scale of 0 (decay
  // still applied) or, unclipped, to feed Inf into the update.
  for (double max_norm : {1.0, 0.0}) {
    EXPECT_TRUE(std::isnan(ClipScale(max_norm, std::numeric_limits<float>::quiet_NaN(), 2.0f)));
    EXPECT_TRUE(std::isnan(ClipScale(max_norm, std::numeric_limits<float>::infinity(), 2.0f)));
  }
  // No target tokens.
  for (float bad : {0.0f, -1.0f, std::numeric_limits<float>::quiet_NaN()}) {
    Status s;
    ClipScale(1.0, 1.0f, bad, &s);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("no target tokens in the accumulated batch"), std::string::npos)
        << s.message();
  }
  // Missing max_norm, a vector operand.
  Owned n = Scalar(1.0f), c = Scalar(1.0f), out(DType::F32, {}), vec(DType::F32, {2});
  EXPECT_FALSE(RunKernel("clip_scale", KernelParams(), {&n, &c}, {&out}).ok());
  KernelParams p;
  p.Set("max_norm", 1.0);
  EXPECT_FALSE(RunKernel("clip_scale", p, {&vec, &c}, {&out}).ok());
  EXPECT_FALSE(RunKernel("clip_scale", p, {&n}, {&out}).ok());
}

KernelParams AdamParams(int64_t n, double wd = 0.01) {
  KernelParams p;
  p.Set("elements", n);
  p.Set("beta1", 0.9);
  p.Set("beta2", 0.999);
  p.Set("eps", 1e-8);
  p.Set("weight_decay", wd);
  return p;
}

TEST(OptimizerTest, AdamWTwoStepsByHand) {
  // lr 0.1, betas (0.9, 0.999), eps 1e-8, weight decay 0.01, the same
  // gradient at both steps (so the bias-corrected moments are g and g²),
  // gradient scale 0.5:
  //   p=1, g=1 (g'=0.5): step 1: m=0.05, v=0.00025, m̂=0.5, v̂=0.25,
  //     p = 1 - 0.1·(0.5/(0.5+1e-8) + 0.01·1)             = 0.899000002
  //   step 2: m=0.095, v=0.00049975, m̂=0.5, v̂=0.25,
  //     p = 0.899000002 - 0.1·(0.99999998 + 0.00899000002) = 0.798101004
  //   p=2, g=-2, scale 0.5 (g'=-1): step 1: m=-0.1, v=0.001, m̂=-1, v̂=1,
  //     p = 2 - 0.1·(-0.99999999 + 0.02)                    = 2.097999999
  //   step 2: m=-0.19, v=0.001999, m̂=-1, v̂=1,
  //     p = 2.097999999 - 0.1·(-0.99999999 + 0.02097999999) = 2.195901999
  Owned p(DType::F32, {2}), g(DType::F32, {2}), m(DType::F32, {2}), v(DType::F32, {2});
  p.set(0, 1.0f), p.set(1, 2.0f);
  Owned lr = Scalar(0.1f);
  const double want1[2] = {0.899000002, 2.097999999}, want2[2] = {0.798101004, 2.195901999};
  for (int step = 1; step <= 2; ++step) {
    Owned st = Scalar(float(step));
    g.set(0, 1.0f), g.set(1, -2.0f);
    Owned scale = Scalar(0.5f);
    ASSERT_TRUE(
        RunKernel("adamw", AdamParams(2), {&p, &g, &m, &v, &lr, &st, &scale}, {&p, &m, &v}).ok());
    const double* want = step == 1 ? want1 : want2;
    EXPECT_NEAR(p.get(0), want[0], 1e-6) << "step " << step;
    EXPECT_NEAR(p.get(1), want[1], 1e-6) << "step " << step;
  }
  EXPECT_NEAR(m.get(0), 0.095, 1e-7);
  EXPECT_NEAR(v.get(0), 0.00049975, 1e-9);
  EXPECT_NEAR(m.get(1), -0.19, 1e-7);
  EXPECT_NEAR(v.get(1), 0.001999, 1e-9);
}

// A non-finite gradient scale (clip_scale's signal) leaves parameters and
// moments exactly as they were, in place and into separate outputs.
TEST(OptimizerTest, AdamWSkipsOnNonFiniteScale) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const int64_t n = 37;
  Owned p(DType::F32, {n}), g(DType::F32, {n}), m(DType::F32, {n}), v(DType::F32, {n});
  for (int64_t i = 0; i < n; ++i) {
    p.set(i, u(rng)), g.set(i, u(rng)), m.set(i, u(rng)), v.set(i, std::fabs(u(rng)));
  }
  const std::vector<float> p0 = p.floats(), m0 = m.floats(), v0 = v.floats();
  Owned lr = Scalar(0.1f), st = Scalar(3.0f);
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    Owned scale = Scalar(bad);
    Owned p2(DType::F32, {n}), m2(DType::F32, {n}), v2(DType::F32, {n});
    ASSERT_TRUE(
        RunKernel("adamw", AdamParams(n), {&p, &g, &m, &v, &lr, &st, &scale}, {&p2, &m2, &v2})
            .ok());
    EXPECT_EQ(p2.floats(), p0);
    EXPECT_EQ(m2.floats(), m0);
    EXPECT_EQ(v2.floats(), v0);
    ASSERT_TRUE(
        RunKernel("adamw", AdamParams(n), {&p, &g, &m, &v, &lr, &st, &scale}, {&p, &m, &v}).ok());
    EXPECT_EQ(p.floats(), p0);
    EXPECT_EQ(m.floats(), m0);
    EXPECT_EQ(v.floats(), v0);
  }
}

TEST(OptimizerTest, AdamWMatchesReferenceLoop) {
  const int64_t n = 20000;  // several chunks: the parallel path
  std::mt19937_64 rng(7);
  for (bool in_place : {false, true}) {
    Owned p(DType::F32, {n}), m(DType::F32, {n}), v(DType::F32, {n}), g(DType::F32, {n});
    FillUniform(p, rng);
    std::vector<double> rp(static_cast<size_t>(n)), rm(rp.size(), 0.0), rv(rp.size(), 0.0);
    for (int64_t i = 0; i < n; ++i) rp[size_t(i)] = p.get(i);
    Owned p2(DType::F32, {n}), m2(DType::F32, {n}), v2(DType::F32, {n});
    const double lr = 3e-4, wd = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8, scale = 0.25;
    for (int step = 1; step <= 3; ++step) {
      FillUniform(g, rng, -4.0f, 4.0f);
      Owned lr_s = Scalar(float(lr)), st = Scalar(float(step)), sc = Scalar(float(scale));
      std::vector<Owned*> outs =
          in_place ? std::vector<Owned*>{&p, &m, &v} : std::vector<Owned*>{&p2, &m2, &v2};
      ASSERT_TRUE(
          RunKernel("adamw", AdamParams(n, wd), {&p, &g, &m, &v, &lr_s, &st, &sc}, outs).ok());
      if (!in_place) {
        std::swap(p.bytes, p2.bytes), std::swap(m.bytes, m2.bytes), std::swap(v.bytes, v2.bytes);
        for (Owned* t : {&p, &m, &v, &p2, &m2, &v2}) t->view.data = t->bytes.data();
      }
      const double bc1 = 1 - std::pow(b1, step), bc2 = 1 - std::pow(b2, step);
      for (int64_t i = 0; i < n; ++i) {
        const double gi = scale * g.get(i);
        double& pi = rp[size_t(i)];
        double& mi = rm[size_t(i)];
        double& vi = rv[size_t(i)];
        mi = b1 * mi + (1 - b1) * gi;
        vi = b2 * vi + (1 - b2) * gi * gi;
        pi = pi - lr * ((mi / bc1) / (std::sqrt(vi / bc2) + eps) + wd * pi);
      }
    }
    double err_p = 0, err_m = 0, err_v = 0;
    for (int64_t i = 0; i < n; ++i) {
      err_p = std::max(err_p, std::fabs(p.get(i) - rp[size_t(i)]));
      err_m = std::max(err_m, std::fabs(m.get(i) - rm[size_t(i)]));
      err_v = std::max(err_v, std::fabs(v.get(i) - rv[size_t(i)]));
    }
    // Updates are ~lr; parameters are ~1 (f32 ulp 1.2e-7).
    EXPECT_LT(err_p, 5e-7) << "in place " << in_place;
    EXPECT_LT(err_m, 1e-6) << "in place " << in_place;
    EXPECT_LT(err_v, 1e-6) << "in place " << in_place;
  }
}

TEST(OptimizerTest, AdamWRejectsBadInputs) {
  Owned p(DType::F32, {4}), g(DType::F32, {4}), m(DType::F32, {4}), v(DType::F32, {4});
  Owned lr = Scalar(1e-3f), one = Scalar(1.0f), zero = Scalar(0.0f);
  auto run = [&](const KernelParams& kp, Owned* gp, Owned* step) {
    return RunKernel("adamw", kp, {&p, gp, &m, &v, &lr, step, &one}, {&p, &m, &v});
  };
  EXPECT_TRUE(run(AdamParams(4), &g, &one).ok());
  Status s = run(AdamParams(4), &g, &zero);  // steps are 1-based
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("step"), std::string::npos) << s.message();
  Owned bf(DType::BF16, {4}), short_g(DType::F32, {3});
  EXPECT_FALSE(run(AdamParams(4), &bf, &one).ok());
  EXPECT_FALSE(run(AdamParams(4), &short_g, &one).ok());
  EXPECT_FALSE(run(AdamParams(5), &g, &one).ok());
  KernelParams no_beta;
  no_beta.Set("elements", int64_t{4});
  EXPECT_FALSE(run(no_beta, &g, &one).ok());
  KernelParams bad_beta = AdamParams(4);
  bad_beta.Set("beta2", 1.0);
  EXPECT_FALSE(run(bad_beta, &g, &one).ok());
  Owned vec_lr(DType::F32, {2});
  EXPECT_FALSE(
      RunKernel("adamw", AdamParams(4), {&p, &g, &m, &v, &vec_lr, &one, &one}, {&p, &m, &v}).ok());
  EXPECT_FALSE(RunKernel("adamw", AdamParams(4), {&p, &g, &m, &v, &lr, &one}, {&p, &m, &v}).ok());
}

}  // namespace
}  // namespace lorart::cpu
