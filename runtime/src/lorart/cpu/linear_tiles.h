// The LoRA linear products on the CPU's own register tiles (microkernels.inc,
// instruction-set levels 2 and 3 of isa.h), with the adapter and the
// epilogue fused into the product, so that no f32 panel of the output is
// written and read again:
//
//   forward:         y = x·Wᵀ + u·Bᵀ (+ bias)            (u = scaling·drop(x)·Aᵀ)
//   input gradient:  dx = dy·W + c·mask∘(g·A)            (c = scaling, or
//                                                          scaling/(1-p) with dropout)
//
// The adapter rides along the K dimension of the forward's tile (x and u
// concatenated, W and B packed into one panel); in the input gradient its
// term is an f32 segment summed first in the tile's registers, masked
// elementwise (dropout) and scaled there, with dy·W accumulated on top;
// each output element is rounded once. W is dense or NF4 (dequantized straight into the
// packed panel). Panels of 32 output columns are packed once per call and
// shared by the threads.
//
// A call returns false, having done nothing, where the tiles do not apply:
// a level below 2, bf16 operands below level 3, operand types other than
// one compute type (F32 or BF16) for x/dy, dense W and B, or odd k, n or r
// in bf16 (the tiles read pairs). The caller then takes the oneDNN path
// (matmul.h); results agree to rounding.
#ifndef LORART_CPU_LINEAR_TILES_H_
#define LORART_CPU_LINEAR_TILES_H_

#include <cstdint>

#include "lorart/cpu/kernel.h"

namespace lorart::cpu::matmul {

struct Weight;

struct TiledForward {
  const TensorView* x = nullptr;  // [m, k]
  const Weight* w = nullptr;      // [n, k], dense or NF4
  const void* u = nullptr;        // [m, r] in x's type, scaling applied (null when r = 0)
  const TensorView* b = nullptr;  // [n, r] (null when r = 0)
  int64_t r = 0;
  const float* bias = nullptr;    // [n] or null
  const TensorView* y = nullptr;  // [m, n], F32 or BF16
  int64_t m = 0, n = 0, k = 0;
};
bool TiledLinearForward(const KernelContext& ctx, const TiledForward& f);

struct TiledInputGrad {
  const TensorView* dy = nullptr;  // [m, n]
  const Weight* w = nullptr;       // [n, k], dense or NF4
  const float* g = nullptr;        // [m, r] = dy·B (null when r = 0)
  const TensorView* a = nullptr;   // [r, k]
  int64_t r = 0;
  float coef = 1.0f;               // scaling, times 1/(1-p) with dropout
  bool drop = false;               // mask the adapter term with KeepDropout
  uint64_t seed = 0, stream = 0;   // of the mask (element i·k + j of x)
  double p = 0.0;
  const uint8_t* keep = nullptr;   // the mask already drawn, [m, k] bytes (or null: drawn here)
  const TensorView* dx = nullptr;  // [m, k], F32 or BF16
  int64_t m = 0, n = 0, k = 0;
};
bool TiledInputGradient(const KernelContext& ctx, const TiledInputGrad& f);

}  // namespace lorart::cpu::matmul

#endif  // LORART_CPU_LINEAR_TILES_H_
