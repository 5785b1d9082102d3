// Gemm (oneDNN matmul) against the double-precision GemmReference: every
// transpose, strided operands, alpha/beta, the element-type pairs, panelled
// conversions, bad arguments, the primitive cache and concurrent calls.
// GemmTest.DISABLED_Perf1024 and DISABLED_PerfShapes print GFLOP/s (run them with
// --gtest_also_run_disabled_tests --gtest_filter='GemmTest.DISABLED_Perf*').
#include "lorart/cpu/gemm.h"

#include <chrono>
#include <cstdio>
#include <thread>

#include "harness.h"

namespace lorart::cpu {
namespace {

using testing::FillUniform;
using testing::NormalizedError;
using testing::Owned;

struct Problem {
  bool ta = false, tb = false;
  int64_t M = 0, N = 0, K = 0, pad = 0;
  DType at = DType::F32, bt = DType::F32, ct = DType::F32;
  float alpha = 1.0f, beta = 0.0f;
};

// Runs Gemm and GemmReference on the same random operands (C starts from the
// same random values) and returns the normalized error over C.
double GemmError(const Problem& p, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int64_t lda = (p.ta ? p.M : p.K) + p.pad, ldb = (p.tb ? p.K : p.N) + p.pad,
                ldc = p.N + p.pad;
  Owned a(p.at, {(p.ta ? p.K : p.M) * lda}), b(p.bt, {(p.tb ? p.N : p.K) * ldb});
  Owned c(p.ct, {p.M * ldc});
  FillUniform(a, rng);
  FillUniform(b, rng);
  FillUniform(c, rng);
  Owned want = c;
  want.view.data = want.bytes.data();
  Status s = Gemm(p.ta, p.tb, p.M, p.N, p.K, p.alpha, {a.view.data, p.at, lda},
                  {b.view.data, p.bt, ldb}, p.beta, c.view.data, p.ct, ldc, 2);
  EXPECT_TRUE(s.ok()) << s.ToString();
  Owned wf(DType::F32, {p.M * ldc});  // reference in f32 so only Gemm rounds
  for (int64_t i = 0; i < wf.numel(); ++i) wf.set(i, want.get(i));
  s = GemmReference(p.ta, p.tb, p.M, p.N, p.K, p.alpha, {a.view.data, p.at, lda},
                    {b.view.data, p.bt, ldb}, p.beta, wf.view.data, DType::F32, ldc);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return NormalizedError(c.floats(), wf.floats());
}

TEST(GemmTest, F32EveryTransposeStridedAlphaBeta) {
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (float beta : {0.0f, 1.0f, 0.5f}) {
        Problem p;
        p.ta = ta;
        p.tb = tb;
        p.M = 37;
        p.N = 29;
        p.K = 41;
        p.pad = 3;
        p.alpha = 0.75f;
        p.beta = beta;
        EXPECT_LT(GemmError(p, 1 + ta * 2 + tb), 1e-5)
            << "ta=" << ta << " tb=" << tb << " beta=" << beta;
      }
}

TEST(GemmTest, Bf16InputsAccumulateInF32) {
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      Problem p;
      p.ta = ta;
      p.tb = tb;
      p.M = 33;
      p.N = 40;
      p.K = 130;
      p.pad = 2;
      p.at = p.bt = DType::BF16;
      p.beta = 1.0f;
      // bf16 products are exact in f32: only the accumulation order differs.
      EXPECT_LT(GemmError(p, 10 + ta * 2 + tb), 1e-5) << "ta=" << ta << " tb=" << tb;
      p.ct = DType::BF16;  // one rounding of the f32 result to bf16
      EXPECT_LT(GemmError(p, 20 + ta * 2 + tb), 8e-3) << "ta=" << ta << " tb=" << tb;
    }
}

TEST(GemmTest, MixedF32Bf16RoundsTheF32Operand) {
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      Problem p;
      p.ta = ta;
      p.tb = tb;
      p.M = 24;
      p.N = 31;
      p.K = 64;
      p.pad = 1;
      p.at = ta ? DType::BF16 : DType::F32;
      p.bt = ta ? DType::F32 : DType::BF16;
      p.alpha = 1.5f;
      EXPECT_LT(GemmError(p, 30 + ta * 2 + tb), 1e-2) << "ta=" << ta << " tb=" << tb;
    }
}

TEST(GemmTest, F16RunsInF32) {
  Problem p;
  p.M = 19;
  p.N = 23;
  p.K = 50;
  p.at = DType::F16;
  p.bt = DType::F32;
  p.ct = DType::F16;
  p.beta = 0.25f;
  EXPECT_LT(GemmError(p, 40), 2e-3);
  p.tb = true;
  p.at = DType::BF16;
  p.bt = DType::F16;
  p.ct = DType::F32;
  EXPECT_LT(GemmError(p, 41), 1e-5);
}

// Operands converted panel by panel (several panels of B, A and C).
TEST(GemmTest, ConvertedPanels) {
  Problem p;
  p.M = 5;
  p.N = 300;
  p.K = 16384;  // B panels of 128 columns
  p.at = DType::BF16;
  p.bt = DType::F32;
  p.tb = true;
  EXPECT_LT(GemmError(p, 50), 1e-2);
  Problem q;
  q.M = 70;
  q.N = 1500;  // C panels of 1024 columns
  q.K = 8;
  q.ct = DType::F16;
  q.beta = 1.0f;
  EXPECT_LT(GemmError(q, 51), 2e-3);
  Problem r;
  r.M = 200;  // A panels of 128 rows
  r.N = 3;
  r.K = 16384;
  r.ta = true;
  r.at = DType::F32;
  r.bt = DType::BF16;
  EXPECT_LT(GemmError(r, 52), 1e-2);
}

// A converted product with a long K (as an LM head's dx = dlogits·W, K =
// vocab) is summed over K blocks in f32: in C itself (f32) or in a scratch
// rounded into C once (bf16, f16), beta applied once, every transpose.
TEST(GemmTest, LongKInBlocks) {
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (DType ct : {DType::F32, DType::BF16, DType::F16}) {
        Problem p;
        p.ta = ta;
        p.tb = tb;
        p.M = 9;
        p.N = 21;
        p.K = 9001;  // three blocks of at most 4096, the last shorter
        p.pad = 5;
        p.at = DType::BF16;
        p.bt = ta ? DType::F32 : DType::BF16;
        p.ct = ct;
        p.alpha = 0.5f;
        p.beta = 0.75f;
        const double tol = ct == DType::F32 ? (p.bt == DType::F32 ? 1e-2 : 1e-5) : 8e-3;
        EXPECT_LT(GemmError(p, 60 + ta * 2 + tb), tol)
            << "ta=" << ta << " tb=" << tb << " c=" << schema::EnumNameDType(ct);
      }
}

TEST(GemmTest, EmptyAndZeroK) {
  Owned c(DType::F32, {6});
  for (int i = 0; i < 6; ++i) c.set(i, float(i + 1));
  float dummy = 0;
  ASSERT_TRUE(Gemm(false, false, 2, 3, 0, 1.0f, {&dummy, DType::F32, 1}, {&dummy, DType::F32, 3},
                   0.5f, c.view.data, DType::F32, 3)
                  .ok());
  for (int i = 0; i < 6; ++i) EXPECT_EQ(c.get(i), 0.5f * float(i + 1));
  EXPECT_TRUE(Gemm(false, false, 0, 3, 4, 1.0f, {nullptr, DType::F32, 4}, {nullptr, DType::F32, 3},
                   0.0f, nullptr, DType::F32, 3)
                  .ok());
}

TEST(GemmTest, BadArgumentsAreErrors) {
  float buf[64] = {1};
  auto code = [](const Status& s) { return s.code(); };
  EXPECT_EQ(code(Gemm(false, false, -1, 2, 2, 1.0f, {buf, DType::F32, 2}, {buf, DType::F32, 2},
                      0.0f, buf, DType::F32, 2)),
            StatusCode::kInvalidArgument);
  Status s = Gemm(false, false, 2, 2, 4, 1.0f, {buf, DType::F32, 3}, {buf, DType::F32, 2}, 0.0f,
                  buf, DType::F32, 2);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("lda=3"), std::string::npos) << s.message();
  EXPECT_EQ(code(Gemm(false, true, 2, 2, 2, 1.0f, {buf, DType::I32, 2}, {buf, DType::F32, 2}, 0.0f,
                      buf, DType::F32, 2)),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Gemm(false, false, 2, 2, 2, 1.0f, {nullptr, DType::F32, 2}, {buf, DType::F32, 2},
                      0.0f, buf, DType::F32, 2)),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code(GemmReference(false, false, 2, 2, 2, 1.0f, {buf, DType::F32, 2},
                               {buf, DType::F32, 2}, 0.0f, buf, DType::F32, 1)),
            StatusCode::kInvalidArgument);
}

TEST(GemmTest, PrimitivesAreCachedPerShape) {
  Problem p;
  p.M = 11;
  p.N = 13;
  p.K = 17;
  GemmError(p, 60);
  const int64_t size = GemmCacheSize();
  EXPECT_LT(GemmError(p, 61), 1e-5);
  EXPECT_EQ(GemmCacheSize(), size);
  p.K = 18;
  GemmError(p, 62);
  EXPECT_EQ(GemmCacheSize(), size + 1);
}

TEST(GemmTest, ConcurrentCallsFromThreads) {
  double err[2] = {1, 1};
  std::thread t0([&] {
    Problem p;
    p.M = 64;
    p.N = 48;
    p.K = 96;
    for (int i = 0; i < 4; ++i) err[0] = std::max(i ? err[0] : 0.0, GemmError(p, 70 + i));
  });
  std::thread t1([&] {
    Problem p;
    p.M = 64;
    p.N = 48;
    p.K = 96;
    p.at = p.bt = DType::BF16;
    for (int i = 0; i < 4; ++i) err[1] = std::max(i ? err[1] : 0.0, GemmError(p, 80 + i));
  });
  t0.join();
  t1.join();
  EXPECT_LT(err[0], 1e-5);
  EXPECT_LT(err[1], 1e-5);
}

// GFLOP/s of 1024³ products (f32 and bf16 inputs, f32 output), for every
// transpose pair; x·Wᵀ (trans_b) is the forward of a linear layer.
TEST(GemmTest, DISABLED_Perf1024) {
  const int64_t n = 1024;
  std::mt19937_64 rng(90);
  for (DType dt : {DType::F32, DType::BF16}) {
    Owned a(dt, {n, n}), b(dt, {n, n}), c(DType::F32, {n, n});
    FillUniform(a, rng);
    FillUniform(b, rng);
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        auto run = [&] {
          return Gemm(ta, tb, n, n, n, 1.0f, {a.view.data, dt, n}, {b.view.data, dt, n}, 0.0f,
                      c.view.data, DType::F32, n, 2);
        };
        ASSERT_TRUE(run().ok());
        const int reps = 20;
        auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < reps; ++i) ASSERT_TRUE(run().ok());
        double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::printf("gemm 1024^3 %-4s trans_a=%d trans_b=%d (f32 out, 2 threads): %.1f GFLOP/s\n",
                    schema::EnumNameDType(dt), ta, tb, 2.0 * n * n * n * reps / sec * 1e-9);
      }
  }
}

// f32 products of the LM-head chunks (TinyLlama: vocab 32000, hidden 2048;
// 256, 512 and 1024 rows: logits, then dx) and of its MLP projections, in
// TFLOP/s: what lorac's CPU minimum of 512 rows a chunk rests on
// (docs/compiler.md, --ce-chunk).
TEST(GemmTest, DISABLED_PerfShapes) {
  std::mt19937_64 rng(91);
  struct S {
    bool ta, tb;
    int64_t M, N, K;
  };
  const S shapes[] = {{false, true, 256, 32000, 2048},  {false, true, 512, 32000, 2048},
                      {false, true, 1024, 32000, 2048}, {false, false, 256, 2048, 32000},
                      {false, false, 512, 2048, 32000}, {false, false, 1024, 2048, 32000},
                      {false, true, 1024, 5632, 2048},  {false, false, 1024, 2048, 5632}};
  for (const S& s : shapes) {
    const int64_t lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
    Owned a(DType::F32, {s.M * s.K}), b(DType::F32, {s.K * s.N}), c(DType::F32, {s.M * s.N});
    FillUniform(a, rng);
    FillUniform(b, rng);
    auto run = [&] {
      return Gemm(s.ta, s.tb, s.M, s.N, s.K, 1.0f, {a.view.data, DType::F32, lda},
                  {b.view.data, DType::F32, ldb}, 0.0f, c.view.data, DType::F32, s.N, 2);
    };
    ASSERT_TRUE(run().ok());
    const int reps = 3;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) ASSERT_TRUE(run().ok());
    double sec =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
    std::printf("ta=%d tb=%d M=%ld N=%ld K=%ld: %.1f ms %.3f TFLOP/s\n", s.ta, s.tb, (long)s.M,
                (long)s.N, (long)s.K, sec * 1e3, 2.0 * s.M * s.N * s.K / sec / 1e12);
  }
}

}  // namespace
}  // namespace lorart::cpu
