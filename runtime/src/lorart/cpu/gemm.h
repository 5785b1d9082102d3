// Matrix products of the CPU backend: one entry point over oneDNN's matmul.
//
//   C = alpha · op(A) · op(B) + beta · C        (row-major, f32 accumulation)
//
// op(A) is [M, K] and op(B) is [K, N]; C is [M, N] with row stride ldc. A is
// stored [M, K] with row stride lda, or [K, M] when trans_a (so op(A) = Aᵀ);
// B is stored [K, N] with row stride ldb, or [N, K] when trans_b — the layout
// of an nn.Linear weight, so `x·Wᵀ` is Gemm(false, true, ...).
//
// Element types (A and B: F32, BF16 or F16; C: F32, BF16 or F16):
// * BF16 × BF16 runs as a bf16 matmul with f32 accumulation (oneDNN uses
//   AVX512-BF16 instructions where the CPU has them).
// * F32 × BF16 (either order) rounds the F32 operand to bf16 and runs the
//   bf16 matmul, as PyTorch's autocast does; the rounding happens panel by
//   panel in a per-thread scratch, never for the whole operand at once.
// * Anything with F16 (oneDNN has no f16 matmul on most CPUs) and F32 × F32
//   run in f32. A CPU where oneDNN has no bf16 matmul falls back to f32.
// * C is rounded once from the f32 accumulator, including beta · C.
//
// Primitives are created once per (shape, strides, types, transposes,
// alpha, beta, threads) and cached in a thread-safe map; every call passes
// its own scratchpad, so concurrent calls are safe. Threads: oneDNN's own
// OpenMP threads, `num_threads` of them (0: the OpenMP default). Called from
// inside an OpenMP parallel region, a product runs on the calling thread.
#ifndef LORART_CPU_GEMM_H_
#define LORART_CPU_GEMM_H_

#include <cstdint>

#include "lorart/base/status.h"
#include "lorart/cpu/kernel.h"

namespace lorart::cpu {

// An operand: its first element, element type, row stride (in elements).
struct GemmMatrix {
  const void* data = nullptr;
  DType dtype = DType::F32;
  int64_t ld = 0;
};

// INVALID_ARGUMENT on negative sizes, strides smaller than a row, null
// pointers or non-float types; INTERNAL if oneDNN fails (with its message).
// M, N or K may be 0 (K = 0 gives C = beta · C).
Status Gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, GemmMatrix a,
            GemmMatrix b, float beta, void* c, DType c_type, int64_t ldc, int num_threads = 0);

// The same contract computed naively in double precision, single-threaded
// (the element types are read and written exactly as Gemm does, but without
// rounding F32 operands to bf16). For tests and for checking Gemm.
Status GemmReference(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                     GemmMatrix a, GemmMatrix b, float beta, void* c, DType c_type, int64_t ldc);

// Number of primitives in the cache (for tests).
int64_t GemmCacheSize();

}  // namespace lorart::cpu

#endif  // LORART_CPU_GEMM_H_
