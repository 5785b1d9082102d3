// Branch-free float math whose loops the compiler vectorizes (no libm
// call per element), shared by the CPU kernels: the softmax and
// cross-entropy rows (matmul.h) and the SwiGLU gate (elementwise.cc).
#ifndef LORART_CPU_VECMATH_H_
#define LORART_CPU_VECMATH_H_

#include <cstdint>
#include <cstring>

namespace lorart::cpu {

// exp(x) for the softmax (arguments <= 0 after subtracting the maximum):
// Cody-Waite reduction to [-ln2/2, ln2/2] and a degree-7 Taylor polynomial,
// max relative error 9.3e-8 on [-87, 0]. Branch-free, so loops over it
// vectorize: the clamps to [-87, 88] compare the float's bits as integers (a
// float comparison would stop GCC's if-conversion under -ftrapping-math).
// Below -87 (-inf included) the result is 1.6e-38, not 0; a NaN argument
// gives a finite value, so callers check their row for NaN.
inline float ExpF(float x) {
  uint32_t xb;
  std::memcpy(&xb, &x, 4);
  xb = xb > 0xC2AE0000u ? 0xC2AE0000u : xb;                       // x < -87 (sign set)
  xb = static_cast<int32_t>(xb) > 0x42B00000 ? 0x42B00000u : xb;  // x > 88
  std::memcpy(&x, &xb, 4);
  const float kMagic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float shifted = x * 1.44269504088896341f + kMagic;
  const float r = shifted - kMagic;
  float f = x - r * 0.693145751953125f;   // ln2 high part (exact product)
  f = f - r * 1.428606765330187045e-06f;  // ln2 low part
  float p = 1.0f / 5040.0f;
  p = p * f + 1.0f / 720.0f;
  p = p * f + 1.0f / 120.0f;
  p = p * f + 1.0f / 24.0f;
  p = p * f + 1.0f / 6.0f;
  p = p * f + 0.5f;
  p = p * f + 1.0f;
  p = p * f + 1.0f;
  // The integer r read from the bits of `shifted` (no float->int conversion,
  // so a NaN argument stays defined behaviour).
  uint32_t sbits, mbits;
  std::memcpy(&sbits, &shifted, 4);
  std::memcpy(&mbits, &kMagic, 4);
  const uint32_t bits = (sbits - mbits + 127u) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return p * scale;
}

// 1 / (1 + exp(-x)) through ExpF: about 1e-7 relative error; saturates to
// 0 and 1 beyond |x| = 87 (exp(-x) is clamped there); NaN stays NaN only
// through the callers' other factors (ExpF of NaN is finite).
inline float SigmoidF(float x) { return 1.0f / (1.0f + ExpF(-x)); }

// Softmax rows (the cross-entropy kernels), multiversioned in vecmath.cc
// (LORART_CPU_CLONES, isa.h) and summed in 16 lanes.
// max over x (NaN if any element is NaN).
float RowMax(const float* x, int64_t n);
// log Σ exp(x) (the row max if it is not finite).
float LogSumExp(const float* x, int64_t n);
// g[j] = scale·(softmax(x)[j] - [j == target]) given lse = log Σ exp(x);
// all NaN when lse is not finite. g may be x.
void SoftmaxGrad(const float* x, int64_t n, float lse, int64_t target, float scale, float* g);

}  // namespace lorart::cpu

#endif  // LORART_CPU_VECMATH_H_
