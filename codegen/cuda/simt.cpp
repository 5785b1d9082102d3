//===- simt.cpp - What the CUDA-core templates share ------------------===//
//
// The GEMM-shaped kernels and attention for the cases the tensor-core
// templates do not cover: f32 and f16 activations (`--dtype f32|f16`), and
// bf16 ones with a rank above 64 or a K that is not a multiple of 8. Every
// element is read through lora_ld (float, bf16 or f16 to f32), every sum is
// an f32 FMA chain in one fixed order (no atomics, reproducible), and each
// f32 intermediate meets its next product exactly as the CPU backend's Gemm
// reads it: rounded to bf16 against a bf16 operand (autocast), else as is
// (lora_opnd).
//
// Products: a 64x64 output tile per block of 256 threads (16x16, 4x4
// outputs each), operands staged 16 k at a time through shared memory by
// two functors (element (row, k) of each operand), so one tile function
// serves x·Wᵀ, dy·W, dyᵀ·x and the adapter's products, NF4 dequantization
// included. Attention: one warp per query row (forward and dQ) or key row
// (dK, dV), lanes over 32 keys (or queries) at a time with an online
// softmax, no [T, T] matrix.
//
// These run at CUDA-core speed — the tensor-core templates are the fast
// path; this one makes every plan run on the GPU.
//
//===----------------------------------------------------------------------===//
#include "cuda/simt.h"

#include "cuda/common.h"

#include <map>

namespace lorac::cuda::simt {

const char *kSimtPrelude = R"(
// An f32 intermediate as an operand of a product with a T operand, as the
// CPU backend's Gemm reads it: rounded to bf16 against bf16, else exact.
__device__ __forceinline__ float lora_opnd(const __nv_bfloat16*, float v) { return __bfloat162float(__float2bfloat16(v)); }
__device__ __forceinline__ float lora_opnd(const __half*, float v) { return v; }
__device__ __forceinline__ float lora_opnd(const float*, float v) { return v; }
namespace {
// acc[i][j] += Σ_{k in [kb, ke)} fa(ty + 16i, k)·fb(tx + 16j, k) over a 64x64
// tile (256 threads as 16x16; tx = thread % 16, ty = thread / 16); fa and fb
// return 0 outside their operand.
template <class FA, class FB>
__device__ __forceinline__ void lora_simt_tile(float (&acc)[4][4], FA fa, FB fb, long kb, long ke) {
  __shared__ float as[16][65], bs[16][65];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  for (long k0 = kb; k0 < ke; k0 += 16) {
    for (int e = tid; e < 1024; e += 256) {
      const int r = e >> 4, kk = e & 15;
      const long k = k0 + kk;
      as[kk][r] = k < ke ? fa(r, k) : 0.f;
      bs[kk][r] = k < ke ? fb(r, k) : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < 16; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        a[i] = as[kk][ty + 16 * i];
        b[i] = bs[kk][tx + 16 * i];
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
}
__device__ __forceinline__ void lora_simt_zero(float (&acc)[4][4]) {
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.f;
}
// f(row, col, acc) for this thread's 16 outputs of the tile.
template <class F>
__device__ __forceinline__ void lora_simt_each(const float (&acc)[4][4], F f) {
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) f(ty + 16 * i, tx + 16 * j, acc[i][j]);
}
// The same over two accumulators of one layout: f(row, col, acc, acc2).
template <class F>
__device__ __forceinline__ void lora_simt_each2(const float (&acc)[4][4], const float (&acc2)[4][4], F f) {
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) f(ty + 16 * i, tx + 16 * j, acc[i][j], acc2[i][j]);
}
}  // namespace
)";

/// `float lora_w(const WT* w, long row, long col)`: element (row, col) of the
/// frozen weight [n, k] as the CPU backend's tile of it (NF4 dequantized,
/// rounded to bf16 when the activations are bf16).
std::string weightFunction(bool nf4, int64_t n, int64_t k, int64_t blockSize,
                           int64_t doubleQuantBlock, const std::string &wType,
                           const std::string &actType, std::string *tables) {
  if (!nf4)
    return "__device__ __forceinline__ float lora_w(const " + wType +
           "* w, long row, long col) { return lora_ld(w, row * " + std::to_string(k) +
           "L + col); }\n";
  std::string absmax = nf4AbsmaxCode(n, k, blockSize, doubleQuantBlock, "absmax", "  ", tables);
  return subst(R"(__device__ __forceinline__ float lora_w(const unsigned char* wbytes, long row, long col) {
  const long e = row * $K$L + col, blk = e / $BS$;
  float absmax;
$ABSMAX$
  const unsigned byte = wbytes[e >> 1];
  return lora_opnd((const $ACT$*)0, lora_nf4[(e & 1) ? byte & 15u : byte >> 4] * absmax);
}
)",
               {{"K", std::to_string(k)},
                {"BS", std::to_string(blockSize)},
                {"ABSMAX", absmax},
                {"ACT", actType}});
}

/// drop(x) element e of x rounded to x's type, as the CPU's DropInput.
std::string dropFunction(const std::string &xType, double dropout) {
  if (dropout <= 0)
    return "__device__ __forceinline__ float lora_xd(const " + xType +
           "* x, long e, unsigned long long) { return lora_ld(x, e); }\n";
  return subst(R"(__device__ __forceinline__ float lora_xd(const $X$* x, long e, unsigned long long key) {
  return lora_keep(key, (unsigned long long)e, $P$) ? lora_round(x, lora_ld(x, e) * $INV$) : 0.f;
}
)",
               {{"X", xType},
                {"P", doubleLiteral(dropout)},
                {"INV", floatLiteral(static_cast<float>(1.0 / (1.0 - dropout)))}});
}

std::string tag(const std::string &t) {
  return t == "float" ? "f32" : t == "__half" ? "f16" : t == "__nv_bfloat16" ? "bf16" : "x";
}

bool floatType(const std::string &t) {
  return t == "float" || t == "__half" || t == "__nv_bfloat16";
}

int64_t tiles(int64_t v) { return (v + 63) / 64; }

/// "_nf4b<block>[dq<group>]" for an NF4 weight, else `dense`.
std::string weightTag(bool nf4, int64_t blockSize, int64_t doubleQuantBlock, const char *dense) {
  if (!nf4)
    return dense;
  return "_nf4b" + std::to_string(blockSize) +
         (doubleQuantBlock ? "dq" + std::to_string(doubleQuantBlock) : "");
}

/// The variables every product template shares: its sizes, the scaling,
/// the weight and drop(x) device functions (with their tables) and the
/// dropout key (0 without dropout, which lora_xd then ignores).
std::map<std::string, std::string> productVars(int64_t m, int64_t n, int64_t k, int64_t rank,
                                               double scaling, bool drop, const std::string &wfn,
                                               const std::string &xdfn, const std::string &tables) {
  return {{"M", std::to_string(m)},
          {"N", std::to_string(n)},
          {"K", std::to_string(k)},
          {"R", std::to_string(rank)},
          {"S", floatLiteral(static_cast<float>(scaling))},
          {"WFN", wfn},
          {"XDFN", xdfn},
          {"TABLES", tables},
          {"KEY", drop ? "  const unsigned long long key = *key_;\n"
                       : "  const unsigned long long key = 0;\n"}};
}

} // namespace lorac::cuda::simt
