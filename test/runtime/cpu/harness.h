// A small backend-ops harness for the CPU kernels (in the spirit of ggml's
// test-backend-ops): owned tensors with fresh random contents, running a
// kernel by kind through the registry, comparing against a reference with a
// normalized error, and checking a backward kernel against central finite
// differences of the forward one.
#ifndef LORART_TEST_CPU_HARNESS_H_
#define LORART_TEST_CPU_HARNESS_H_

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "lorart/cpu/isa.h"
#include "lorart/cpu/kernel.h"

namespace lorart::cpu::testing {

// Runs `body` at every instruction-set level this CPU has (isa.h), so the
// hand-written tiles of each level and the paths they fall back to are all
// checked.
template <class F>
void ForEachLevel(F body) {
  for (int level = 0; level <= CpuIsaLevel(); ++level) {
    SCOPED_TRACE("instruction-set level " + std::to_string(level));
    SetIsaLevelLimitForTesting(level);
    ASSERT_EQ(IsaLevel(), level);
    body();
  }
  SetIsaLevelLimitForTesting(-1);
}

// A tensor that owns its bytes.
struct Owned {
  std::vector<uint8_t> bytes;
  TensorView view;

  Owned() = default;
  Owned(DType dtype, std::vector<int64_t> shape) { Reset(dtype, std::move(shape)); }
  void Reset(DType dtype, std::vector<int64_t> shape) {
    view.dtype = dtype;
    view.shape = std::move(shape);
    bytes.assign(static_cast<size_t>(view.numel()) * ElementBytes(dtype) + 64, 0);
    view.data = bytes.data();
  }
  static size_t ElementBytes(DType d) {
    switch (d) {
      case DType::F32: case DType::I32: return 4;
      case DType::F16: case DType::BF16: return 2;
      case DType::I64: return 8;
      case DType::BOOL: return 1;
      default: return 1;
    }
  }
  int64_t numel() const { return view.numel(); }
  float get(int64_t i) const { return LoadFloat(view, i); }
  void set(int64_t i, float v) { StoreFloat(view, i, v); }
  std::vector<float> floats() const {
    std::vector<float> out(static_cast<size_t>(numel()));
    ToFloat(view, 0, numel(), out.data());
    return out;
  }
};

// Uniform floats in [lo, hi) (never all zeros).
inline void FillUniform(Owned& t, std::mt19937_64& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> d(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.set(i, d(rng));
}
inline void FillInts(Owned& t, std::mt19937_64& rng, int64_t lo, int64_t hi) {
  std::uniform_int_distribution<int64_t> d(lo, hi - 1);
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (t.view.dtype == DType::I64) t.view.as<int64_t>()[i] = d(rng);
    else t.view.as<int32_t>()[i] = static_cast<int32_t>(d(rng));
  }
}

// Runs kernel `kind` with `params` (kind is set for messages). Not named
// Run: inside a TEST body gtest's Test::Run would hide it.
inline Status RunKernel(const std::string& kind, KernelParams params, const std::vector<Owned*>& in,
                  const std::vector<Owned*>& out, uint64_t step_seed = 0, int threads = 2) {
  KernelFn fn;
  LORA_RETURN_IF_ERROR(LookupKernel(kind, &fn));
  params.set_kind(kind);
  std::vector<TensorView> iv, ov;
  for (Owned* t : in) iv.push_back(t->view);
  for (Owned* t : out) ov.push_back(t->view);
  KernelContext ctx;
  ctx.step_seed = step_seed;
  ctx.num_threads = threads;
  return fn(ctx, params, iv, ov);
}

// max |a - b| / max(max |b|, tiny): the error relative to the reference's scale.
inline double NormalizedError(const std::vector<float>& got, const std::vector<float>& want) {
  double scale = 1e-12, err = 0.0;
  for (size_t i = 0; i < want.size(); ++i) scale = std::max(scale, std::fabs(double(want[i])));
  for (size_t i = 0; i < want.size() && i < got.size(); ++i)
    err = std::max(err, std::fabs(double(got[i]) - double(want[i])));
  if (got.size() != want.size()) return 1e30;
  return err / scale;
}

// Central finite differences of L(x) = sum(f(x) .* w) with respect to the
// float tensor `x`, at `samples` random coordinates (all when samples <= 0).
// `forward` must recompute the output (as float) from the current contents
// of x. Returns the max normalized error against `analytic` (dL/dx).
inline double FiniteDifferenceError(Owned& x, const std::vector<float>& analytic,
                                    const std::function<std::vector<float>()>& forward,
                                    const std::vector<float>& w, std::mt19937_64& rng,
                                    int samples = 64, double eps = 1e-2) {
  auto loss = [&]() {
    std::vector<float> y = forward();
    double s = 0.0;
    for (size_t i = 0; i < y.size(); ++i) s += double(y[i]) * double(w[i]);
    return s;
  };
  std::vector<int64_t> idx;
  if (samples <= 0 || samples >= x.numel()) {
    for (int64_t i = 0; i < x.numel(); ++i) idx.push_back(i);
  } else {
    std::uniform_int_distribution<int64_t> d(0, x.numel() - 1);
    for (int i = 0; i < samples; ++i) idx.push_back(d(rng));
  }
  double scale = 1e-12, err = 0.0;
  for (float a : analytic) scale = std::max(scale, std::fabs(double(a)));
  for (int64_t i : idx) {
    float orig = x.get(i);
    x.set(i, orig + static_cast<float>(eps));
    double lp = loss();
    x.set(i, orig - static_cast<float>(eps));
    double lm = loss();
    x.set(i, orig);
    double numeric = (lp - lm) / (2 * eps);
    err = std::max(err, std::fabs(numeric - double(analytic[static_cast<size_t>(i)])));
  }
  return err / scale;
}

}  // namespace lorart::cpu::testing

#endif  // LORART_TEST_CPU_HARNESS_H_
