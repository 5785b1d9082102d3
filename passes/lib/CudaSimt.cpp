//===- CudaSimt.cpp - CUDA C++ templates on CUDA cores (any float type) --===//
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
#include "CudaGemm.h"

#include <map>

namespace mlir::lora::cuda {
namespace {

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

// ---------------------------------------------------------------------------
// y = x·Wᵀ (+ bias) (+ s·drop(x)·Aᵀ·Bᵀ)

const char *kGemmFwd = R"(
$TABLES$
// y[$M$, $N$] = x[$M$, $K$]·W[$N$, $K$]ᵀ$DOC$ on CUDA cores.
namespace {
constexpr long M = $M$, N = $N$, K = $K$, R = $R$;
$WFN$$XDFN$}  // namespace
$U_KERNEL$
extern "C" __global__ void __launch_bounds__(256, 1) $ENTRY$($PARAMS$) {
  const long n0 = blockIdx.x * 64L, m0 = blockIdx.y * 64L;
  float acc[4][4];
  lora_simt_zero(acc);
  lora_simt_tile(acc, [=](int r, long k) { return m0 + r < M ? lora_ld(x, (m0 + r) * K + k) : 0.f; },
                 [=](int c, long k) { return n0 + c < N ? lora_w(w, n0 + c, k) : 0.f; }, 0, K);
$ADAPTER$
  lora_simt_each(acc, [&](int r, int c, float v) {
    if (m0 + r < M && n0 + c < N) lora_st(y, (m0 + r) * N + n0 + c, v$BIAS_ADD$);
  });
}
)";

// u = s·drop(x)·Aᵀ [M, R] (f32 in the workspace, rounded as the operand of
// the product with B), one 64x64 tile per block.
const char *kGemmFwdU = R"(
extern "C" __global__ void __launch_bounds__(256, 1) $ENTRY$_u($PARAMS$) {
  const long c0 = blockIdx.x * 64L, m0 = blockIdx.y * 64L;
$KEY$  float* u = (float*)ws_;
  float acc[4][4];
  lora_simt_zero(acc);
  lora_simt_tile(acc, [=](int r, long k) { return m0 + r < M ? lora_xd(x, (m0 + r) * K + k, key) : 0.f; },
                 [=](int c, long k) { return c0 + c < R ? lora_ld(a_, (c0 + c) * K + k) : 0.f; }, 0, K);
  lora_simt_each(acc, [&](int r, int c, float v) {
    if (m0 + r < M && c0 + c < R) u[(m0 + r) * R + c0 + c] = lora_opnd(b_, $S$ * v);
  });
}
)";

const char *kGemmFwdAdapter = R"(  {  // + u·Bᵀ into the same accumulators
    const float* u = (const float*)ws_;
    lora_simt_tile(acc, [=](int r, long j) { return m0 + r < M ? u[(m0 + r) * R + j] : 0.f; },
                   [=](int c, long j) { return n0 + c < N ? lora_ld(b_, (n0 + c) * R + j) : 0.f; }, 0, R);
  })";

} // namespace

std::optional<Source> emitSimtGemmFwd(const GemmFwd &g, std::string *why) {
  if (!floatType(g.xType) || !floatType(g.yType) || (g.bias && !floatType(g.biasType)) ||
      (g.rank && (!floatType(g.aType) || !floatType(g.bType)))) {
    *why = "an operand is not float, bf16 or f16";
    return std::nullopt;
  }
  const bool drop = g.rank > 0 && g.dropout > 0;
  Source s;
  s.entry = "lora_simt_gemm_fwd_" + tag(g.xType) + "_m" + std::to_string(g.m) + "_n" +
            std::to_string(g.n) + "_k" + std::to_string(g.k) +
            weightTag(g.wNf4, g.blockSize, g.doubleQuantBlock, "") + (g.bias ? "_bias" : "") + (g.rank ? "_r" + std::to_string(g.rank) : "") +
            (drop ? "_drop" : "") + "_y" + tag(g.yType);
  const std::string wType = g.wNf4 ? "unsigned char" : g.xType;
  std::string params = "const " + g.xType + "* __restrict__ x, const " + wType + "* __restrict__ w";
  if (g.bias)
    params += ", const " + g.biasType + "* __restrict__ bias";
  if (g.rank)
    params += ", const " + g.aType + "* __restrict__ a_, const " + g.bType + "* __restrict__ b_";
  params += ", " + g.yType + "* __restrict__ y";
  if (g.rank)
    params += ", void* __restrict__ ws_";
  if (drop)
    params += ", const unsigned long long* __restrict__ key_";
  std::string tables;
  std::string wfn = weightFunction(g.wNf4, g.n, g.k, g.blockSize, g.doubleQuantBlock, wType, g.xType, &tables);
  auto v = productVars(g.m, g.n, g.k, g.rank, g.scaling, drop, wfn,
                       g.rank ? dropFunction(g.xType, drop ? g.dropout : 0) : "", tables);
  v["ENTRY"] = s.entry;
  v["PARAMS"] = params;
  v["DOC"] = std::string(g.bias ? " + bias" : "") +
             (g.rank ? " + (" + floatLiteral(static_cast<float>(g.scaling)) + "·" +
                           (drop ? "drop(x)" : "x") + "·Aᵀ)·Bᵀ"
                     : "");
  v["BIAS_ADD"] = g.bias ? " + lora_ld(bias, n0 + c)" : "";
  v["ADAPTER"] = g.rank ? kGemmFwdAdapter : "";
  v["U_KERNEL"] = g.rank ? subst(kGemmFwdU, v) : "";
  s.code = std::string(mmaPrelude()) + kSimtPrelude + subst(kGemmFwd, v);
  s.grid = tiles(g.n);
  s.gridY = tiles(g.m);
  s.block = 256;
  if (g.rank) {
    // _u first (the adapter's first product), then the main launch.
    s.workspace = g.m * g.rank * 4;
    Step main{s.entry, s.grid, s.gridY, 1, 256, 0};
    s.next.push_back(main);
    s.entry += "_u";
    s.grid = tiles(g.rank);
  }
  return s;
}

namespace {

// ---------------------------------------------------------------------------
// The linear backward: u = drop(x)·Aᵀ, g = dy·B (f32, workspace),
// db = s·dyᵀ·u, da = s·gᵀ·drop(x), dx = dy·deq(W) + s·drop'(g·A).

const char *kLinearBwd = R"(
$TABLES$
// Linear backward on CUDA cores: m=$M$ n=$N$ k=$K$ rank=$R$, scaling $S$.
namespace {
constexpr long M = $M$, N = $N$, K = $K$, R = $R$;
$WFN$$XDFN$}  // namespace
$ADAPTER_KERNELS$
// dx = dy·deq(W)$DX_DOC$, rounded once.
extern "C" __global__ void __launch_bounds__(256, 1) $BASE$_dx($PARAMS$) {
  const long k0 = blockIdx.x * 64L, m0 = blockIdx.y * 64L;
$KEY$  float acc[4][4], acc2[4][4];
  lora_simt_zero(acc);
  lora_simt_zero(acc2);
$DX_W$$DX_G$  lora_simt_each2(acc, acc2, [&](int r, int c, float v, float a2) {
    if (m0 + r >= M || k0 + c >= K) return;
    const long e = (m0 + r) * K + k0 + c;
$DX_COMBINE$    lora_st(dx, e, v);
  });
  (void)key;
}
)";

const char *kDxW = R"(  lora_simt_tile(acc, [=](int r, long j) { return m0 + r < M ? lora_opnd((const $WOPND$*)0, lora_ld(dy, (m0 + r) * N + j)) : 0.f; },
                 [=](int c, long j) { return k0 + c < K ? lora_w(w, j, k0 + c) : 0.f; }, 0, N);
)";

const char *kDxG = R"(  {
    const float* g = (const float*)ws_ + M * R;
    lora_simt_tile(acc2, [=](int r, long j) { return m0 + r < M ? lora_opnd(a_, g[(m0 + r) * R + j]) : 0.f; },
                   [=](int c, long j) { return k0 + c < K ? lora_ld(a_, j * K + k0 + c) : 0.f; }, 0, R);
  }
)";

const char *kAdapterBwd = R"(
// u = drop(x)·Aᵀ (blockIdx.z 0) and g = dy·B (1), f32, into the workspace.
extern "C" __global__ void __launch_bounds__(256, 1) $BASE$_ug($PARAMS$) {
  const long c0 = blockIdx.x * 64L, m0 = blockIdx.y * 64L;
$KEY$  float* out = (float*)ws_ + blockIdx.z * M * R;
  float acc[4][4];
  lora_simt_zero(acc);
  if (blockIdx.z == 0)
    lora_simt_tile(acc, [=](int r, long k) { return m0 + r < M ? lora_xd(x, (m0 + r) * K + k, key) : 0.f; },
                   [=](int c, long k) { return c0 + c < R ? lora_ld(a_, (c0 + c) * K + k) : 0.f; }, 0, K);
  else
    lora_simt_tile(acc, [=](int r, long j) { return m0 + r < M ? lora_opnd(b_, lora_ld(dy, (m0 + r) * N + j)) : 0.f; },
                   [=](int c, long j) { return c0 + c < R ? lora_ld(b_, j * R + c0 + c) : 0.f; }, 0, N);
  lora_simt_each(acc, [&](int r, int c, float v) {
    if (m0 + r < M && c0 + c < R) out[(m0 + r) * R + c0 + c] = v;
  });
}

// db[n, c] = s·Σ_m dy[m, n]·u[m, c], m in order.
extern "C" __global__ void __launch_bounds__(256, 1) $BASE$_db($PARAMS$) {
  const long c0 = blockIdx.x * 64L, n0 = blockIdx.y * 64L;
  const float* u = (const float*)ws_;
  float acc[4][4];
  lora_simt_zero(acc);
  lora_simt_tile(acc, [=](int r, long m) { return n0 + r < N ? lora_ld(dy, m * N + n0 + r) : 0.f; },
                 [=](int c, long m) { return c0 + c < R ? lora_opnd(dy, u[m * R + c0 + c]) : 0.f; }, 0, M);
  lora_simt_each(acc, [&](int r, int c, float v) {
    if (n0 + r < N && c0 + c < R) lora_st(db, (n0 + r) * R + c0 + c, $S$ * v);
  });
}

// da[c, k] = s·Σ_m g[m, c]·drop(x)[m, k], m in order.
extern "C" __global__ void __launch_bounds__(256, 1) $BASE$_da($PARAMS$) {
  const long k0 = blockIdx.x * 64L, c0 = blockIdx.y * 64L;
$KEY$  const float* g = (const float*)ws_ + M * R;
  float acc[4][4];
  lora_simt_zero(acc);
  lora_simt_tile(acc, [=](int r, long m) { return c0 + r < R ? lora_opnd(x, g[m * R + c0 + r]) : 0.f; },
                 [=](int c, long m) { return k0 + c < K ? lora_xd(x, m * K + k0 + c, key) : 0.f; }, 0, M);
  lora_simt_each(acc, [&](int r, int c, float v) {
    if (c0 + r < R && k0 + c < K) lora_st(da, (c0 + r) * K + k0 + c, $S$ * v);
  });
}
)";

} // namespace

std::optional<Source> emitSimtLinearBwd(const LinearBwd &g, std::string *why) {
  const bool adapter = g.rank > 0;
  if (!floatType(g.dyType) || !floatType(g.dxType) ||
      (adapter && (!floatType(g.xType) || !floatType(g.daType) || !floatType(g.dbType) ||
                   !floatType(g.aType) || !floatType(g.bType))) ||
      (g.hasW && !g.wNf4 && !floatType(g.wType))) {
    *why = "an operand is not float, bf16 or f16";
    return std::nullopt;
  }
  if (!g.hasW && !adapter) {
    *why = "neither a weight nor an adapter";
    return std::nullopt;
  }
  const bool drop = adapter && g.dropout > 0;
  const std::string wType = g.wNf4 ? "unsigned char" : g.wType;
  std::string base = "lora_simt_linear_bwd_" + tag(g.dyType) + "_m" + std::to_string(g.m) + "_n" +
                     std::to_string(g.n) + "_k" + std::to_string(g.k) +
                     (g.hasW ? weightTag(g.wNf4, g.blockSize, g.doubleQuantBlock, "_w") : "") +
                     (adapter ? "_r" + std::to_string(g.rank) : "") + (drop ? "_drop" : "");
  std::string params = "const " + g.dyType + "* __restrict__ dy";
  if (adapter)
    params += ", const " + g.xType + "* __restrict__ x";
  if (g.hasW)
    params += ", const " + wType + "* __restrict__ w";
  if (adapter)
    params += ", const " + g.aType + "* __restrict__ a_, const " + g.bType + "* __restrict__ b_";
  params += ", " + g.dxType + "* __restrict__ dx";
  if (adapter)
    params += ", " + g.daType + "* __restrict__ da, " + g.dbType + "* __restrict__ db, void* __restrict__ ws_";
  if (drop)
    params += ", const unsigned long long* __restrict__ key_";

  std::string tables;
  std::string wfn = g.hasW ? weightFunction(g.wNf4, g.n, g.k, g.blockSize, g.doubleQuantBlock,
                                            wType, g.dyType, &tables)
                           : "";
  auto v = productVars(g.m, g.n, g.k, g.rank, g.scaling, drop, wfn,
                       adapter ? dropFunction(g.xType, drop ? g.dropout : 0) : "", tables);
  v["BASE"] = base;
  v["PARAMS"] = params;
  v["ADAPTER_KERNELS"] = adapter ? subst(kAdapterBwd, v) : "";
  // dy meets a dense bf16 W rounded to bf16 (an f32 dy: the LM head under
  // DPO); an NF4 W's tile is bf16 only when dy is.
  v["WOPND"] = g.wNf4 ? "float" : wType;
  v["DX_W"] = g.hasW ? subst(kDxW, v) : "";
  v["DX_G"] = adapter ? kDxG : "";
  v["DX_DOC"] = adapter ? std::string(" + s·") + (drop ? "drop'" : "") + "(g·A)" : "";
  if (!adapter) {
    v["DX_COMBINE"] = "";
  } else {
    // The CPU's InputGradient: s·g·A accumulated onto the product (beta 1),
    // or with dropout (s/(1-p))·g·A masked and added.
    const float s = static_cast<float>(g.scaling);
    const float sInv = drop ? s * static_cast<float>(1.0 / (1.0 - g.dropout)) : s;
    v["DX_COMBINE"] =
        drop ? "    const float t = " + floatLiteral(sInv) + " * a2;\n    v += lora_keep(key, (unsigned long long)e, " +
                   doubleLiteral(g.dropout) + ") ? t : 0.f;\n"
             : "    v = fmaf(" + floatLiteral(s) + ", a2, v);\n";
    if (!g.hasW)
      v["DX_COMBINE"] = drop ? "    const float t = " + floatLiteral(sInv) + " * a2;\n    v = lora_keep(key, (unsigned long long)e, " +
                                   doubleLiteral(g.dropout) + ") ? t : 0.f;\n"
                             : "    v = " + floatLiteral(s) + " * a2;\n";
  }
  Source s;
  s.code = std::string(mmaPrelude()) + kSimtPrelude + subst(kLinearBwd, v);
  // _ug, _db, _da, then _dx (dx may be read by nothing earlier, but it comes
  // last as in the tensor-core template).
  if (adapter) {
    s.entry = base + "_ug";
    s.grid = tiles(g.rank);
    s.gridY = tiles(g.m);
    s.gridZ = 2;
    s.next.push_back({base + "_db", tiles(g.rank), tiles(g.n), 1, 256, 0});
    s.next.push_back({base + "_da", tiles(g.k), tiles(g.rank), 1, 256, 0});
    s.next.push_back({base + "_dx", tiles(g.k), tiles(g.m), 1, 256, 0});
    s.workspace = 2 * g.m * g.rank * 4;
  } else {
    s.entry = base + "_dx";
    s.grid = tiles(g.k);
    s.gridY = tiles(g.m);
  }
  s.block = 256;
  return s;
}

std::optional<Source> emitSimtLinearBwdW(int64_t m, int64_t n, int64_t k, const std::string &dyType,
                                         const std::string &xType, const std::string &dwType,
                                         std::string *why) {
  if (!floatType(dyType) || !floatType(xType) || !floatType(dwType)) {
    *why = "an operand is not float, bf16 or f16";
    return std::nullopt;
  }
  Source s;
  s.entry = "lora_simt_linear_bwd_w_" + tag(dyType) + "_m" + std::to_string(m) + "_n" +
            std::to_string(n) + "_k" + std::to_string(k) + "_" + tag(dwType);
  s.code = std::string(mmaPrelude()) + kSimtPrelude +
           subst(R"(
// dw[$N$, $K$] = dyᵀ·x over m = $M$ in order, on CUDA cores.
extern "C" __global__ void __launch_bounds__(256, 1) $ENTRY$(const $DY$* __restrict__ dy, const $X$* __restrict__ x, $DW$* __restrict__ dw) {
  constexpr long M = $M$, N = $N$, K = $K$;
  const long k0 = blockIdx.x * 64L, n0 = blockIdx.y * 64L;
  float acc[4][4];
  lora_simt_zero(acc);
  lora_simt_tile(acc, [=](int r, long i) { return n0 + r < N ? lora_ld(dy, i * N + n0 + r) : 0.f; },
                 [=](int c, long i) { return k0 + c < K ? lora_ld(x, i * K + k0 + c) : 0.f; }, 0, M);
  lora_simt_each(acc, [&](int r, int c, float v) {
    if (n0 + r < N && k0 + c < K) lora_st(dw, (n0 + r) * K + k0 + c, v);
  });
}
)",
                 {{"ENTRY", s.entry},
                  {"M", std::to_string(m)},
                  {"N", std::to_string(n)},
                  {"K", std::to_string(k)},
                  {"DY", dyType},
                  {"X", xType},
                  {"DW", dwType}});
  s.grid = tiles(k);
  s.gridY = tiles(n);
  s.block = 256;
  return s;
}

namespace {

// ---------------------------------------------------------------------------
// The LM-head cross-entropy: logits tiles x·Wᵀ, never a [tokens, vocab]
// matrix in the forward; per chunk of C tokens in the backward.

const char *kLmHeadCommon = R"(
// LM-head cross-entropy on CUDA cores: tokens $T$, hidden $D$, vocab $V$.
namespace {
constexpr long T = $T$, D = $D$, V = $V$;
// The logits tile of rows m0.., vocabulary entries v0.. (64 each).
__device__ __forceinline__ void lora_logits(float (&acc)[4][4], const $X$* x, const $W$* w, long m0, long v0) {
  lora_simt_zero(acc);
  lora_simt_tile(acc, [=](int r, long k) { return m0 + r < T ? lora_ld(x, (m0 + r) * D + k) : 0.f; },
                 [=](int c, long k) { return v0 + c < V ? lora_ld(w, (v0 + c) * D + k) : 0.f; }, 0, D);
}
// Each of the 64 rows from m0 (threads 0..63, one row each): the logsumexp
// over the vocabulary (online, tile by tile through shared memory) and the
// logit of the row's target (any value outside [0, V) picks nothing).
__device__ __forceinline__ void lora_rows_lse(const $X$* x, const $W$* w, long m0, long tgt, float* lse, float* tl) {
  __shared__ float st[64][65];
  float mrow = -INFINITY, lrow = 0.f;
  *tl = 0.f;
  for (long v0 = 0; v0 < V; v0 += 64) {
    float acc[4][4];
    lora_logits(acc, x, w, m0, v0);
    lora_simt_each(acc, [&](int r, int c, float v) { st[r][c] = v; });
    __syncthreads();
    if (threadIdx.x < 64) {
      const int r = threadIdx.x;
      const int n = V - v0 < 64 ? (int)(V - v0) : 64;
      float mx = -INFINITY;
      for (int c = 0; c < n; ++c) {
        mx = fmaxf(mx, st[r][c]);
        if (v0 + c == tgt) *tl = st[r][c];
      }
      const float mnew = fmaxf(mrow, mx);
      if (mnew != -INFINITY) {
        lrow *= __expf(mrow - mnew);
        for (int c = 0; c < n; ++c) lrow += __expf(st[r][c] - mnew);
        mrow = mnew;
      }
    }
    __syncthreads();
  }
  *lse = mrow + logf(lrow);
}
}  // namespace
)";

const char *kLmHeadFwd = R"(
extern "C" __global__ void __launch_bounds__(256, 1) $BASE$_rows($PARAMS$) {
  const long m0 = blockIdx.x * 64L, row = m0 + threadIdx.x;
  double* loss_ws = (double*)ws_;
  const long tgt = threadIdx.x < 64 && row < T ? (long)targets[row] : -1;
  float lse, tl;
  lora_rows_lse(x, w, m0, tgt, &lse, &tl);
  if (threadIdx.x < 64 && row < T) loss_ws[row] = mask[row] ? (double)lse - (double)tl : 0.0;
}
)";

// The backward's launches: _lse (each row's logsumexp into the workspace),
// then per chunk _dl_c<i> (the chunk's dlogits dloss·softmax − dloss·onehot
// in f32, the CPU's SoftmaxGrad; zero for masked-out rows) and the product.
const char *kLmHeadBwd = R"(
namespace {
constexpr long C = $C$;
}  // namespace
extern "C" __global__ void __launch_bounds__(256, 1) $BASE$_lse($PARAMS$) {
  const long m0 = blockIdx.x * 64L, row = m0 + threadIdx.x;
  float lse, tl;
  lora_rows_lse(x, w, m0, -1, &lse, &tl);
  if (threadIdx.x < 64 && row < T) ((float*)ws_)[row] = lse;
}

// dlogits of rows [c0, c0 + C) into the workspace (row stride V).
__device__ __forceinline__ void lora_dl(const $X$* x, const $W$* w, const $TT$* targets, const unsigned char* mask,
                                        const float* dloss, void* ws_, long c0) {
  const long v0 = blockIdx.x * 64L, m0 = c0 + blockIdx.y * 64L;
  const float* lse = (const float*)ws_;
  float* dl = (float*)ws_ + T;
  float acc[4][4];
  lora_logits(acc, x, w, m0, v0);
  const float scale = dloss[0];
  lora_simt_each(acc, [&](int r, int c, float v) {
    const long row = m0 + r, col = v0 + c;
    if (row >= T || row >= c0 + C || col >= V) return;
    float g = 0.f;
    if (mask[row]) {
      const float l = lse[row];
      g = isfinite(l) ? scale * __expf(v - l) - (col == (long)targets[row] ? scale : 0.f) : NAN;
    }
    dl[(row - c0) * V + col] = lora_opnd(($OPND$*)0, g);
  });
}
$PRODUCT$
)";

const char *kLmHeadDx = R"(
// dx of rows [c0, c0 + C) = dlogits·W over the vocabulary.
__device__ __forceinline__ void lora_dx(const $W$* w, $DX$* dx, const void* ws_, long c0) {
  const long k0 = blockIdx.x * 64L, m0 = blockIdx.y * 64L;  // m0: row within the chunk
  const long rows = T - c0 < C ? T - c0 : C;
  const float* dl = (const float*)ws_ + T;
  float acc[4][4];
  lora_simt_zero(acc);
  lora_simt_tile(acc, [=](int r, long j) { return m0 + r < rows ? dl[(m0 + r) * V + j] : 0.f; },
                 [=](int c, long j) { return k0 + c < D ? lora_ld(w, j * D + k0 + c) : 0.f; }, 0, V);
  lora_simt_each(acc, [&](int r, int c, float v) {
    if (m0 + r < rows && k0 + c < D) lora_st(dx, (c0 + m0 + r) * D + k0 + c, v);
  });
}
)";

// dw (+)= dlogitsᵀ·x of the chunk, summed over the chunks in f32: in dw
// itself when it is f32, else in an f32 copy after the dlogits that the last
// chunk rounds into dw.
const char *kLmHeadDw = R"(
__device__ __forceinline__ void lora_dw(const $X$* x, $DW$* dw, void* ws_, long c0, bool first, bool last) {
  const long d0 = blockIdx.x * 64L, v0 = blockIdx.y * 64L;
  const long rows = T - c0 < C ? T - c0 : C;
  const float* dl = (const float*)ws_ + T;
  float* sum = $SUM$;
  float acc[4][4];
  lora_simt_zero(acc);
  lora_simt_tile(acc, [=](int r, long i) { return v0 + r < V ? dl[i * V + v0 + r] : 0.f; },
                 [=](int c, long i) { return d0 + c < D ? lora_ld(x, (c0 + i) * D + d0 + c) : 0.f; }, 0, rows);
  lora_simt_each(acc, [&](int r, int c, float v) {
    if (v0 + r >= V || d0 + c >= D) return;
    const long e = (v0 + r) * D + d0 + c;
    if (!first) v += sum ? sum[e] : lora_ld(dw, e);
    if (sum && !last) sum[e] = v;
    else lora_st(dw, e, v);
  });
}
)";

} // namespace

static std::string lmHeadParams(const LmHeadCe &l, bool bwd, const std::string &outType) {
  std::string p = "const " + l.xType + "* __restrict__ x, const " + l.wType + "* __restrict__ w, const " +
                  l.targetType + "* __restrict__ targets, const unsigned char* __restrict__ mask";
  if (!bwd)
    return p + ", float* __restrict__ loss_sum, long long* __restrict__ count_, void* __restrict__ ws_";
  return p + ", const float* __restrict__ dloss, " + outType + "* __restrict__ out_, void* __restrict__ ws_";
}

static std::map<std::string, std::string> lmHeadVars(const LmHeadCe &l, const std::string &base) {
  return {{"T", std::to_string(l.tokens)}, {"D", std::to_string(l.hidden)},
          {"V", std::to_string(l.vocab)},  {"X", l.xType},
          {"W", l.wType},                  {"TT", l.targetType},
          {"BASE", base}};
}

std::optional<Source> emitSimtLmHeadCeFwd(const LmHeadCe &l, std::string *why) {
  if (!floatType(l.xType) || !floatType(l.wType)) {
    *why = "an operand is not float, bf16 or f16";
    return std::nullopt;
  }
  const std::string base = "lora_simt_lm_head_ce_fwd_" + tag(l.xType) + "_t" + std::to_string(l.tokens) +
                           "_d" + std::to_string(l.hidden) + "_v" + std::to_string(l.vocab);
  auto v = lmHeadVars(l, base);
  v["PARAMS"] = lmHeadParams(l, false, "");
  Source s;
  s.code = std::string(mmaPrelude()) + kSimtPrelude + subst(kLmHeadCommon, v) + subst(kLmHeadFwd, v) +
           subst(lmHeadSumKernel(), v);
  s.entry = base + "_rows";
  s.grid = tiles(l.tokens);
  s.block = 256;
  s.next.push_back({base + "_sum", 1, 1, 1, 32, 0});
  s.workspace = l.tokens * 8;
  return s;
}

static std::optional<Source> lmHeadBwd(const LmHeadCe &l, int64_t chunk, const std::string &outType,
                                       bool weight, std::string *why) {
  if (!floatType(l.xType) || !floatType(l.wType) || !floatType(outType)) {
    *why = "an operand is not float, bf16 or f16";
    return std::nullopt;
  }
  if (chunk <= 0 || l.tokens <= 0) {
    *why = "chunk size and tokens must be positive";
    return std::nullopt;
  }
  chunk = std::min(chunk, l.tokens);
  const int64_t chunks = (l.tokens + chunk - 1) / chunk;
  const std::string base = std::string("lora_simt_lm_head_ce_bwd_") + (weight ? "w_" : "x_") +
                           tag(l.xType) + "_t" + std::to_string(l.tokens) + "_d" +
                           std::to_string(l.hidden) + "_v" + std::to_string(l.vocab) + "_c" +
                           std::to_string(chunk) + "_" + tag(outType);
  auto v = lmHeadVars(l, base);
  v["PARAMS"] = lmHeadParams(l, true, outType);
  v["C"] = std::to_string(chunk);
  v["DX"] = v["DW"] = outType;
  // dlogits meet W (dx) or x (dw) in the next product.
  v["OPND"] = weight ? l.xType : l.wType;
  // A non-f32 dw over several chunks sums in an f32 copy after the dlogits.
  const bool copy = weight && outType != "float" && chunks > 1;
  v["SUM"] = copy ? "(float*)ws_ + T + C * V" : "(float*)nullptr";
  v["PRODUCT"] = weight ? subst(kLmHeadDw, v) : subst(kLmHeadDx, v);
  std::string kernels;
  Source s;
  s.entry = base + "_lse";
  s.grid = tiles(l.tokens);
  s.block = 256;
  for (int64_t i = 0; i < chunks; ++i) {
    const int64_t c0 = i * chunk, rows = std::min(chunk, l.tokens - c0);
    const std::string dl = base + "_dl_c" + std::to_string(i), prod = base + (weight ? "_dw_c" : "_dx_c") + std::to_string(i);
    kernels += "extern \"C\" __global__ void __launch_bounds__(256, 1) " + dl + "(" + v["PARAMS"] +
               ") { lora_dl(x, w, targets, mask, dloss, ws_, " + std::to_string(c0) + "L); }\n";
    if (weight)
      kernels += "extern \"C\" __global__ void __launch_bounds__(256, 1) " + prod + "(" + v["PARAMS"] +
                 ") { lora_dw(x, out_, ws_, " + std::to_string(c0) + "L, " + (i == 0 ? "true" : "false") +
                 ", " + (i + 1 == chunks ? "true" : "false") + "); }\n";
    else
      kernels += "extern \"C\" __global__ void __launch_bounds__(256, 1) " + prod + "(" + v["PARAMS"] +
                 ") { lora_dx(w, out_, ws_, " + std::to_string(c0) + "L); }\n";
    s.next.push_back({dl, tiles(l.vocab), tiles(rows), 1, 256, 0});
    if (weight)
      s.next.push_back({prod, tiles(l.hidden), tiles(l.vocab), 1, 256, 0});
    else
      s.next.push_back({prod, tiles(l.hidden), tiles(rows), 1, 256, 0});
  }
  s.code = std::string(mmaPrelude()) + kSimtPrelude + subst(kLmHeadCommon, v) + subst(kLmHeadBwd, v) + kernels;
  s.workspace = l.tokens * 4 + chunk * l.vocab * 4 + (copy ? l.vocab * l.hidden * 4 : 0);
  return s;
}

std::optional<Source> emitSimtLmHeadCeBwdX(const LmHeadCe &l, int64_t chunk, std::string *why) {
  return lmHeadBwd(l, chunk, l.dxType, false, why);
}

std::optional<Source> emitSimtLmHeadCeBwdW(const LmHeadCe &l, int64_t chunk, const std::string &dwType,
                                           std::string *why) {
  return lmHeadBwd(l, chunk, dwType, true, why);
}

namespace {

// ---------------------------------------------------------------------------
// Attention: one warp per query row (forward, dQ) or key row (dK, dV).

const char *kAttnCommon = R"(
// Attention on CUDA cores: batch $B$, seq $T$, heads $H$ (kv $KV$), head_dim $D$, scale $SCALE$$MASKDOC$.
namespace {
constexpr long B = $B$, T = $T$, H = $H$, KV = $KV$, D = $D$, G = H / KV, WIN = $WIN$;
constexpr int DL = (D + 31) / 32;  // head dimensions per lane: lane + 32·t
constexpr bool CAUSAL = $CAUSAL$;
constexpr float SCALE = $SCALE$;
__device__ __forceinline__ long lora_qoff(long b, long t, long h) { return ((b * T + t) * H + h) * D; }
__device__ __forceinline__ long lora_koff(long b, long t, long kv) { return ((b * T + t) * KV + kv) * D; }
// Keys [lo, hi) that query i can reach (the causal / window band).
__device__ __forceinline__ void lora_key_range(long i, long* lo, long* hi) {
  *hi = CAUSAL ? i + 1 : T;
  *lo = WIN > 0 ? (i - WIN + 1 > 0 ? i - WIN + 1 : 0) : 0;
}
// Queries [lo, hi) that reach key j.
__device__ __forceinline__ void lora_query_range(long j, long* lo, long* hi) {
  *lo = CAUSAL ? j : 0;
  *hi = WIN > 0 ? (j + WIN < T ? j + WIN : T) : T;
}
__device__ __forceinline__ float lora_warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float lora_warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
// A dot product of a row in shared memory (f32) with a row of a tensor.
template <class TP>
__device__ __forceinline__ float lora_dot(const float* s, const TP* p, long off) {
  float acc = 0.f;
  for (long d = 0; d < D; ++d) acc = fmaf(s[d], lora_ld(p, off + d), acc);
  return acc;
}
$SEGFN$
// The forward of query i of head h (this warp): running max m, sum l and the
// unnormalized output o (lane's dimensions), queries pre-scaled in qs.
__device__ __forceinline__ void lora_attn_row(const $TY$* k, const $TY$* v, const $SEGT$* seg, long b, long h, long i,
                                              const float* qs, float* ps, float* m_, float* l_, float (&o)[DL]) {
  const int lane = threadIdx.x & 31;
  const long kvh = h / G;
  long lo, hi;
  lora_key_range(i, &lo, &hi);
  float m = -INFINITY, l = 0.f;
  for (int t = 0; t < DL; ++t) o[t] = 0.f;
  for (long j0 = lo; j0 < hi; j0 += 32) {
    const long j = j0 + lane;
    const bool ok = j < hi && lora_same_segment(seg, b, i, j);
    const float s = ok ? lora_dot(qs, k, lora_koff(b, j, kvh)) : -INFINITY;
    const float mx = lora_warp_max(s);
    if (mx == -INFINITY) continue;  // no allowed key in these 32
    const float mnew = fmaxf(m, mx), alpha = __expf(m - mnew);
    const float p = ok ? __expf(s - mnew) : 0.f;
    l = l * alpha + lora_warp_sum(p);
    ps[lane] = p;
    __syncwarp();
    const long n = hi - j0 < 32 ? hi - j0 : 32;
    for (int t = 0; t < DL; ++t) {
      const long d = lane + 32 * t;
      float acc = o[t] * alpha;
      if (d < D)
        for (long jj = 0; jj < n; ++jj) acc = fmaf(ps[jj], lora_ld(v, lora_koff(b, j0 + jj, kvh) + d), acc);
      o[t] = acc;
    }
    __syncwarp();
    m = mnew;
  }
  *m_ = m;
  *l_ = l;
}
}  // namespace
)";

const char *kAttnFwd = R"(
// o[b, i, h] for 8 query rows per block (one per warp): grid (T/8, H, B).
extern "C" __global__ void __launch_bounds__(256, 1) $ENTRY$(const $TY$* __restrict__ q, const $TY$* __restrict__ k, const $TY$* __restrict__ v$SEGP$, $TY$* __restrict__ out) {
  __shared__ float qs_[8][D], ps_[8][32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const long i = blockIdx.x * 8L + warp, h = blockIdx.y, b = blockIdx.z;
  if (i >= T) return;  // the whole warp
  float* qs = qs_[warp];
  for (long d = lane; d < D; d += 32) qs[d] = lora_ld(q, lora_qoff(b, i, h) + d) * SCALE;
  __syncwarp();
  float m, l, o[DL];
  lora_attn_row(k, v, $SEGA$, b, h, i, qs, ps_[warp], &m, &l, o);
  const float inv = l > 0.f ? 1.f / l : 0.f;
  for (int t = 0; t < DL; ++t) {
    const long d = lane + 32 * t;
    if (d < D) lora_st(out, lora_qoff(b, i, h) + d, o[t] * inv);
  }
}
)";

const char *kAttnBwd = R"(
// Pass A: per query row, the forward again for L = m + log l (+inf without
// an allowed key: zero gradients) and Dd = rowsum(dO∘O) into the
// workspace, then dQ = scale·Σ_j dS_ij·k_j with P = exp(s − L),
// dP = dO·v_j, dS = P·(dP − Dd). Grid (T/8, H, B).
extern "C" __global__ void __launch_bounds__(256, 1) $BASE$_dq($PARAMS$) {
  __shared__ float qs_[8][D], dos_[8][D], ps_[8][32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const long i = blockIdx.x * 8L + warp, h = blockIdx.y, b = blockIdx.z;
  if (i >= T) return;
  float* qs = qs_[warp];
  float* dos = dos_[warp];
  float* ps = ps_[warp];
  const long qo = lora_qoff(b, i, h);
  for (long d = lane; d < D; d += 32) {
    qs[d] = lora_ld(q, qo + d) * SCALE;
    dos[d] = lora_ld(dout, qo + d);
  }
  __syncwarp();
  float m, l, o[DL];
  lora_attn_row(k, v, $SEGA$, b, h, i, qs, ps, &m, &l, o);
  float dd = 0.f;
  const float inv = l > 0.f ? 1.f / l : 0.f;
  for (int t = 0; t < DL; ++t) {
    const long d = lane + 32 * t;
    if (d < D) dd = fmaf(dos[d], o[t] * inv, dd);
  }
  dd = lora_warp_sum(dd);
  const float L = l > 0.f ? m + logf(l) : INFINITY;
  float* ws = (float*)ws_;
  const long row = (b * H + h) * T + i;
  if (lane == 0) {
    ws[row] = L;
    ws[B * H * T + row] = dd;
  }
  const long kvh = h / G;
  long lo, hi;
  lora_key_range(i, &lo, &hi);
  float dq[DL];
  for (int t = 0; t < DL; ++t) dq[t] = 0.f;
  for (long j0 = lo; j0 < hi && L != INFINITY; j0 += 32) {
    const long j = j0 + lane;
    float ds = 0.f;
    if (j < hi && lora_same_segment($SEGA$, b, i, j)) {
      const float p = __expf(lora_dot(qs, k, lora_koff(b, j, kvh)) - L);
      ds = p * (lora_dot(dos, v, lora_koff(b, j, kvh)) - dd);
    }
    __syncwarp();
    ps[lane] = ds;
    __syncwarp();
    const long n = hi - j0 < 32 ? hi - j0 : 32;
    for (int t = 0; t < DL; ++t) {
      const long d = lane + 32 * t;
      if (d < D)
        for (long jj = 0; jj < n; ++jj) dq[t] = fmaf(ps[jj], lora_ld(k, lora_koff(b, j0 + jj, kvh) + d), dq[t]);
    }
  }
  for (int t = 0; t < DL; ++t) {
    const long d = lane + 32 * t;
    if (d < D) lora_st(dq_, qo + d, SCALE * dq[t]);
  }
}

// Pass B: per key row j of kv head kvh, over the group's query heads and the
// queries that reach j, in order: dV = Σ P·dO, dK = scale·Σ dS·q.
// Grid (T/8, KV, B).
extern "C" __global__ void __launch_bounds__(256, 1) $BASE$_dkdv($PARAMS$) {
  __shared__ float ks_[8][D], vs_[8][D], ps_[8][32], dss_[8][32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const long j = blockIdx.x * 8L + warp, kvh = blockIdx.y, b = blockIdx.z;
  if (j >= T) return;
  float* ks = ks_[warp];
  float* vs = vs_[warp];
  float* ps = ps_[warp];
  float* dss = dss_[warp];
  const long ko = lora_koff(b, j, kvh);
  for (long d = lane; d < D; d += 32) {
    ks[d] = lora_ld(k, ko + d);
    vs[d] = lora_ld(v, ko + d);
  }
  __syncwarp();
  const float* ws = (const float*)ws_;
  long lo, hi;
  lora_query_range(j, &lo, &hi);
  float dk[DL], dv[DL];
  for (int t = 0; t < DL; ++t) dk[t] = dv[t] = 0.f;
  for (long g = 0; g < G; ++g) {
    const long h = kvh * G + g;
    for (long i0 = lo; i0 < hi; i0 += 32) {
      const long i = i0 + lane;
      float p = 0.f, ds = 0.f;
      if (i < hi && lora_same_segment($SEGA$, b, i, j)) {
        const long row = (b * H + h) * T + i;
        const float L = ws[row];
        if (L != INFINITY) {
          const long qo = lora_qoff(b, i, h);
          float s = 0.f, dp = 0.f;
          for (long d = 0; d < D; ++d) {
            s = fmaf(lora_ld(q, qo + d) * SCALE, ks[d], s);
            dp = fmaf(lora_ld(dout, qo + d), vs[d], dp);
          }
          p = __expf(s - L);
          ds = p * (dp - ws[B * H * T + row]);
        }
      }
      __syncwarp();
      ps[lane] = p;
      dss[lane] = ds;
      __syncwarp();
      const long n = hi - i0 < 32 ? hi - i0 : 32;
      for (int t = 0; t < DL; ++t) {
        const long d = lane + 32 * t;
        if (d >= D) continue;
        for (long ii = 0; ii < n; ++ii) {
          const long qo = lora_qoff(b, i0 + ii, h) + d;
          dv[t] = fmaf(ps[ii], lora_ld(dout, qo), dv[t]);
          dk[t] = fmaf(dss[ii], lora_ld(q, qo), dk[t]);
        }
      }
    }
  }
  for (int t = 0; t < DL; ++t) {
    const long d = lane + 32 * t;
    if (d < D) {
      lora_st(dk_, ko + d, SCALE * dk[t]);
      lora_st(dv_, ko + d, dv[t]);
    }
  }
}
)";

std::map<std::string, std::string> attnVars(const AttentionFwd &a) {
  std::map<std::string, std::string> v;
  v["B"] = std::to_string(a.batch);
  v["T"] = std::to_string(a.seq);
  v["H"] = std::to_string(a.heads);
  v["KV"] = std::to_string(a.kvHeads);
  v["D"] = std::to_string(a.headDim);
  v["WIN"] = std::to_string(a.slidingWindow);
  v["CAUSAL"] = a.causal ? "true" : "false";
  v["SCALE"] = floatLiteral(static_cast<float>(a.scale));
  v["TY"] = a.qType;
  const bool seg = !a.segType.empty();
  v["SEGT"] = seg ? a.segType : "int";
  v["SEGP"] = seg ? ", const " + a.segType + "* __restrict__ seg" : "";
  v["SEGA"] = seg ? "seg" : "(const int*)nullptr";
  v["SEGFN"] = seg ? "__device__ __forceinline__ bool lora_same_segment(const " + a.segType +
                         "* seg, long b, long i, long j) { return seg[b * T + i] == seg[b * T + j]; }"
                   : "__device__ __forceinline__ bool lora_same_segment(const int*, long, long, long) { return true; }";
  v["MASKDOC"] = std::string(a.causal ? ", causal" : "") +
                 (a.slidingWindow ? ", window " + std::to_string(a.slidingWindow) : "") +
                 (seg ? ", segment ids" : "");
  return v;
}

bool attnCovered(const AttentionFwd &a, std::string *why) {
  if (!floatType(a.qType) || a.oType != a.qType) {
    *why = "q, k, v and the outputs must share one float type";
    return false;
  }
  if (a.headDim <= 0 || a.headDim > 256) {
    *why = "head_dim above 256";
    return false;
  }
  if (a.kvHeads <= 0 || a.heads % a.kvHeads != 0) {
    *why = "heads not a multiple of kv heads";
    return false;
  }
  return true;
}

std::string attnBase(const AttentionFwd &a, const char *what) {
  return std::string("lora_simt_attention_") + what + "_" + tag(a.qType) + "_b" + std::to_string(a.batch) +
         "_t" + std::to_string(a.seq) + "_h" + std::to_string(a.heads) + "_kv" +
         std::to_string(a.kvHeads) + "_d" + std::to_string(a.headDim) + (a.causal ? "" : "_bidir") +
         (a.slidingWindow ? "_w" + std::to_string(a.slidingWindow) : "") +
         (a.segType.empty() ? "" : "_seg" + std::string(a.segType == "int" ? "32" : "64"));
}

} // namespace

std::optional<Source> emitSimtAttentionFwd(const AttentionFwd &a, std::string *why) {
  if (!attnCovered(a, why))
    return std::nullopt;
  auto v = attnVars(a);
  Source s;
  s.entry = attnBase(a, "fwd");
  v["ENTRY"] = s.entry;
  s.code = std::string(mmaPrelude()) + kSimtPrelude + subst(kAttnCommon, v) + subst(kAttnFwd, v);
  s.grid = (a.seq + 7) / 8;
  s.gridY = a.heads;
  s.gridZ = a.batch;
  s.block = 256;
  return s;
}

std::optional<Source> emitSimtAttentionBwd(const AttentionFwd &a, std::string *why) {
  if (!attnCovered(a, why))
    return std::nullopt;
  auto v = attnVars(a);
  const std::string base = attnBase(a, "bwd");
  v["BASE"] = base;
  const std::string t = a.qType;
  v["PARAMS"] = "const " + t + "* __restrict__ dout, const " + t + "* __restrict__ q, const " + t +
                "* __restrict__ k, const " + t + "* __restrict__ v" + v["SEGP"] + ", " + t +
                "* __restrict__ dq_, " + t + "* __restrict__ dk_, " + t + "* __restrict__ dv_, void* __restrict__ ws_";
  Source s;
  s.code = std::string(mmaPrelude()) + kSimtPrelude + subst(kAttnCommon, v) + subst(kAttnBwd, v);
  s.entry = base + "_dq";
  s.grid = (a.seq + 7) / 8;
  s.gridY = a.heads;
  s.gridZ = a.batch;
  s.block = 256;
  s.next.push_back({base + "_dkdv", (a.seq + 7) / 8, a.kvHeads, a.batch, 256, 0});
  s.workspace = 2 * a.batch * a.heads * a.seq * 4;
  return s;
}

} // namespace mlir::lora::cuda
