//===- common.cpp - Shared pieces of the CUDA C++ templates ---------------===//
//
// `$KEY$` substitution, literals that parse back to exactly the value, the
// base prelude (element loads and stores, rounding) and the tensor-core
// portability layer (mma.sync, ldmatrix, cp.async, the dropout mask; each
// with its CUDA-simulator counterpart) that every family's template starts
// from.
//
//===----------------------------------------------------------------------===//
#include "cuda/common.h"

#include "lorart/quant/nf4.h"

#include <cstdio>
#include <map>
#include <string>

namespace lorac::cuda {

/// Replaces every $KEY$ in `tpl`.
std::string subst(std::string tpl, const std::map<std::string, std::string> &vars) {
  for (const auto &[key, value] : vars) {
    std::string pat = "$" + key + "$";
    for (size_t pos = tpl.find(pat); pos != std::string::npos;
         pos = tpl.find(pat, pos + value.size()))
      tpl.replace(pos, pat.size(), value);
  }
  return tpl;
}

/// A float literal that parses back to exactly `v`.
std::string floatLiteral(float v) {
  char buf[48];
  snprintf(buf, sizeof buf, "%.9ef", static_cast<double>(v));
  return buf;
}

/// A double literal that parses back to exactly `v`.
std::string doubleLiteral(double v) {
  char buf[48];
  snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

/// `n` float literals separated by commas.
std::string floatTable(const float *v, int n) {
  std::string s;
  char buf[48];
  for (int i = 0; i < n; ++i) {
    snprintf(buf, sizeof buf, "%s%.9ef", i ? ", " : "", static_cast<double>(v[i]));
    s += buf;
  }
  return s;
}

int64_t roundUp(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

std::string nf4AbsmaxCode(int64_t n, int64_t k, int64_t blockSize, int64_t doubleQuantBlock,
                          const std::string &var, const std::string &indent,
                          std::string *tables) {
  *tables += "__constant__ float lora_nf4[16] = {" + floatTable(lorart::kNf4Codebook, 16) + "};\n";
  const int64_t codeBytes = n * k / 2;
  if (doubleQuantBlock <= 0)
    return indent + var + " = *(const float*)(wbytes + " + std::to_string(codeBytes) + " + 4 * blk);";
  *tables += "__constant__ float lora_dynamic8[256] = {" + floatTable(lorart::DynamicMap8(), 256) + "};\n";
  const int64_t blocks = n * k / blockSize;
  const int64_t groups = (blocks + doubleQuantBlock - 1) / doubleQuantBlock;
  // absmax' = dynamic[q]·absmax2 + offset, two roundings (no FMA).
  return subst(R"($I$$VAR$ = __fadd_rn(__fmul_rn(lora_dynamic8[wbytes[$CB$ + 4 * $G$ + 4 + blk]],
$I$                                   *(const float*)(wbytes + $CB$ + 4 * (blk / $DQ$))),
$I$                         *(const float*)(wbytes + $CB$ + 4 * $G$));)",
               {{"I", indent},
                {"VAR", var},
                {"CB", std::to_string(codeBytes)},
                {"DQ", std::to_string(doubleQuantBlock)},
                {"G", std::to_string(groups)}});
}

const char *basePrelude() {
  return R"(#include <cuda_bf16.h>
#include <cuda_fp16.h>
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif
#ifndef NAN
#define NAN __int_as_float(0x7fffffff)
#endif
__device__ __forceinline__ float lora_ld(const float* p, long i) { return p[i]; }
__device__ __forceinline__ float lora_ld(const __nv_bfloat16* p, long i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ float lora_ld(const __half* p, long i) { return __half2float(p[i]); }
__device__ __forceinline__ void lora_st(float* p, long i, float v) { p[i] = v; }
__device__ __forceinline__ void lora_st(__nv_bfloat16* p, long i, float v) { p[i] = __float2bfloat16(v); }
__device__ __forceinline__ void lora_st(__half* p, long i, float v) { p[i] = __float2half(v); }
// v rounded to the element type of p (the CPU backend's RoundTo).
__device__ __forceinline__ float lora_round(const float*, float v) { return v; }
__device__ __forceinline__ float lora_round(const __nv_bfloat16*, float v) { return __bfloat162float(__float2bfloat16(v)); }
__device__ __forceinline__ float lora_round(const __half*, float v) { return __half2float(__float2half(v)); }
)";
}

namespace {

const char *kMmaLayer = R"(#ifdef LORA_CUDA_SIM
#define LORA_DYNAMIC_SMEM(name) unsigned char* name = (unsigned char*)lora_sim::DynamicSmem()
__device__ __forceinline__ void lora_mma_bf16(float* d, const unsigned* a, const unsigned* b) { lora_sim::Mma16816(d, a, b, true); }
__device__ __forceinline__ void lora_ldsm_x4(unsigned* r, const void* p) { lora_sim::Ldmatrix(r, p, 4, false); }
__device__ __forceinline__ void lora_ldsm_x2(unsigned* r, const void* p) { lora_sim::Ldmatrix(r, p, 2, false); }
__device__ __forceinline__ void lora_ldsm_x4_trans(unsigned* r, const void* p) { lora_sim::Ldmatrix(r, p, 4, true); }
__device__ __forceinline__ void lora_cp16(void* s, const void* g, bool pred) { lora_sim::CpAsync16(s, g, pred); }
__device__ __forceinline__ void lora_cp_commit() {}
__device__ __forceinline__ void lora_cp_wait_all() { lora_sim::CpWaitAll(); }
#else
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif
#define LORA_DYNAMIC_SMEM(name) extern __shared__ __align__(16) unsigned char name[]
__device__ __forceinline__ void lora_mma_bf16(float* d, const unsigned* a, const unsigned* b) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
__device__ __forceinline__ void lora_ldsm_x4(unsigned* r, const void* p) {
  const unsigned s = (unsigned)__cvta_generic_to_shared(p);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s));
}
__device__ __forceinline__ void lora_ldsm_x2(unsigned* r, const void* p) {
  const unsigned s = (unsigned)__cvta_generic_to_shared(p);
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(s));
}
__device__ __forceinline__ void lora_ldsm_x4_trans(unsigned* r, const void* p) {
  const unsigned s = (unsigned)__cvta_generic_to_shared(p);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s));
}
// 16 bytes global -> shared, asynchronously; zero-filled when !pred.
__device__ __forceinline__ void lora_cp16(void* s, const void* g, bool pred) {
  const unsigned sa = (unsigned)__cvta_generic_to_shared(s);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(sa), "l"(g), "r"(pred ? 16 : 0));
}
__device__ __forceinline__ void lora_cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void lora_cp_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::); }
#endif
// One k16 step of a warp's MT x NT tile of m16n8 products. The A fragments
// of rows row0 + 16i, columns k..k+15 of a shared tile with row stride LDA
// (ATRANS: stored [k][row]); then acc[i][j] += A_i · B_j with B's columns
// col0 + 8j, rows k..k+15, from a tile stored [col][k] (BTRANS: [k][col]).
template <int MT, int LDA, bool ATRANS>
__device__ __forceinline__ void lora_load_a(unsigned (*af)[4], const __nv_bfloat16* a, int row0, int k) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int i = 0; i < MT; ++i) {
    if (ATRANS)
      lora_ldsm_x4_trans(af[i], a + (k + (lane % 8) + (lane / 16) * 8) * LDA + row0 + i * 16 + ((lane / 8) % 2) * 8);
    else
      lora_ldsm_x4(af[i], a + (row0 + i * 16 + (lane % 8) + ((lane / 8) % 2) * 8) * LDA + k + (lane / 16) * 8);
  }
}
template <int MT, int NT, int LDB, bool BTRANS>
__device__ __forceinline__ void lora_mma_b(float (*acc)[NT][4], const unsigned (*af)[4], const __nv_bfloat16* b,
                                           int col0, int k) {
  const int lane = threadIdx.x & 31;
  unsigned bf[NT][2];
#pragma unroll
  for (int j = 0; j < NT; j += 2) {
    unsigned r4[4];
    if (BTRANS)
      lora_ldsm_x4_trans(r4, b + (k + (lane % 8) + ((lane / 8) % 2) * 8) * LDB + col0 + j * 8 + (lane / 16) * 8);
    else
      lora_ldsm_x4(r4, b + (col0 + j * 8 + (lane % 8) + (lane / 16) * 8) * LDB + k + ((lane / 8) % 2) * 8);
    bf[j][0] = r4[0]; bf[j][1] = r4[1]; bf[j + 1][0] = r4[2]; bf[j + 1][1] = r4[3];
  }
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int j = 0; j < NT; ++j) lora_mma_bf16(acc[i][j], af[i], bf[j]);
}
// Dropout: the CPU backend's counter-based mask (lorart/cpu/kernel.h);
// key = DropoutKey(step seed, stream), the kernel's last argument.
__device__ __forceinline__ bool lora_keep(unsigned long long key, unsigned long long index, double p) {
  unsigned long long z = key ^ (index + 0x165667B19E3779F9ull);
  z ^= z >> 30; z *= 0xBF58476D1CE4E5B9ull;
  z ^= z >> 27; z *= 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (double)(z >> 11) * 0x1.0p-53 >= p;
}
__device__ __forceinline__ unsigned lora_pack_bf16(float lo, float hi) {
  return (unsigned)__bfloat16_as_ushort(__float2bfloat16(lo)) |
         ((unsigned)__bfloat16_as_ushort(__float2bfloat16(hi)) << 16);
}
__device__ __forceinline__ float lora_unpack_bf16(unsigned v, int hi) {
  return __bfloat162float(__ushort_as_bfloat16((unsigned short)(hi ? v >> 16 : v & 0xffffu)));
}
// The accumulators of a 64x64 tile computed by 4 warps of 32x32 (acc[2][4][4],
// m16n8 fragments): f(row, col, value) for each, row and column within the tile.
template <typename F>
__device__ __forceinline__ void lora_tile64_each(const float (&acc)[2][4][4], F f) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, wm = warp / 2, wn = warp % 2;
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c)
        f(wm * 32 + i * 16 + g + (c >= 2 ? 8 : 0), wn * 32 + j * 8 + 2 * t + (c & 1), acc[i][j][c]);
}
)";

} // namespace

const char *mmaPrelude() {
  static const std::string prelude = std::string(basePrelude()) + kMmaLayer;
  return prelude.c_str();
}

} // namespace lorac::cuda
