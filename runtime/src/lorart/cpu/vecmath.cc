// The softmax rows of vecmath.h, compiled per instruction-set level.
#include "lorart/cpu/vecmath.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "lorart/cpu/isa.h"

namespace lorart::cpu {

namespace {
constexpr int kLanes = 16;
}  // namespace

LORART_CPU_CLONES float RowMax(const float* x, int64_t n) {
  float lanes[kLanes];
  for (int l = 0; l < kLanes; ++l) lanes[l] = -INFINITY;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) lanes[l] = lanes[l] > x[i + l] ? lanes[l] : x[i + l];
  float m = -INFINITY;
  for (int l = 0; l < kLanes; ++l) m = std::max(m, lanes[l]);
  for (; i < n; ++i) m = std::max(m, x[i]);
  int nan = 0;
  for (int64_t j = 0; j < n; ++j) nan |= x[j] != x[j];
  return nan ? std::numeric_limits<float>::quiet_NaN() : m;
}

// log Σ exp(x).
LORART_CPU_CLONES float LogSumExp(const float* x, int64_t n) {
  const float m = RowMax(x, n);
  if (!std::isfinite(m)) return m;
  float lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) lanes[l] += ExpF(x[i + l] - m);
  double s = 0.0;
  for (int l = 0; l < kLanes; ++l) s += lanes[l];
  for (; i < n; ++i) s += ExpF(x[i] - m);
  return m + static_cast<float>(std::log(s));
}

// g[j] = scale·(softmax(x)[j] - [j == target]) given lse = log Σ exp(x).
LORART_CPU_CLONES void SoftmaxGrad(const float* x, int64_t n, float lse, int64_t target,
                                   float scale, float* g) {
  if (!std::isfinite(lse)) {  // a NaN or infinite logit: the row's gradient is NaN
    std::fill(g, g + n, std::numeric_limits<float>::quiet_NaN());
    return;
  }
  for (int64_t j = 0; j < n; ++j) g[j] = scale * ExpF(x[j] - lse);
  g[target] -= scale;
}

}  // namespace lorart::cpu
