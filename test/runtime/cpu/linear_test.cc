// The linear-family kernels (linear.cc) against double-precision references
// on fresh random inputs: dense and NF4 matmuls (NF4 against dequantize-then-
// dense), bias, LoRA adapters with and without dropout, the LM head, cross-
// entropy (plain and chunked over tokens), embeddings and dequantization.
// Every backward kind is checked against central finite differences of its
// forward kind (dropout included: forward and backward draw the same mask),
// and bad operands and parameters give errors.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "harness.h"
#include "lorart/cpu/gemm.h"
#include "lorart/quant/nf4.h"

namespace lorart::cpu {
namespace {

using testing::FillInts;
using testing::FillUniform;
using testing::FiniteDifferenceError;
using testing::ForEachLevel;
using testing::NormalizedError;
using testing::Owned;
using testing::RunKernel;


// A KernelParams builder.
struct Params {
  KernelParams p;
  Params& I(const char* k, int64_t v) {
    p.Set(k, v);
    return *this;
  }
  Params& F(const char* k, double v) {
    p.Set(k, v);
    return *this;
  }
  Params& S(const char* k, const char* v) {
    p.Set(k, std::string(v));
    return *this;
  }
  operator const KernelParams&() const { return p; }  // NOLINT
};

Params Matmul(int64_t m, int64_t n, int64_t k) {
  Params p;
  p.I("m", m).I("n", n).I("k", k).S("weight_format", "dense");
  return p;
}
Params Nf4Matmul(int64_t m, int64_t n, int64_t k, int64_t bs, int64_t dqb) {
  Params p;
  p.I("m", m)
      .I("n", n)
      .I("k", k)
      .S("weight_format", "nf4")
      .I("block_size", bs)
      .I("double_quant_block", dqb);
  return p;
}
Params& WithAdapter(Params& p, int64_t r, double scaling, double dropout, int64_t stream) {
  return p.I("rank", r).F("scaling", scaling).F("dropout", dropout).I("rng_stream", stream);
}

std::unique_ptr<Owned> Rand(DType t, std::vector<int64_t> shape, std::mt19937_64& rng,
                            float lo = -1.0f, float hi = 1.0f) {
  auto o = std::make_unique<Owned>(t, std::move(shape));
  FillUniform(*o, rng, lo, hi);
  return o;
}
std::unique_ptr<Owned> Zeros(DType t, std::vector<int64_t> shape) {
  return std::make_unique<Owned>(t, std::move(shape));
}

// An NF4 weight quantized from random values (stored as `dense`).
std::unique_ptr<Owned> RandNf4(int64_t n, int64_t k, int64_t bs, int64_t dqb,
                               std::mt19937_64& rng) {
  std::vector<float> dense(static_cast<size_t>(n * k));
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  for (float& v : dense) v = d(rng);
  StatusOr<Nf4Layout> layout = Nf4Layout::Make(n * k, bs, dqb);
  EXPECT_TRUE(layout.ok()) << layout.status().ToString();
  auto w = std::make_unique<Owned>(DType::NF4, std::vector<int64_t>{n, k});
  w->bytes.assign(static_cast<size_t>(layout->total_bytes()) + 64, 0);
  w->view.data = w->bytes.data();
  w->view.nf4.block_size = bs;
  w->view.nf4.double_quant_block = dqb;
  Status s = QuantizeNf4(dense.data(), n * k, *layout, w->bytes.data(), layout->total_bytes());
  EXPECT_TRUE(s.ok()) << s.ToString();
  return w;
}
std::vector<float> Dequant(const Owned& w) {
  const int64_t n = w.view.numel();
  StatusOr<Nf4Layout> layout =
      Nf4Layout::Make(n, w.view.nf4.block_size, w.view.nf4.double_quant_block);
  std::vector<float> out(static_cast<size_t>(n));
  Status s = DequantizeNf4(w.bytes.data(), layout->total_bytes(), *layout, out.data(), n);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

// The dense float values of a weight (dequantized when NF4).
std::vector<float> Values(const Owned& w) {
  return w.view.dtype == DType::NF4 ? Dequant(w) : w.floats();
}

// drop(x) in double-free float arithmetic as the kernels define it.
std::vector<float> Dropped(const std::vector<float>& x, uint64_t seed, uint64_t stream, double p) {
  std::vector<float> out(x);
  if (p <= 0.0) return out;
  const float inv = static_cast<float>(1.0 / (1.0 - p));
  for (size_t i = 0; i < x.size(); ++i)
    out[i] = KeepDropout(seed, stream, i, p) ? x[i] * inv : 0.0f;
  return out;
}

// y[m, n] = x·Wᵀ + bias + s·(xd·Aᵀ)·Bᵀ in double (each term optional).
std::vector<float> RefLinear(int64_t m, int64_t n, int64_t k, const std::vector<float>* x,
                             const std::vector<float>* w, const std::vector<float>* bias,
                             const std::vector<float>* xd = nullptr,
                             const std::vector<float>* a = nullptr,
                             const std::vector<float>* b = nullptr, int64_t r = 0, double s = 0.0) {
  std::vector<float> y(static_cast<size_t>(m * n));
  std::vector<double> u(static_cast<size_t>(r));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t q = 0; q < r; ++q) {
      double acc = 0.0;
      for (int64_t c = 0; c < k; ++c) acc += double((*xd)[i * k + c]) * (*a)[q * k + c];
      u[q] = acc;
    }
    for (int64_t j = 0; j < n; ++j) {
      double acc = bias ? double((*bias)[j]) : 0.0;
      if (w)
        for (int64_t c = 0; c < k; ++c) acc += double((*x)[i * k + c]) * (*w)[j * k + c];
      for (int64_t q = 0; q < r; ++q) acc += s * u[q] * (*b)[j * r + q];
      y[i * n + j] = static_cast<float>(acc);
    }
  }
  return y;
}

std::vector<float> Weights(size_t n, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> w(n);
  for (float& v : w) v = d(rng);
  return w;
}

// Central finite differences of L = Σ out·wts with respect to `x`, where
// `forward` runs the forward kind into `out`.
double Fd(Owned& x, const std::vector<float>& analytic, const std::function<void()>& forward,
          const Owned& out, const std::vector<float>& wts, std::mt19937_64& rng) {
  return FiniteDifferenceError(
      x, analytic,
      [&] {
        forward();
        return out.floats();
      },
      wts, rng, 64, 1e-2);
}

// Copies `w` (floats) into a tensor of `out`'s type/shape.
void SetFloats(Owned& t, const std::vector<float>& v) {
  for (int64_t i = 0; i < t.numel(); ++i) t.set(i, v[static_cast<size_t>(i)]);
}

//===----------------------------------------------------------------------===//
// Registry
//===----------------------------------------------------------------------===//

TEST(LinearTest, EveryKindIsRegistered) {
  for (const char* kind :
       {"linear_fwd", "fused_linear_fwd", "linear_bwd_x", "linear_bwd_w", "bias_bwd", "lora_fwd",
        "lora_bwd", "fused_linear_bwd", "lm_head_fwd", "cross_entropy_fwd", "cross_entropy_bwd",
        "lm_head_ce_fwd", "lm_head_ce_bwd_x", "lm_head_ce_bwd_w", "embedding_fwd", "embedding_bwd",
        "dequantize", "sequence_logprobs_fwd", "sequence_logprobs_bwd", "dpo_loss_fwd",
        "dpo_loss_bwd", "ewc_penalty_fwd", "ewc_penalty_bwd", "replay_loss_fwd",
        "replay_loss_bwd"}) {
    KernelFn fn = nullptr;
    EXPECT_TRUE(LookupKernel(kind, &fn).ok()) << kind;
  }
}

//===----------------------------------------------------------------------===//
// linear_fwd, lm_head_fwd
//===----------------------------------------------------------------------===//

TEST(LinearTest, LinearFwdDenseMatchesReference) {
  std::mt19937_64 rng(1);
  const int64_t m = 13, n = 17, k = 19;
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    for (int bias : {0, 1}) {
      auto x = Rand(dt, {m, k}, rng), w = Rand(dt, {n, k}, rng), b = Rand(dt, {n}, rng);
      auto y = Zeros(dt, {m, n});
      Params p = Matmul(m, n, k);
      p.I("bias", bias);
      std::vector<Owned*> in = {x.get(), w.get()};
      if (bias) in.push_back(b.get());
      ASSERT_TRUE(RunKernel("linear_fwd", p, in, {y.get()}).ok());
      auto xv = x->floats(), wv = w->floats(), bv = b->floats();
      auto want = RefLinear(m, n, k, &xv, &wv, bias ? &bv : nullptr);
      EXPECT_LT(NormalizedError(y->floats(), want), dt == DType::F32 ? 1e-5 : 1e-2)
          << schema::EnumNameDType(dt) << " bias=" << bias;
    }
  }
}

// bf16 output with a bias: the f32 panel path, several panels of columns.
TEST(LinearTest, LinearFwdBf16BiasPanels) {
  std::mt19937_64 rng(2);
  const int64_t m = 4100, n = 1100, k = 3;
  auto x = Rand(DType::BF16, {m, k}, rng), w = Rand(DType::BF16, {n, k}, rng);
  auto b = Rand(DType::BF16, {n}, rng), y = Zeros(DType::BF16, {m, n});
  Params p = Matmul(m, n, k);
  p.I("bias", 1);
  ASSERT_TRUE(RunKernel("linear_fwd", p, {x.get(), w.get(), b.get()}, {y.get()}).ok());
  auto xv = x->floats(), wv = w->floats(), bv = b->floats();
  EXPECT_LT(NormalizedError(y->floats(), RefLinear(m, n, k, &xv, &wv, &bv)), 5e-3);
}

// NF4 against dequantize-then-dense: odd k (rows start mid-byte and blocks
// straddle rows), several row tiles, with and without double quantization,
// f32 and bf16 activations.
TEST(LinearTest, LinearFwdNf4MatchesDequantizedDense) {
  std::mt19937_64 rng(3);
  struct Case {
    int64_t m, n, k, bs, dqb;
  };
  for (Case c : {Case{3, 32768, 33, 64, 256}, Case{5, 64, 96, 32, 0}, Case{4, 24, 8, 64, 2}}) {
    auto w = RandNf4(c.n, c.k, c.bs, c.dqb, rng);
    auto wv = Dequant(*w);
    for (DType dt : {DType::F32, DType::BF16}) {
      auto x = Rand(dt, {c.m, c.k}, rng), y = Zeros(dt, {c.m, c.n});
      Params p = Nf4Matmul(c.m, c.n, c.k, c.bs, c.dqb);
      p.I("bias", 0);
      Status s = RunKernel("linear_fwd", p, {x.get(), w.get()}, {y.get()});
      ASSERT_TRUE(s.ok()) << s.ToString();
      auto xv = x->floats();
      EXPECT_LT(NormalizedError(y->floats(), RefLinear(c.m, c.n, c.k, &xv, &wv, nullptr)),
                dt == DType::F32 ? 1e-5 : 1e-2)
          << c.n << "x" << c.k << " " << schema::EnumNameDType(dt);
    }
  }
}

TEST(LinearTest, LmHeadFwdGivesF32Logits) {
  std::mt19937_64 rng(4);
  const int64_t m = 6, n = 50, k = 16;
  auto x = Rand(DType::BF16, {m, k}, rng), w = Rand(DType::BF16, {n, k}, rng);
  auto y = Zeros(DType::F32, {m, n});
  ASSERT_TRUE(RunKernel("lm_head_fwd", Matmul(m, n, k), {x.get(), w.get()}, {y.get()}).ok());
  auto xv = x->floats(), wv = w->floats();
  EXPECT_LT(NormalizedError(y->floats(), RefLinear(m, n, k, &xv, &wv, nullptr)), 1e-5);
  auto bad = Zeros(DType::BF16, {m, n});
  Status s = RunKernel("lm_head_fwd", Matmul(m, n, k), {x.get(), w.get()}, {bad.get()});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("logits must be F32"), std::string::npos) << s.message();
}

//===----------------------------------------------------------------------===//
// fused_linear_fwd, lora_fwd
//===----------------------------------------------------------------------===//

// Every level (the register tiles from level 2 on, oneDNN below): one
// panel narrower than 16 columns; several panels with a partial last one,
// rows not a multiple of the tile; odd k and r (bf16 tiles then decline).
TEST(LinearTest, FusedLinearFwdMatchesReference) {
  std::mt19937_64 rng(5);
  const int64_t shapes[][4] = {{9, 11, 64, 4}, {37, 70, 128, 8}, {5, 40, 63, 3}};
  const uint64_t seed = 1234, stream = 77;
  ForEachLevel([&] {
    for (const auto& sh : shapes)
      for (bool nf4 : {false, true})
        for (DType dt : {DType::F32, DType::BF16})
          for (double drop : {0.0, 0.25})
            for (int bias : {0, 1}) {
              const int64_t m = sh[0], n = sh[1], k = sh[2], r = sh[3];
              if (nf4 && (n * k) % 64 != 0) continue;
              auto x = Rand(dt, {m, k}, rng);
              auto w = nf4 ? RandNf4(n, k, 64, 256, rng) : Rand(dt, {n, k}, rng);
              auto b = Rand(dt, {n}, rng), A = Rand(dt, {r, k}, rng), B = Rand(dt, {n, r}, rng);
              auto y = Zeros(dt, {m, n});
              Params p = nf4 ? Nf4Matmul(m, n, k, 64, 256) : Matmul(m, n, k);
              p.I("bias", bias);
              WithAdapter(p, r, 2.0, drop, stream);
              std::vector<Owned*> in = {x.get(), w.get()};
              if (bias) in.push_back(b.get());
              in.push_back(A.get());
              in.push_back(B.get());
              Status s = RunKernel("fused_linear_fwd", p, in, {y.get()}, seed);
              ASSERT_TRUE(s.ok()) << s.ToString();
              auto xv = x->floats(), wv = Values(*w), bv = b->floats(), av = A->floats(),
                   Bv = B->floats();
              auto xd = Dropped(xv, seed, stream, drop);
              auto want = RefLinear(m, n, k, &xv, &wv, bias ? &bv : nullptr, &xd, &av, &Bv, r, 2.0);
              EXPECT_LT(NormalizedError(y->floats(), want), dt == DType::F32 ? 1e-5 : 1e-2)
                  << "m=" << m << " n=" << n << " k=" << k << " nf4=" << nf4 << " "
                  << schema::EnumNameDType(dt) << " dropout=" << drop << " bias=" << bias;
            }
  });
}

// fused_linear_bwd against gradients in double at every level: dx through
// the weight and the (dropped-out) adapter, dA and dB.
TEST(LinearTest, FusedLinearBwdMatchesReference) {
  std::mt19937_64 rng(25);
  const int64_t shapes[][4] = {{9, 11, 64, 4}, {37, 70, 96, 8}, {6, 33, 50, 3}};
  const uint64_t seed = 99, stream = 12;
  const double scaling = 1.5;
  ForEachLevel([&] {
    for (const auto& sh : shapes)
      for (bool nf4 : {false, true})
        for (DType dt : {DType::F32, DType::BF16})
          for (double drop : {0.0, 0.3}) {
            const int64_t m = sh[0], n = sh[1], k = sh[2], r = sh[3];
            if (nf4 && (n * k) % 64 != 0) continue;
            auto x = Rand(dt, {m, k}, rng), dy = Rand(dt, {m, n}, rng);
            auto w = nf4 ? RandNf4(n, k, 64, 256, rng) : Rand(dt, {n, k}, rng);
            auto A = Rand(dt, {r, k}, rng), B = Rand(dt, {n, r}, rng);
            auto dx = Zeros(dt, {m, k}), dA = Zeros(DType::F32, {r, k});
            auto dB = Zeros(DType::F32, {n, r});
            Params p = nf4 ? Nf4Matmul(m, n, k, 64, 256) : Matmul(m, n, k);
            WithAdapter(p, r, scaling, drop, stream);
            Status s =
                RunKernel("fused_linear_bwd", p, {dy.get(), x.get(), w.get(), A.get(), B.get()},
                          {dx.get(), dA.get(), dB.get()}, seed);
            ASSERT_TRUE(s.ok()) << s.ToString();
            const auto xv = x->floats(), dyv = dy->floats(), wv = Values(*w), av = A->floats(),
                       bv = B->floats(), xd = Dropped(xv, seed, stream, drop);
            const double inv = drop > 0.0 ? double(static_cast<float>(1.0 / (1.0 - drop))) : 1.0;
            std::vector<double> g(size_t(m * r)), u(size_t(m * r));
            for (int64_t i = 0; i < m; ++i)
              for (int64_t q = 0; q < r; ++q) {
                for (int64_t j = 0; j < n; ++j)
                  g[i * r + q] += double(dyv[i * n + j]) * bv[j * r + q];
                for (int64_t c = 0; c < k; ++c)
                  u[i * r + q] += double(xd[i * k + c]) * av[q * k + c];
              }
            std::vector<float> want_dx(size_t(m * k)), want_da(size_t(r * k)),
                want_db(size_t(n * r));
            for (int64_t i = 0; i < m; ++i)
              for (int64_t c = 0; c < k; ++c) {
                double v = 0.0, t = 0.0;
                for (int64_t j = 0; j < n; ++j) v += double(dyv[i * n + j]) * wv[j * k + c];
                for (int64_t q = 0; q < r; ++q) t += g[i * r + q] * av[q * k + c];
                const bool keep = KeepDropout(seed, stream, uint64_t(i * k + c), drop);
                want_dx[size_t(i * k + c)] = float(v + (keep ? scaling * inv * t : 0.0));
              }
            for (int64_t q = 0; q < r; ++q)
              for (int64_t c = 0; c < k; ++c) {
                double v = 0.0;
                for (int64_t i = 0; i < m; ++i) v += g[i * r + q] * xd[i * k + c];
                want_da[size_t(q * k + c)] = float(scaling * v);
              }
            for (int64_t j = 0; j < n; ++j)
              for (int64_t q = 0; q < r; ++q) {
                double v = 0.0;
                for (int64_t i = 0; i < m; ++i) v += double(dyv[i * n + j]) * u[i * r + q];
                want_db[size_t(j * r + q)] = float(scaling * v);
              }
            const double tol = dt == DType::F32 ? 1e-5 : 1e-2;
            const std::string what = "m=" + std::to_string(m) + " n=" + std::to_string(n) +
                                     " k=" + std::to_string(k) + " nf4=" + std::to_string(nf4) +
                                     " " + schema::EnumNameDType(dt) + " p=" + std::to_string(drop);
            EXPECT_LT(NormalizedError(dx->floats(), want_dx), tol) << "dx " << what;
            EXPECT_LT(NormalizedError(dA->floats(), want_da), tol) << "dA " << what;
            EXPECT_LT(NormalizedError(dB->floats(), want_db), tol) << "dB " << what;
          }
  });
}

// no_dx (the input gradient is not wanted): fused_linear_bwd and lora_bwd
// write only dA and dB, bit for bit the gradients of the full kernel, at
// every level; a bad no_dx or a dx operand with no_dx is refused.
TEST(LinearTest, BackwardWithoutDxGivesTheSameAdapterGradients) {
  std::mt19937_64 rng(27);
  const int64_t shapes[][4] = {{9, 11, 64, 4}, {37, 70, 96, 8}};
  const uint64_t seed = 5, stream = 77;
  ForEachLevel([&] {
    for (const auto& sh : shapes)
      for (bool fused : {true, false})
        for (DType dt : {DType::F32, DType::BF16})
          for (double drop : {0.0, 0.2}) {
            const int64_t m = sh[0], n = sh[1], k = sh[2], r = sh[3];
            const char* kind = fused ? "fused_linear_bwd" : "lora_bwd";
            auto x = Rand(dt, {m, k}, rng), dy = Rand(dt, {m, n}, rng), w = Rand(dt, {n, k}, rng);
            auto A = Rand(dt, {r, k}, rng), B = Rand(dt, {n, r}, rng);
            auto dx = Zeros(dt, {m, k});
            auto dA = Zeros(DType::F32, {r, k}), dB = Zeros(DType::F32, {n, r});
            auto dA2 = Zeros(DType::F32, {r, k}), dB2 = Zeros(DType::F32, {n, r});
            std::vector<Owned*> in = {dy.get(), x.get()};
            if (fused) in.push_back(w.get());
            in.push_back(A.get());
            in.push_back(B.get());
            Params p = Matmul(m, n, k);
            WithAdapter(p, r, 1.25, drop, stream);
            Status s = RunKernel(kind, p, in, {dx.get(), dA.get(), dB.get()}, seed);
            ASSERT_TRUE(s.ok()) << s.ToString();
            p.I("no_dx", 1);
            s = RunKernel(kind, p, in, {dA2.get(), dB2.get()}, seed);
            ASSERT_TRUE(s.ok()) << s.ToString();
            const std::string what = std::string(kind) + " m=" + std::to_string(m) + " " +
                                     schema::EnumNameDType(dt) + " p=" + std::to_string(drop);
            EXPECT_EQ(dA->floats(), dA2->floats()) << what;
            EXPECT_EQ(dB->floats(), dB2->floats()) << what;
            // A dx operand is one output too many with no_dx; no_dx is 0 or 1.
            s = RunKernel(kind, p, in, {dx.get(), dA2.get(), dB2.get()}, seed);
            EXPECT_FALSE(s.ok()) << what;
            p.I("no_dx", 2);
            s = RunKernel(kind, p, in, {dA2.get(), dB2.get()}, seed);
            ASSERT_FALSE(s.ok()) << what;
            EXPECT_NE(s.ToString().find("'no_dx' must be 0 or 1, got 2"), std::string::npos)
                << s.ToString();
          }
  });
}

TEST(LinearTest, FusedLinearFwdWithoutAdapterIsLinear) {
  std::mt19937_64 rng(6);
  const int64_t m = 4, n = 5, k = 6;
  auto x = Rand(DType::F32, {m, k}, rng), w = Rand(DType::F32, {n, k}, rng);
  auto y = Zeros(DType::F32, {m, n});
  Params p = Matmul(m, n, k);
  p.I("bias", 0).I("rank", 0);
  ASSERT_TRUE(RunKernel("fused_linear_fwd", p, {x.get(), w.get()}, {y.get()}).ok());
  auto xv = x->floats(), wv = w->floats();
  EXPECT_LT(NormalizedError(y->floats(), RefLinear(m, n, k, &xv, &wv, nullptr)), 1e-5);
}

TEST(LinearTest, LoraFwdMatchesReference) {
  std::mt19937_64 rng(7);
  const int64_t m = 10, n = 12, k = 14, r = 3;
  for (DType dt : {DType::F32, DType::BF16})
    for (double drop : {0.0, 0.5}) {
      auto x = Rand(dt, {m, k}, rng), A = Rand(dt, {r, k}, rng), B = Rand(dt, {n, r}, rng);
      auto y = Zeros(dt, {m, n});
      Params p;
      p.I("m", m).I("n", n).I("k", k);
      WithAdapter(p, r, 0.5, drop, 9);
      ASSERT_TRUE(RunKernel("lora_fwd", p, {x.get(), A.get(), B.get()}, {y.get()}, 42).ok());
      auto xv = x->floats(), av = A->floats(), bv = B->floats();
      auto xd = Dropped(xv, 42, 9, drop);
      auto want = RefLinear(m, n, k, nullptr, nullptr, nullptr, &xd, &av, &bv, r, 0.5);
      EXPECT_LT(NormalizedError(y->floats(), want), dt == DType::F32 ? 1e-5 : 1e-2)
          << schema::EnumNameDType(dt) << " dropout=" << drop;
    }
}

// Dropout masks depend on the step seed and the stream, and about p of the
// elements are dropped.
TEST(LinearTest, DropoutMaskDependsOnSeedAndStream) {
  std::mt19937_64 rng(8);
  const int64_t m = 64, n = 1, k = 64, r = 1;
  auto x = Rand(DType::F32, {m, k}, rng, 0.5f, 1.0f);
  auto A = Zeros(DType::F32, {r, k}), B = Zeros(DType::F32, {n, r});
  for (int64_t i = 0; i < k; ++i) A->set(i, 1.0f);
  B->set(0, 1.0f);
  auto run = [&](uint64_t seed, int64_t stream) {
    auto y = Zeros(DType::F32, {m, n});
    Params p;
    p.I("m", m).I("n", n).I("k", k);
    WithAdapter(p, r, 1.0, 0.3, stream);
    EXPECT_TRUE(RunKernel("lora_fwd", p, {x.get(), A.get(), B.get()}, {y.get()}, seed).ok());
    return y->floats();
  };
  EXPECT_EQ(run(1, 5), run(1, 5));
  EXPECT_NE(run(1, 5), run(2, 5));
  EXPECT_NE(run(1, 5), run(1, 6));
  int dropped = 0;
  for (int64_t i = 0; i < m * k; ++i) dropped += !KeepDropout(1, 5, i, 0.3);
  EXPECT_NEAR(dropped / double(m * k), 0.3, 0.03);
}

TEST(LinearTest, DropoutMasksAreKeepDropoutManyAtATime) {
  // The vectorized mask the kernels draw equals the per-element rule (which
  // the CUDA kernels share) for any seed, stream, start and probability,
  // including probabilities whose p·2^53 is not an integer and the edges.
  std::mt19937_64 rng(77);
  const double probs[] = {
      0.05, 0.1, 0.3, 0.5, 0.999999, 1e-17, 0x1.0p-53, 0x1.8p-53, std::nextafter(1.0, 0.0), 0.0};
  std::vector<uint8_t> keep(1037);
  for (double p : probs)
    for (int trial = 0; trial < 4; ++trial) {
      const uint64_t seed = rng(), stream = rng() % 1000, first = rng() >> 20;
      DropoutKeepMask(seed, stream, first, static_cast<int64_t>(keep.size()), p, keep.data());
      for (size_t i = 0; i < keep.size(); ++i)
        ASSERT_EQ(keep[i] != 0, KeepDropout(seed, stream, first + i, p))
            << "p=" << p << " element " << i;
    }
  // ApplyKeepMask (in place) and ApplyKeepMaskTo (from a copy) with the mask
  // DropoutKeepMask drew: kept values times the f32 factor, dropped ones zero
  // even when not finite.
  std::vector<float> values(keep.size()), before;
  for (double p : probs) {
    const uint64_t seed = rng(), stream = rng() % 1000, first = rng() >> 20;
    for (float& v : values) v = static_cast<float>(static_cast<int64_t>(rng() % 2001) - 1000) / 7;
    values[3] = std::numeric_limits<float>::infinity();
    values[5] = std::numeric_limits<float>::quiet_NaN();
    before = values;
    const float inv = p > 0.0 ? static_cast<float>(1.0 / (1.0 - p)) : 1.0f;
    DropoutKeepMask(seed, stream, first, static_cast<int64_t>(keep.size()), p, keep.data());
    ApplyKeepMask(keep.data(), static_cast<int64_t>(keep.size()), inv, values.data());
    std::vector<float> copied(values.size(), 1.0f);
    ApplyKeepMaskTo(keep.data(), static_cast<int64_t>(keep.size()), inv, before.data(),
                    copied.data());
    for (size_t i = 0; i < values.size(); ++i) {
      const float want = KeepDropout(seed, stream, first + i, p) ? before[i] * inv : 0.0f;
      if (std::isnan(want)) {
        ASSERT_TRUE(std::isnan(values[i])) << "p=" << p << " element " << i;
        ASSERT_TRUE(std::isnan(copied[i])) << "p=" << p << " element " << i;
      } else {
        ASSERT_EQ(values[i], want) << "p=" << p << " element " << i;
        ASSERT_EQ(copied[i], want) << "p=" << p << " element " << i;
      }
    }
  }
  // Probabilities next to a hash value: the comparison is exact at the edge.
  for (int trial = 0; trial < 64; ++trial) {
    const uint64_t seed = rng(), stream = rng() % 7, index = rng() >> 8;
    const uint64_t h = DropoutHash(seed, stream, index) >> 11;
    for (uint64_t t : {h, h + 1, h > 0 ? h - 1 : 0}) {
      const double p = static_cast<double>(t) * 0x1.0p-53;
      uint8_t one = 0;
      DropoutKeepMask(seed, stream, index, 1, p, &one);
      EXPECT_EQ(one != 0, KeepDropout(seed, stream, index, p)) << "h=" << h << " t=" << t;
    }
  }
}

//===----------------------------------------------------------------------===//
// Backward kinds against finite differences
//===----------------------------------------------------------------------===//

TEST(LinearTest, LinearBwdXMatchesFiniteDifferences) {
  std::mt19937_64 rng(10);
  const int64_t m = 5, n = 7, k = 64;
  for (bool nf4 : {false, true}) {
    auto x = Rand(DType::F32, {m, k}, rng);
    auto w = nf4 ? RandNf4(n, k, 32, 2, rng) : Rand(DType::F32, {n, k}, rng);
    Params p = nf4 ? Nf4Matmul(m, n, k, 32, 2) : Matmul(m, n, k);
    p.I("bias", 0);
    auto y = Zeros(DType::F32, {m, n}), dy = Zeros(DType::F32, {m, n});
    auto dx = Zeros(DType::F32, {m, k});
    auto wts = Weights(m * n, rng);
    SetFloats(*dy, wts);
    ASSERT_TRUE(RunKernel("linear_bwd_x", p, {dy.get(), w.get()}, {dx.get()}).ok());
    double err = Fd(
        *x, dx->floats(),
        [&] {
          ASSERT_TRUE(RunKernel("linear_fwd", p, {x.get(), w.get()}, {y.get()}).ok());
        },
        *y, wts, rng);
    EXPECT_LT(err, 1e-2) << "nf4=" << nf4;
  }
}

// dy in f32 with a bf16 weight (the LM head's gradient), and NF4 weights
// with several column tiles and odd k, against the dense reference.
TEST(LinearTest, LinearBwdXMixedTypesAndNf4Tiles) {
  std::mt19937_64 rng(11);
  {
    const int64_t m = 6, n = 40, k = 24;
    auto dy = Rand(DType::F32, {m, n}, rng), w = Rand(DType::BF16, {n, k}, rng);
    auto dx = Zeros(DType::BF16, {m, k});
    ASSERT_TRUE(RunKernel("linear_bwd_x", Matmul(m, n, k), {dy.get(), w.get()}, {dx.get()}).ok());
    auto dyv = dy->floats(), wv = w->floats();
    std::vector<float> want(m * k);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t c = 0; c < k; ++c) {
        double acc = 0;
        for (int64_t j = 0; j < n; ++j) acc += double(dyv[i * n + j]) * wv[j * k + c];
        want[i * k + c] = float(acc);
      }
    EXPECT_LT(NormalizedError(dx->floats(), want), 1e-2);
  }
  {
    const int64_t m = 3, n = 32768, k = 33;  // column tiles of 32 + 1
    auto w = RandNf4(n, k, 64, 256, rng);
    auto wv = Dequant(*w);
    for (DType dt : {DType::F32, DType::BF16}) {
      auto dy = Rand(dt, {m, n}, rng), dx = Zeros(dt, {m, k});
      Status s =
          RunKernel("linear_bwd_x", Nf4Matmul(m, n, k, 64, 256), {dy.get(), w.get()}, {dx.get()});
      ASSERT_TRUE(s.ok()) << s.ToString();
      auto dyv = dy->floats();
      std::vector<float> want(m * k);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t c = 0; c < k; ++c) {
          double acc = 0;
          for (int64_t j = 0; j < n; ++j) acc += double(dyv[i * n + j]) * wv[j * k + c];
          want[i * k + c] = float(acc);
        }
      EXPECT_LT(NormalizedError(dx->floats(), want), dt == DType::F32 ? 1e-5 : 1e-2)
          << schema::EnumNameDType(dt);
    }
  }
}

TEST(LinearTest, LinearBwdWAndBiasBwdMatchFiniteDifferences) {
  std::mt19937_64 rng(12);
  const int64_t m = 6, n = 5, k = 7;
  auto x = Rand(DType::F32, {m, k}, rng), w = Rand(DType::F32, {n, k}, rng);
  auto b = Rand(DType::F32, {n}, rng), y = Zeros(DType::F32, {m, n});
  auto dy = Zeros(DType::F32, {m, n}), dw = Zeros(DType::F32, {n, k}), db = Zeros(DType::F32, {n});
  auto wts = Weights(m * n, rng);
  SetFloats(*dy, wts);
  Params p = Matmul(m, n, k);
  p.I("bias", 1);
  ASSERT_TRUE(RunKernel("linear_bwd_w", Matmul(m, n, k), {dy.get(), x.get()}, {dw.get()}).ok());
  Params pb;
  pb.I("rows", m).I("n", n);
  ASSERT_TRUE(RunKernel("bias_bwd", pb, {dy.get()}, {db.get()}).ok());
  auto fwd = [&] {
    ASSERT_TRUE(RunKernel("linear_fwd", p, {x.get(), w.get(), b.get()}, {y.get()}).ok());
  };
  EXPECT_LT(Fd(*w, dw->floats(), fwd, *y, wts, rng), 1e-2);
  EXPECT_LT(Fd(*b, db->floats(), fwd, *y, wts, rng), 1e-2);
}

TEST(LinearTest, BiasBwdBf16ManyColumns) {
  std::mt19937_64 rng(13);
  const int64_t rows = 37, n = 600;
  auto dy = Rand(DType::BF16, {rows, n}, rng), db = Zeros(DType::BF16, {n});
  Params p;
  p.I("rows", rows).I("n", n);
  ASSERT_TRUE(RunKernel("bias_bwd", p, {dy.get()}, {db.get()}).ok());
  auto v = dy->floats();
  std::vector<float> want(n);
  for (int64_t j = 0; j < n; ++j) {
    double acc = 0;
    for (int64_t i = 0; i < rows; ++i) acc += v[i * n + j];
    want[j] = float(acc);
  }
  EXPECT_LT(NormalizedError(db->floats(), want), 1e-2);
}

// lora_bwd's dx, dA, dB against finite differences of lora_fwd.
TEST(LinearTest, LoraBwdMatchesFiniteDifferences) {
  std::mt19937_64 rng(14);
  const int64_t m = 6, n = 5, k = 8, r = 3;
  const uint64_t seed = 99;
  for (double drop : {0.0, 0.3}) {
    auto x = Rand(DType::F32, {m, k}, rng), A = Rand(DType::F32, {r, k}, rng);
    auto B = Rand(DType::F32, {n, r}, rng), y = Zeros(DType::F32, {m, n});
    auto dy = Zeros(DType::F32, {m, n}), dx = Zeros(DType::F32, {m, k});
    auto dA = Zeros(DType::F32, {r, k}), dB = Zeros(DType::F32, {n, r});
    auto wts = Weights(m * n, rng);
    SetFloats(*dy, wts);
    Params p;
    p.I("m", m).I("n", n).I("k", k);
    WithAdapter(p, r, 1.5, drop, 31);
    Status s = RunKernel("lora_bwd", p, {dy.get(), x.get(), A.get(), B.get()},
                         {dx.get(), dA.get(), dB.get()}, seed);
    ASSERT_TRUE(s.ok()) << s.ToString();
    auto fwd = [&] {
      ASSERT_TRUE(RunKernel("lora_fwd", p, {x.get(), A.get(), B.get()}, {y.get()}, seed).ok());
    };
    EXPECT_LT(Fd(*x, dx->floats(), fwd, *y, wts, rng), 1e-2) << "dropout=" << drop;
    EXPECT_LT(Fd(*A, dA->floats(), fwd, *y, wts, rng), 1e-2) << "dropout=" << drop;
    EXPECT_LT(Fd(*B, dB->floats(), fwd, *y, wts, rng), 1e-2) << "dropout=" << drop;
  }
}

// fused_linear_bwd against finite differences of fused_linear_fwd: dense
// and NF4 weights (the NF4 input-gradient path), with dropout.
TEST(LinearTest, FusedLinearBwdMatchesFiniteDifferences) {
  std::mt19937_64 rng(15);
  const int64_t m = 5, n = 6, k = 64, r = 2;
  const uint64_t seed = 7;
  for (bool nf4 : {false, true})
    for (double drop : {0.0, 0.2}) {
      auto x = Rand(DType::F32, {m, k}, rng);
      auto w = nf4 ? RandNf4(n, k, 64, 4, rng) : Rand(DType::F32, {n, k}, rng);
      auto A = Rand(DType::F32, {r, k}, rng), B = Rand(DType::F32, {n, r}, rng);
      auto y = Zeros(DType::F32, {m, n}), dy = Zeros(DType::F32, {m, n});
      auto dx = Zeros(DType::F32, {m, k}), dA = Zeros(DType::F32, {r, k});
      auto dB = Zeros(DType::F32, {n, r});
      auto wts = Weights(m * n, rng);
      SetFloats(*dy, wts);
      Params p = nf4 ? Nf4Matmul(m, n, k, 64, 4) : Matmul(m, n, k);
      WithAdapter(p, r, 4.0, drop, 1001);
      Status s = RunKernel("fused_linear_bwd", p, {dy.get(), x.get(), w.get(), A.get(), B.get()},
                           {dx.get(), dA.get(), dB.get()}, seed);
      ASSERT_TRUE(s.ok()) << s.ToString();
      Params pf = p;
      pf.I("bias", 0);
      auto fwd = [&] {
        ASSERT_TRUE(
            RunKernel("fused_linear_fwd", pf, {x.get(), w.get(), A.get(), B.get()}, {y.get()}, seed)
                .ok());
      };
      EXPECT_LT(Fd(*x, dx->floats(), fwd, *y, wts, rng), 1e-2) << "nf4=" << nf4 << " p=" << drop;
      EXPECT_LT(Fd(*A, dA->floats(), fwd, *y, wts, rng), 1e-2) << "nf4=" << nf4 << " p=" << drop;
      EXPECT_LT(Fd(*B, dB->floats(), fwd, *y, wts, rng), 1e-2) << "nf4=" << nf4 << " p=" << drop;
    }
}

// bf16 activations and gradients (the f32 panel epilogue), against the
// same kernel on f32 copies of the values.
TEST(LinearTest, FusedLinearBwdBf16MatchesF32) {
  std::mt19937_64 rng(16);
  const int64_t m = 33, n = 20, k = 128, r = 4;
  for (double drop : {0.0, 0.1}) {
    auto x = Rand(DType::BF16, {m, k}, rng), w = RandNf4(n, k, 64, 256, rng);
    auto A = Rand(DType::BF16, {r, k}, rng), B = Rand(DType::BF16, {n, r}, rng);
    auto dy = Rand(DType::BF16, {m, n}, rng);
    Params p = Nf4Matmul(m, n, k, 64, 256);
    WithAdapter(p, r, 2.0, drop, 5);
    std::vector<std::vector<float>> got[2];
    for (DType dt : {DType::BF16, DType::F32}) {
      auto cast = [&](const Owned& t) {
        auto c = Zeros(dt, t.view.shape);
        SetFloats(*c, t.floats());
        return c;
      };
      auto xc = cast(*x), Ac = cast(*A), Bc = cast(*B), dyc = cast(*dy);
      auto dx = Zeros(dt, {m, k}), dA = Zeros(dt, {r, k}), dB = Zeros(dt, {n, r});
      Status s =
          RunKernel("fused_linear_bwd", p, {dyc.get(), xc.get(), w.get(), Ac.get(), Bc.get()},
                    {dx.get(), dA.get(), dB.get()}, 3);
      ASSERT_TRUE(s.ok()) << s.ToString();
      got[dt == DType::F32] = {dx->floats(), dA->floats(), dB->floats()};
    }
    for (int i = 0; i < 3; ++i)
      EXPECT_LT(NormalizedError(got[0][i], got[1][i]), 2e-2) << "output " << i << " p=" << drop;
  }
}

//===----------------------------------------------------------------------===//
// Cross-entropy and the chunked LM head
//===----------------------------------------------------------------------===//

struct LossInputs {
  std::unique_ptr<Owned> targets, mask;
};
LossInputs RandTargets(int64_t t, int64_t vocab, std::mt19937_64& rng, DType idx = DType::I32) {
  LossInputs li;
  li.targets = Zeros(idx, {t});
  FillInts(*li.targets, rng, 0, vocab);
  li.mask = Zeros(DType::BOOL, {t});
  for (int64_t i = 0; i < t; ++i) li.mask->view.as<uint8_t>()[i] = (i % 3) != 1;
  return li;
}

double RefLoss(const std::vector<float>& logits, const Owned& targets, const Owned& mask, int64_t t,
               int64_t v, int64_t* count) {
  double sum = 0;
  *count = 0;
  for (int64_t i = 0; i < t; ++i) {
    if (!mask.view.as<uint8_t>()[i]) continue;
    ++*count;
    double mx = -1e300, s = 0;
    for (int64_t j = 0; j < v; ++j) mx = std::max(mx, double(logits[i * v + j]));
    for (int64_t j = 0; j < v; ++j) s += std::exp(double(logits[i * v + j]) - mx);
    const int64_t tg = targets.view.dtype == DType::I64 ? targets.view.as<int64_t>()[i]
                                                        : targets.view.as<int32_t>()[i];
    sum += mx + std::log(s) - logits[i * v + tg];
  }
  return sum;
}

Params CeParams(int64_t t, int64_t v) {
  Params p;
  p.I("tokens", t).I("vocab", v);
  return p;
}

TEST(LinearTest, CrossEntropyFwdMatchesReference) {
  std::mt19937_64 rng(20);
  const int64_t t = 9, v = 1000;
  for (DType idx : {DType::I32, DType::I64}) {
    auto logits = Rand(DType::F32, {t, v}, rng, -8.0f, 8.0f);
    auto li = RandTargets(t, v, rng, idx);
    auto loss = Zeros(DType::F32, {}), count = Zeros(DType::I64, {});
    ASSERT_TRUE(RunKernel("cross_entropy_fwd", CeParams(t, v),
                          {logits.get(), li.targets.get(), li.mask.get()},
                          {loss.get(), count.get()})
                    .ok());
    int64_t want_count;
    double want = RefLoss(logits->floats(), *li.targets, *li.mask, t, v, &want_count);
    EXPECT_NEAR(loss->get(0), want, 1e-5 * std::fabs(want));
    EXPECT_EQ(count->view.as<int64_t>()[0], want_count);
  }
}

TEST(LinearTest, CrossEntropyTargetsOutOfRange) {
  std::mt19937_64 rng(21);
  const int64_t t = 4, v = 10;
  auto logits = Rand(DType::F32, {t, v}, rng);
  auto li = RandTargets(t, v, rng);  // position 1 is masked out
  auto loss = Zeros(DType::F32, {}), count = Zeros(DType::I64, {});
  li.targets->view.as<int32_t>()[1] = -100;  // ignored: masked out
  EXPECT_TRUE(RunKernel("cross_entropy_fwd", CeParams(t, v),
                        {logits.get(), li.targets.get(), li.mask.get()}, {loss.get(), count.get()})
                  .ok());
  li.targets->view.as<int32_t>()[2] = 10;
  Status s = RunKernel("cross_entropy_fwd", CeParams(t, v),
                       {logits.get(), li.targets.get(), li.mask.get()}, {loss.get(), count.get()});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("target 10 at position 2"), std::string::npos) << s.message();
  auto dloss = Zeros(DType::F32, {});
  auto dl = Zeros(DType::F32, {t, v});
  s = RunKernel("cross_entropy_bwd", CeParams(t, v),
                {logits.get(), li.targets.get(), li.mask.get(), dloss.get()}, {dl.get()});
  EXPECT_NE(s.message().find("position 2"), std::string::npos) << s.message();
}

// -inf logits (a masked vocabulary) contribute nothing; a NaN logit makes
// its row's loss and gradient NaN.
TEST(LinearTest, CrossEntropyNonFiniteLogits) {
  const int64_t t = 2, v = 40;
  std::mt19937_64 rng(26);
  auto logits = Rand(DType::F32, {t, v}, rng);
  auto targets = Zeros(DType::I32, {t}), mask = Zeros(DType::BOOL, {t});
  targets->view.as<int32_t>()[0] = 3;
  targets->view.as<int32_t>()[1] = 5;
  mask->view.as<uint8_t>()[0] = 1;
  for (int64_t j = 10; j < v; ++j) logits->set(j, -INFINITY);
  auto loss = Zeros(DType::F32, {}), count = Zeros(DType::I64, {});
  ASSERT_TRUE(RunKernel("cross_entropy_fwd", CeParams(t, v),
                        {logits.get(), targets.get(), mask.get()}, {loss.get(), count.get()})
                  .ok());
  double mx = -1e300, sum = 0;
  for (int64_t j = 0; j < 10; ++j) mx = std::max(mx, double(logits->get(j)));
  for (int64_t j = 0; j < 10; ++j) sum += std::exp(logits->get(j) - mx);
  EXPECT_NEAR(loss->get(0), mx + std::log(sum) - logits->get(3), 1e-5);
  auto dloss = Zeros(DType::F32, {});
  dloss->set(0, 1.0f);
  auto dl = Zeros(DType::F32, {t, v});
  ASSERT_TRUE(RunKernel("cross_entropy_bwd", CeParams(t, v),
                        {logits.get(), targets.get(), mask.get(), dloss.get()}, {dl.get()})
                  .ok());
  for (int64_t j = 10; j < v; ++j) EXPECT_LT(std::fabs(dl->get(j)), 1e-30f);
  logits->set(7, NAN);
  ASSERT_TRUE(RunKernel("cross_entropy_fwd", CeParams(t, v),
                        {logits.get(), targets.get(), mask.get()}, {loss.get(), count.get()})
                  .ok());
  EXPECT_TRUE(std::isnan(loss->get(0)));
  ASSERT_TRUE(RunKernel("cross_entropy_bwd", CeParams(t, v),
                        {logits.get(), targets.get(), mask.get(), dloss.get()}, {dl.get()})
                  .ok());
  EXPECT_TRUE(std::isnan(dl->get(0)));
  EXPECT_EQ(dl->get(v), 0.0f);  // the masked-out row
}

TEST(LinearTest, CrossEntropyBwdMatchesFiniteDifferences) {
  std::mt19937_64 rng(22);
  const int64_t t = 5, v = 12;
  auto logits = Rand(DType::F32, {t, v}, rng, -2.0f, 2.0f);
  auto li = RandTargets(t, v, rng);
  auto dloss = Zeros(DType::F32, {});
  dloss->set(0, 0.7f);
  auto dl = Zeros(DType::F32, {t, v});
  ASSERT_TRUE(RunKernel("cross_entropy_bwd", CeParams(t, v),
                        {logits.get(), li.targets.get(), li.mask.get(), dloss.get()}, {dl.get()})
                  .ok());
  auto loss = Zeros(DType::F32, {}), count = Zeros(DType::I64, {});
  auto fwd = [&] {
    ASSERT_TRUE(RunKernel("cross_entropy_fwd", CeParams(t, v),
                          {logits.get(), li.targets.get(), li.mask.get()},
                          {loss.get(), count.get()})
                    .ok());
  };
  EXPECT_LT(Fd(*logits, dl->floats(), fwd, *loss, {0.7f}, rng), 1e-2);
  // Masked-out rows have zero gradient.
  for (int64_t j = 0; j < v; ++j) EXPECT_EQ(dl->get(1 * v + j), 0.0f);
}

Params LmCeParams(int64_t t, int64_t d, int64_t v, int64_t chunk) {
  Params p;
  p.I("tokens", t).I("hidden", d).I("vocab", v).I("chunk_size", chunk);
  return p;
}

// lm_head_ce_fwd equals lm_head_fwd + cross_entropy_fwd, for every chunk size.
TEST(LinearTest, LmHeadCeFwdChunkedEqualsUnchunked) {
  std::mt19937_64 rng(23);
  const int64_t t = 10, d = 16, v = 300;
  for (DType dt : {DType::F32, DType::BF16}) {
    auto x = Rand(dt, {t, d}, rng), w = Rand(dt, {v, d}, rng);
    auto li = RandTargets(t, v, rng);
    auto logits = Zeros(DType::F32, {t, v});
    ASSERT_TRUE(RunKernel("lm_head_fwd", Matmul(t, v, d), {x.get(), w.get()}, {logits.get()}).ok());
    auto l0 = Zeros(DType::F32, {}), c0 = Zeros(DType::I64, {});
    ASSERT_TRUE(RunKernel("cross_entropy_fwd", CeParams(t, v),
                          {logits.get(), li.targets.get(), li.mask.get()}, {l0.get(), c0.get()})
                    .ok());
    for (int64_t chunk : {int64_t{1}, int64_t{3}, t}) {
      auto l = Zeros(DType::F32, {}), c = Zeros(DType::I64, {});
      ASSERT_TRUE(RunKernel("lm_head_ce_fwd", LmCeParams(t, d, v, chunk),
                            {x.get(), w.get(), li.targets.get(), li.mask.get()}, {l.get(), c.get()})
                      .ok());
      EXPECT_NEAR(l->get(0), l0->get(0), 1e-5 * std::fabs(l0->get(0))) << "chunk " << chunk;
      EXPECT_EQ(c->view.as<int64_t>()[0], c0->view.as<int64_t>()[0]);
    }
  }
}

// lm_head_ce_fwd_bwd_x (lora-fuse-lm-head-loss) gives exactly what
// lm_head_ce_fwd and lm_head_ce_bwd_x give, for every chunk size, with
// masked-out tokens (dx rows zero) and in f32 and bf16; a bad dloss is an error.
TEST(LinearTest, LmHeadCeFwdBwdXIsTheForwardAndTheInputGradient) {
  std::mt19937_64 rng(26);
  const int64_t t = 11, d = 16, v = 300;
  ForEachLevel([&] {
    for (DType dt : {DType::F32, DType::BF16}) {
      auto x = Rand(dt, {t, d}, rng), w = Rand(dt, {v, d}, rng);
      auto li = RandTargets(t, v, rng);
      auto dloss = Zeros(DType::F32, {});
      dloss->set(0, 0.75f);
      for (int64_t chunk : {int64_t{1}, int64_t{4}, t}) {
        Params p = LmCeParams(t, d, v, chunk);
        auto l0 = Zeros(DType::F32, {}), c0 = Zeros(DType::I64, {}), dx0 = Zeros(dt, {t, d});
        ASSERT_TRUE(RunKernel("lm_head_ce_fwd", p,
                              {x.get(), w.get(), li.targets.get(), li.mask.get()},
                              {l0.get(), c0.get()})
                        .ok());
        ASSERT_TRUE(RunKernel("lm_head_ce_bwd_x", p,
                              {x.get(), w.get(), li.targets.get(), li.mask.get(), dloss.get()},
                              {dx0.get()})
                        .ok());
        Params pf = p;
        pf.F("dloss", 0.75);
        auto l = Zeros(DType::F32, {}), c = Zeros(DType::I64, {}), dx = Zeros(dt, {t, d});
        Status s = RunKernel("lm_head_ce_fwd_bwd_x", pf,
                             {x.get(), w.get(), li.targets.get(), li.mask.get()},
                             {l.get(), c.get(), dx.get()});
        ASSERT_TRUE(s.ok()) << s.ToString();
        EXPECT_EQ(l->get(0), l0->get(0)) << "chunk " << chunk;
        EXPECT_EQ(c->view.as<int64_t>()[0], c0->view.as<int64_t>()[0]);
        EXPECT_EQ(dx->bytes, dx0->bytes) << "chunk " << chunk;
      }
      Params bad = LmCeParams(t, d, v, 4);
      bad.F("dloss", std::numeric_limits<double>::infinity());
      auto l = Zeros(DType::F32, {}), c = Zeros(DType::I64, {}), dx = Zeros(dt, {t, d});
      Status s = RunKernel("lm_head_ce_fwd_bwd_x", bad,
                           {x.get(), w.get(), li.targets.get(), li.mask.get()},
                           {l.get(), c.get(), dx.get()});
      EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
      EXPECT_NE(s.message().find("dloss"), std::string::npos) << s.message();
    }
  });
}

TEST(LinearTest, LmHeadCeBwdMatchesFiniteDifferencesForEveryChunk) {
  std::mt19937_64 rng(24);
  const int64_t t = 7, d = 6, v = 20;
  auto x = Rand(DType::F32, {t, d}, rng), w = Rand(DType::F32, {v, d}, rng);
  auto li = RandTargets(t, v, rng);
  auto dloss = Zeros(DType::F32, {});
  dloss->set(0, 1.3f);
  std::vector<float> dx_first, dw_first;
  for (int64_t chunk : {int64_t{1}, int64_t{3}, t}) {
    Params p = LmCeParams(t, d, v, chunk);
    std::vector<Owned*> in = {x.get(), w.get(), li.targets.get(), li.mask.get(), dloss.get()};
    auto dx = Zeros(DType::F32, {t, d}), dw = Zeros(DType::F32, {v, d});
    ASSERT_TRUE(RunKernel("lm_head_ce_bwd_x", p, in, {dx.get()}).ok());
    ASSERT_TRUE(RunKernel("lm_head_ce_bwd_w", p, in, {dw.get()}).ok());
    auto loss = Zeros(DType::F32, {}), count = Zeros(DType::I64, {});
    auto fwd = [&] {
      ASSERT_TRUE(RunKernel("lm_head_ce_fwd", p,
                            {x.get(), w.get(), li.targets.get(), li.mask.get()},
                            {loss.get(), count.get()})
                      .ok());
    };
    EXPECT_LT(Fd(*x, dx->floats(), fwd, *loss, {1.3f}, rng), 1e-2) << "chunk " << chunk;
    EXPECT_LT(Fd(*w, dw->floats(), fwd, *loss, {1.3f}, rng), 1e-2) << "chunk " << chunk;
    // Masked-out tokens get no input gradient.
    for (int64_t j = 0; j < d; ++j) EXPECT_EQ(dx->get(1 * d + j), 0.0f);
    if (dx_first.empty()) {
      dx_first = dx->floats();
      dw_first = dw->floats();
    } else {
      EXPECT_LT(NormalizedError(dx->floats(), dx_first), 1e-5) << "chunk " << chunk;
      EXPECT_LT(NormalizedError(dw->floats(), dw_first), 1e-5) << "chunk " << chunk;
    }
  }
}

// A bf16 weight gradient is accumulated in f32 over tiles of the vocabulary
// (two tiles here) and agrees with the f32 gradient; bf16 activations too.
TEST(LinearTest, LmHeadCeBwdWBf16VocabularyTiles) {
  std::mt19937_64 rng(25);
  const int64_t t = 5, d = 1024, v = 5000;
  auto x = Rand(DType::BF16, {t, d}, rng), w = Rand(DType::BF16, {v, d}, rng, -0.05f, 0.05f);
  auto li = RandTargets(t, v, rng);
  auto dloss = Zeros(DType::F32, {});
  dloss->set(0, 1.0f);
  std::vector<Owned*> in = {x.get(), w.get(), li.targets.get(), li.mask.get(), dloss.get()};
  auto dw16 = Zeros(DType::BF16, {v, d}), dw32 = Zeros(DType::F32, {v, d});
  ASSERT_TRUE(RunKernel("lm_head_ce_bwd_w", LmCeParams(t, d, v, 2), in, {dw16.get()}).ok());
  ASSERT_TRUE(RunKernel("lm_head_ce_bwd_w", LmCeParams(t, d, v, 4), in, {dw32.get()}).ok());
  EXPECT_LT(NormalizedError(dw16->floats(), dw32->floats()), 1e-2);
  // Double-precision reference on a few vocabulary rows (both tiles, the
  // tile edge and the targets) and columns: dw[j] = Σ_i dlogits[i, j]·x[i].
  auto logits = Zeros(DType::F32, {t, v});
  ASSERT_TRUE(RunKernel("lm_head_fwd", Matmul(t, v, d), {x.get(), w.get()}, {logits.get()}).ok());
  auto lv = logits->floats(), xv = x->floats(), got = dw16->floats();
  const uint8_t* mk = li.mask->view.as<uint8_t>();
  const int32_t* tg = li.targets->view.as<int32_t>();
  std::vector<double> lse(t);
  for (int64_t i = 0; i < t; ++i) {
    double mx = -1e300, s = 0;
    for (int64_t q = 0; q < v; ++q) mx = std::max(mx, double(lv[i * v + q]));
    for (int64_t q = 0; q < v; ++q) s += std::exp(lv[i * v + q] - mx);
    lse[i] = mx + std::log(s);
  }
  std::vector<int64_t> rows = {0, 4095, 4096, v - 1};
  for (int64_t i = 0; i < t; ++i)
    if (mk[i]) rows.push_back(tg[i]);
  double scale = 0, err = 0;
  for (int64_t j : rows)
    for (int64_t c = 0; c < 8; ++c) {
      double acc = 0;
      for (int64_t i = 0; i < t; ++i)
        if (mk[i]) acc += (std::exp(lv[i * v + j] - lse[i]) - (tg[i] == j)) * xv[i * d + c];
      scale = std::max(scale, std::fabs(acc));
      err = std::max(err, std::fabs(acc - got[j * d + c]));
    }
  EXPECT_LT(err / scale, 1e-2);
}

//===----------------------------------------------------------------------===//
// Embedding, dequantize
//===----------------------------------------------------------------------===//

TEST(LinearTest, EmbeddingFwdGathersRows) {
  std::mt19937_64 rng(30);
  const int64_t t = 11, d = 9, v = 7;
  for (DType idx : {DType::I32, DType::I64}) {
    auto table = Rand(DType::BF16, {v, d}, rng), ids = Zeros(idx, {t});
    FillInts(*ids, rng, 0, v);
    auto y = Zeros(DType::BF16, {t, d});
    Params p;
    p.I("tokens", t).I("hidden", d).I("vocab", v);
    ASSERT_TRUE(RunKernel("embedding_fwd", p, {table.get(), ids.get()}, {y.get()}).ok());
    for (int64_t i = 0; i < t; ++i) {
      const int64_t id =
          idx == DType::I64 ? ids->view.as<int64_t>()[i] : ids->view.as<int32_t>()[i];
      for (int64_t j = 0; j < d; ++j) EXPECT_EQ(y->get(i * d + j), table->get(id * d + j));
    }
  }
}

TEST(LinearTest, EmbeddingIdsOutOfRange) {
  std::mt19937_64 rng(31);
  const int64_t t = 4, d = 3, v = 5;
  auto table = Rand(DType::F32, {v, d}, rng), ids = Zeros(DType::I32, {t});
  auto y = Zeros(DType::F32, {t, d}), dt = Zeros(DType::F32, {v, d});
  Params p;
  p.I("tokens", t).I("hidden", d).I("vocab", v);
  for (int32_t bad : {5, -1}) {
    ids->view.as<int32_t>()[2] = bad;
    Status s = RunKernel("embedding_fwd", p, {table.get(), ids.get()}, {y.get()});
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find(StrFormat("token id %d at position 2", bad)), std::string::npos)
        << s.message();
    s = RunKernel("embedding_bwd", p, {y.get(), ids.get()}, {dt.get()});
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  }
}

TEST(LinearTest, EmbeddingBwdMatchesFiniteDifferences) {
  std::mt19937_64 rng(32);
  const int64_t t = 12, d = 5, v = 6;  // ids repeat
  auto table = Rand(DType::F32, {v, d}, rng), ids = Zeros(DType::I32, {t});
  FillInts(*ids, rng, 0, v - 1);  // the last row is never used
  auto y = Zeros(DType::F32, {t, d}), dy = Zeros(DType::F32, {t, d});
  auto dt = Rand(DType::F32, {v, d}, rng);  // garbage: the kernel zero-fills
  auto wts = Weights(t * d, rng);
  SetFloats(*dy, wts);
  Params p;
  p.I("tokens", t).I("hidden", d).I("vocab", v);
  ASSERT_TRUE(RunKernel("embedding_bwd", p, {dy.get(), ids.get()}, {dt.get()}).ok());
  auto fwd = [&] {
    ASSERT_TRUE(RunKernel("embedding_fwd", p, {table.get(), ids.get()}, {y.get()}).ok());
  };
  EXPECT_LT(FiniteDifferenceError(
                *table, dt->floats(),
                [&] {
                  fwd();
                  return y->floats();
                },
                wts, rng, 0, 1e-2),
            1e-2);
  for (int64_t j = 0; j < d; ++j) EXPECT_EQ(dt->get((v - 1) * d + j), 0.0f);
}

TEST(LinearTest, DequantizeIsBitIdenticalToNf4) {
  std::mt19937_64 rng(33);
  for (int64_t dqb : {int64_t{0}, int64_t{256}, int64_t{1}}) {
    const int64_t n = 48, k = 64;
    auto w = RandNf4(n, k, 64, dqb, rng);
    StatusOr<Nf4Layout> layout = Nf4Layout::Make(n * k, 64, dqb);
    Params p;
    p.S("weight_format", "nf4")
        .I("block_size", 64)
        .I("double_quant_block", dqb)
        .I("elements", n * k);
    auto f = Zeros(DType::F32, {n, k}), h = Zeros(DType::BF16, {n, k});
    ASSERT_TRUE(RunKernel("dequantize", p, {w.get()}, {f.get()}).ok());
    ASSERT_TRUE(RunKernel("dequantize", p, {w.get()}, {h.get()}).ok());
    std::vector<float> wf(n * k);
    std::vector<uint16_t> wh(n * k);
    ASSERT_TRUE(
        DequantizeNf4(w->bytes.data(), layout->total_bytes(), *layout, wf.data(), n * k).ok());
    ASSERT_TRUE(
        DequantizeNf4ToBf16(w->bytes.data(), layout->total_bytes(), *layout, wh.data(), n * k)
            .ok());
    EXPECT_EQ(std::memcmp(f->view.data, wf.data(), 4 * n * k), 0) << "dqb=" << dqb;
    EXPECT_EQ(std::memcmp(h->view.data, wh.data(), 2 * n * k), 0) << "dqb=" << dqb;
  }
}

//===----------------------------------------------------------------------===//
// Errors
//===----------------------------------------------------------------------===//

TEST(LinearTest, BadOperandsAndParametersAreErrors) {
  std::mt19937_64 rng(40);
  const int64_t m = 2, n = 3, k = 4;
  auto x = Rand(DType::F32, {m, k}, rng), w = Rand(DType::F32, {n, k}, rng);
  auto y = Zeros(DType::F32, {m, n});
  auto expect = [](const Status& s, const char* text) {
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
    EXPECT_NE(s.message().find(text), std::string::npos) << s.message();
  };
  Params p = Matmul(m, n, k);
  p.I("bias", 1);  // bias=1 but no bias operand
  expect(RunKernel("linear_fwd", p, {x.get(), w.get()}, {y.get()}), "takes 3 inputs");
  p.I("bias", 0);
  auto xi = Zeros(DType::I32, {m, k});
  expect(RunKernel("linear_fwd", p, {xi.get(), w.get()}, {y.get()}), "x must be a float tensor");
  auto small = Zeros(DType::F32, {m, n - 1});
  expect(RunKernel("linear_fwd", p, {x.get(), w.get()}, {small.get()}), "output has 4 elements");
  Params missing;
  missing.I("m", m).I("n", n);
  expect(RunKernel("linear_fwd", missing, {x.get(), w.get()}, {y.get()}), "'k' is missing");
  // (Every other parameter the kind declares is given: the kernel checks
  // what the plan loader cannot, the values.)
  Params zero = Matmul(0, n, k);
  zero.I("bias", 0);
  expect(RunKernel("linear_fwd", zero, {x.get(), w.get()}, {y.get()}), "'m' must be positive");
  Params fmt = Matmul(m, n, k);
  fmt.S("weight_format", "int8").I("bias", 0);
  expect(RunKernel("linear_fwd", fmt, {x.get(), w.get()}, {y.get()}), "weight_format");
  Params nf4 = Nf4Matmul(m, n, k, 4, 0);
  nf4.I("bias", 0);
  expect(RunKernel("linear_fwd", nf4, {x.get(), w.get()}, {y.get()}), "needs an NF4 weight");
  auto q = RandNf4(n, k, 4, 0, rng);
  Params nf4_bad = Nf4Matmul(m, n, k, 3, 0);
  nf4_bad.I("bias", 0);
  q->view.nf4.block_size = 0;  // layout from the parameters only: 3 is no power of two
  Status s = RunKernel("linear_fwd", nf4_bad, {x.get(), q.get()}, {y.get()});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  q->view.nf4.block_size = 4;
  Params nf4_mismatch = Nf4Matmul(m, n, k, 2, 0);
  nf4_mismatch.I("bias", 0);
  expect(RunKernel("linear_fwd", nf4_mismatch, {x.get(), q.get()}, {y.get()}), "differs");

  auto A = Rand(DType::F32, {2, k}, rng), B = Rand(DType::F32, {n, 2}, rng);
  Params lp;
  lp.I("m", m).I("n", n).I("k", k);
  WithAdapter(lp, 2, 1.0, 1.0, 0);
  expect(RunKernel("lora_fwd", lp, {x.get(), A.get(), B.get()}, {y.get()}), "dropout");
  Params lr;
  lr.I("m", m).I("n", n).I("k", k);
  WithAdapter(lr, 0, 1.0, 0.0, 0);
  expect(RunKernel("lora_fwd", lr, {x.get(), A.get(), B.get()}, {y.get()}),
         "'rank' must be positive");
  Params lw;
  lw.I("m", m).I("n", n).I("k", k);
  WithAdapter(lw, 3, 1.0, 0.0, 0);  // A is [2, k]
  expect(RunKernel("lora_fwd", lw, {x.get(), A.get(), B.get()}, {y.get()}), "the adapter's A");
  auto dx = Zeros(DType::F32, {m, k});
  Params lv;
  lv.I("m", m).I("n", n).I("k", k);
  WithAdapter(lv, 2, 1.0, 0.0, 0);
  expect(RunKernel("lora_bwd", lv, {y.get(), x.get(), A.get(), B.get()}, {dx.get()}),
         "takes 4 inputs and 3 outputs");

  auto logits = Rand(DType::F32, {m, n}, rng);
  auto tg = Zeros(DType::F32, {m}), mk = Zeros(DType::BOOL, {m});
  auto loss = Zeros(DType::F32, {}), cnt = Zeros(DType::I64, {});
  expect(RunKernel("cross_entropy_fwd", CeParams(m, n), {logits.get(), tg.get(), mk.get()},
                   {loss.get(), cnt.get()}),
         "targets must be I32 or I64");
  auto ti = Zeros(DType::I32, {m}), mf = Zeros(DType::F32, {m});
  expect(RunKernel("cross_entropy_fwd", CeParams(m, n), {logits.get(), ti.get(), mf.get()},
                   {loss.get(), cnt.get()}),
         "mask must be BOOL");
  auto cnt32 = Zeros(DType::I32, {});
  expect(RunKernel("cross_entropy_fwd", CeParams(m, n), {logits.get(), ti.get(), mk.get()},
                   {loss.get(), cnt32.get()}),
         "count must be I64");
  Params ce = LmCeParams(m, k, n, 0);
  expect(RunKernel("lm_head_ce_fwd", ce, {x.get(), w.get(), ti.get(), mk.get()},
                   {loss.get(), cnt.get()}),
         "'chunk_size' must be positive");
  Params dq;
  dq.S("weight_format", "dense").I("block_size", 4).I("double_quant_block", 0).I("elements", n * k);
  expect(RunKernel("dequantize", dq, {q.get()}, {w.get()}), "weight_format must be 'nf4'");
}

//===----------------------------------------------------------------------===//
// Preference objectives: sequence_logprobs, dpo_loss
//===----------------------------------------------------------------------===//

Params SeqParams(int64_t t, int64_t v, int64_t n) {
  Params p;
  p.I("tokens", t).I("vocab", v).I("sequences", n);
  return p;
}

// Random sequence ids in [0, n) on masked-in tokens, -1 elsewhere.
std::unique_ptr<Owned> RandSequenceIds(const Owned& mask, int64_t n, std::mt19937_64& rng) {
  auto ids = Zeros(DType::I32, {mask.numel()});
  for (int64_t i = 0; i < mask.numel(); ++i)
    ids->view.as<int32_t>()[i] =
        mask.view.as<uint8_t>()[i] ? static_cast<int32_t>(rng() % n) : -1;
  return ids;
}

TEST(LinearTest, SequenceLogProbsFwdMatchesReference) {
  std::mt19937_64 rng(40);
  const int64_t t = 23, v = 300, n = 5;
  for (DType dt : {DType::F32, DType::BF16}) {
    auto logits = Rand(dt, {t, v}, rng, -6.0f, 6.0f);
    auto li = RandTargets(t, v, rng);
    auto ids = RandSequenceIds(*li.mask, n, rng);
    auto out = Zeros(DType::F32, {n});
    ASSERT_TRUE(RunKernel("sequence_logprobs_fwd", SeqParams(t, v, n),
                          {logits.get(), li.targets.get(), li.mask.get(), ids.get()}, {out.get()})
                    .ok());
    // Each sequence's sum is the cross-entropy reference with a mask of its tokens, negated.
    std::vector<float> lf = logits->floats();
    for (int64_t s = 0; s < n; ++s) {
      auto m = Zeros(DType::BOOL, {t});
      for (int64_t i = 0; i < t; ++i)
        m->view.as<uint8_t>()[i] = li.mask->view.as<uint8_t>()[i] && ids->view.as<int32_t>()[i] == s;
      int64_t count;
      double want = -RefLoss(lf, *li.targets, *m, t, v, &count);
      EXPECT_NEAR(out->get(s), want, 1e-5 * std::max(1.0, std::fabs(want))) << "sequence " << s;
    }
  }
}

TEST(LinearTest, SequenceLogProbsBwdMatchesFiniteDifferences) {
  std::mt19937_64 rng(41);
  const int64_t t = 11, v = 14, n = 4;
  auto logits = Rand(DType::F32, {t, v}, rng, -2.0f, 2.0f);
  auto li = RandTargets(t, v, rng);
  auto ids = RandSequenceIds(*li.mask, n, rng);
  auto dlogp = Rand(DType::F32, {n}, rng);
  auto dl = Zeros(DType::F32, {t, v});
  ASSERT_TRUE(RunKernel("sequence_logprobs_bwd", SeqParams(t, v, n),
                        {logits.get(), li.targets.get(), li.mask.get(), ids.get(), dlogp.get()},
                        {dl.get()})
                  .ok());
  auto out = Zeros(DType::F32, {n});
  auto fwd = [&] {
    ASSERT_TRUE(RunKernel("sequence_logprobs_fwd", SeqParams(t, v, n),
                          {logits.get(), li.targets.get(), li.mask.get(), ids.get()}, {out.get()})
                    .ok());
  };
  EXPECT_LT(Fd(*logits, dl->floats(), fwd, *out, dlogp->floats(), rng), 1e-2);
  for (int64_t j = 0; j < v; ++j) EXPECT_EQ(dl->get(1 * v + j), 0.0f);  // a masked-out row
}

TEST(LinearTest, SequenceLogProbsRejectsAnIdOutsideTheSequences) {
  std::mt19937_64 rng(42);
  const int64_t t = 6, v = 8, n = 2;
  auto logits = Rand(DType::F32, {t, v}, rng);
  auto li = RandTargets(t, v, rng);  // position 1 is masked out
  auto ids = RandSequenceIds(*li.mask, n, rng);
  auto out = Zeros(DType::F32, {n});
  ids->view.as<int32_t>()[1] = 9;  // masked out: ignored
  EXPECT_TRUE(RunKernel("sequence_logprobs_fwd", SeqParams(t, v, n),
                        {logits.get(), li.targets.get(), li.mask.get(), ids.get()}, {out.get()})
                  .ok());
  ids->view.as<int32_t>()[3] = 2;
  Status s = RunKernel("sequence_logprobs_fwd", SeqParams(t, v, n),
                       {logits.get(), li.targets.get(), li.mask.get(), ids.get()}, {out.get()});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("token 3 is in the loss but its sequence id 2 is outside [0, 2)"),
            std::string::npos)
      << s.message();
}

Params DpoParams(int64_t pairs, double beta, bool ipo) {
  Params p;
  p.I("pairs", pairs).F("beta", beta).I("ipo", ipo ? 1 : 0);
  return p;
}

TEST(LinearTest, DpoLossMatchesReferenceAndFiniteDifferences) {
  std::mt19937_64 rng(43);
  const int64_t pairs = 5;
  for (bool ipo : {false, true}) {
    const double beta = ipo ? 0.3 : 0.7;
    auto pol = Rand(DType::F32, {2 * pairs}, rng, -20.0f, -5.0f);
    auto ref = Rand(DType::F32, {2 * pairs}, rng, -20.0f, -5.0f);
    auto present = Zeros(DType::BOOL, {pairs});
    for (int64_t q = 0; q < pairs; ++q) present->view.as<uint8_t>()[q] = q != 2;
    std::vector<std::unique_ptr<Owned>> outs;
    outs.push_back(Zeros(DType::F32, {}));
    outs.push_back(Zeros(DType::I64, {}));
    for (int k = 0; k < 4; ++k) outs.push_back(Zeros(DType::F32, {}));
    std::vector<Owned*> o;
    for (auto& x : outs) o.push_back(x.get());
    auto fwd = [&] {
      ASSERT_TRUE(RunKernel("dpo_loss_fwd", DpoParams(pairs, beta, ipo),
                            {pol.get(), ref.get(), present.get()}, o)
                      .ok());
    };
    fwd();
    double loss = 0, chosen = 0, rejected = 0, acc = 0, margin = 0;
    for (int64_t q = 0; q < pairs; ++q) {
      if (q == 2) continue;
      double rc = double(pol->get(2 * q)) - ref->get(2 * q);
      double rr = double(pol->get(2 * q + 1)) - ref->get(2 * q + 1);
      double h = rc - rr;
      loss += ipo ? (h - 1 / (2 * beta)) * (h - 1 / (2 * beta))
                  : -std::log(1 / (1 + std::exp(-beta * h)));
      chosen += beta * rc;
      rejected += beta * rr;
      acc += rc > rr;
      margin += beta * h;
    }
    EXPECT_NEAR(o[0]->get(0), loss, 1e-5 * std::max(1.0, loss));
    EXPECT_EQ(o[1]->view.as<int64_t>()[0], pairs - 1);
    EXPECT_NEAR(o[2]->get(0), chosen, 1e-4);
    EXPECT_NEAR(o[3]->get(0), rejected, 1e-4);
    EXPECT_EQ(o[4]->get(0), acc);
    EXPECT_NEAR(o[5]->get(0), margin, 1e-4);
    // The gradient with respect to the policy, against finite differences
    // of the loss; the absent pair gets none.
    auto dloss = Zeros(DType::F32, {});
    dloss->set(0, 1.3f);
    auto g = Zeros(DType::F32, {2 * pairs});
    ASSERT_TRUE(RunKernel("dpo_loss_bwd", DpoParams(pairs, beta, ipo),
                          {pol.get(), ref.get(), present.get(), dloss.get()}, {g.get()})
                    .ok());
    EXPECT_LT(Fd(*pol, g->floats(), fwd, *o[0], {1.3f}, rng), 1e-2) << (ipo ? "ipo" : "sigmoid");
    EXPECT_EQ(g->get(4), 0.0f);
    EXPECT_EQ(g->get(5), 0.0f);
  }
}

// EWC: λ·Σ F ⊙ (s·B·A)², weighted by the token count; gradients for A and B.
TEST(LinearTest, EwcPenaltyMatchesReferenceAndFiniteDifferences) {
  std::mt19937_64 rng(44);
  const int64_t n = 24, k = 40, r = 4;
  const double s = 2.0, lambda = 3.0;
  for (DType dt : {DType::F32, DType::BF16}) {
    auto a = Rand(dt, {r, k}, rng), b = Rand(dt, {n, r}, rng);
    auto f = Rand(dt, {n, k}, rng, 0.0f, 2.0f);
    auto count = Zeros(DType::I64, {});
    count->view.as<int64_t>()[0] = 7;
    Params p;
    p.I("n", n).I("k", k).I("rank", r).F("scaling", s).F("lambda", lambda);
    auto weighted = Zeros(DType::F32, {}), pen = Zeros(DType::F32, {});
    auto fwd = [&] {
      ASSERT_TRUE(RunKernel("ewc_penalty_fwd", p, {a.get(), b.get(), f.get(), count.get()},
                            {weighted.get(), pen.get()})
                      .ok());
    };
    fwd();
    double want = 0;
    for (int64_t o = 0; o < n; ++o)
      for (int64_t c = 0; c < k; ++c) {
        double d = 0;
        for (int64_t q = 0; q < r; ++q) d += s * double(b->get(o * r + q)) * a->get(q * k + c);
        want += double(f->get(o * k + c)) * d * d;
      }
    want *= lambda;
    EXPECT_NEAR(pen->get(0), want, 1e-5 * want);
    EXPECT_NEAR(weighted->get(0), 7 * want, 7e-5 * want);
    if (dt != DType::F32) continue;  // finite differences in f32
    auto dloss = Zeros(DType::F32, {});
    dloss->set(0, 0.6f);
    auto da = Zeros(dt, {r, k}), db = Zeros(dt, {n, r});
    ASSERT_TRUE(RunKernel("ewc_penalty_bwd", p, {a.get(), b.get(), f.get(), count.get(), dloss.get()},
                          {da.get(), db.get()})
                    .ok());
    EXPECT_LT(Fd(*a, da->floats(), fwd, *weighted, {0.6f}, rng), 1e-2) << "dA";
    EXPECT_LT(Fd(*b, db->floats(), fwd, *weighted, {0.6f}, rng), 1e-2) << "dB";
  }
}

TEST(LinearTest, EwcPenaltyChecksItsOperands) {
  std::mt19937_64 rng(45);
  auto a = Rand(DType::F32, {4, 8}, rng), b = Rand(DType::F32, {6, 4}, rng);
  auto f = Rand(DType::F32, {6, 7}, rng);  // [6, 8] expected
  auto count = Zeros(DType::I64, {});
  auto w = Zeros(DType::F32, {}), pen = Zeros(DType::F32, {});
  Params p;
  p.I("n", 6).I("k", 8).I("rank", 4).F("scaling", 1.0).F("lambda", 1.0);
  Status st = RunKernel("ewc_penalty_fwd", p, {a.get(), b.get(), f.get(), count.get()},
                        {w.get(), pen.get()});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("the Fisher"), std::string::npos) << st.message();
}

// Replay in DPO: weight · pairs present · lm_sum / max(lm_count, 1).
TEST(LinearTest, ReplayLossScalesByPairsOverTokens) {
  auto sum = Zeros(DType::F32, {}), count = Zeros(DType::I64, {}), pairs = Zeros(DType::BOOL, {4});
  sum->set(0, 12.0f);
  count->view.as<int64_t>()[0] = 30;
  for (int q : {0, 1, 3}) pairs->view.as<uint8_t>()[q] = 1;
  Params p;
  p.I("pairs", 4).F("weight", 0.5);
  auto out = Zeros(DType::F32, {});
  ASSERT_TRUE(RunKernel("replay_loss_fwd", p, {sum.get(), count.get(), pairs.get()}, {out.get()}).ok());
  EXPECT_FLOAT_EQ(out->get(0), 0.5f * 3 * 12.0f / 30);
  auto dloss = Zeros(DType::F32, {}), g = Zeros(DType::F32, {});
  dloss->set(0, 2.0f);
  ASSERT_TRUE(RunKernel("replay_loss_bwd", p, {count.get(), pairs.get(), dloss.get()}, {g.get()}).ok());
  EXPECT_FLOAT_EQ(g->get(0), 2.0f * 0.5f * 3 / 30);  // the derivative of the (linear) forward
  count->view.as<int64_t>()[0] = 0;  // no replay tokens: a zero sum stays zero
  sum->set(0, 0.0f);
  ASSERT_TRUE(RunKernel("replay_loss_fwd", p, {sum.get(), count.get(), pairs.get()}, {out.get()}).ok());
  EXPECT_EQ(out->get(0), 0.0f);
}

TEST(LinearTest, DISABLED_Perf) {
  // The fused LoRA linear kinds of the CPU benchmark's shapes (1024 tokens,
  // r16, dropout 0.05, 2 threads) against one Gemm of the frozen product's
  // shape: what the adapter, dropout and epilogues cost beyond the GEMM.
  std::mt19937_64 rng(5);
  const int64_t m = 1024, r = 16;
  const int64_t shapes[][2] = {{512, 512}, {1408, 512}, {512, 1408}, {256, 512}};
  for (DType dt : {DType::F32, DType::BF16})
    for (const auto& nk : shapes) {
      const int64_t n = nk[0], k = nk[1];
      auto x = Rand(dt, {m, k}, rng), w = Rand(dt, {n, k}, rng);
      auto A = Rand(dt, {r, k}, rng), B = Rand(dt, {n, r}, rng);
      auto y = Zeros(dt, {m, n}), dy = Rand(dt, {m, n}, rng), dx = Zeros(dt, {m, k});
      auto dA = Zeros(DType::F32, {r, k}), dB = Zeros(DType::F32, {n, r});
      Params p = Matmul(m, n, k);
      WithAdapter(p, r, 2.0, 0.05, 3);
      Params pf = p;
      pf.I("bias", 0);
      auto time = [](auto f) {
        f();
        double best = 1e30;
        for (int i = 0; i < 5; ++i) {
          auto t0 = std::chrono::steady_clock::now();
          f();
          best = std::min(
              best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        }
        return best;
      };
      const double gemm = time([&] {
        ASSERT_TRUE(Gemm(false, true, m, n, k, 1.0f, {x->view.data, dt, k}, {w->view.data, dt, k},
                         0.0f, y->view.data, dt, n, 2)
                        .ok());
      });
      const double fwd = time([&] {
        ASSERT_TRUE(
            RunKernel("fused_linear_fwd", pf, {x.get(), w.get(), A.get(), B.get()}, {y.get()}, 1, 2)
                .ok());
      });
      const double bwd = time([&] {
        ASSERT_TRUE(RunKernel("fused_linear_bwd", p, {dy.get(), x.get(), w.get(), A.get(), B.get()},
                              {dx.get(), dA.get(), dB.get()}, 1, 2)
                        .ok());
      });
      std::printf(
          "%s m=%lld n=%lld k=%lld: gemm %.2f ms, fused fwd %.2f ms (%.2fx), bwd %.2f ms "
          "(%.2fx)\n",
          dt == DType::F32 ? "f32" : "bf16", static_cast<long long>(m), static_cast<long long>(n),
          static_cast<long long>(k), gemm * 1e3, fwd * 1e3, fwd / gemm, bwd * 1e3, bwd / gemm);
    }
}

}  // namespace
}  // namespace lorart::cpu
