//===- gemm.cpp - The linear forward: tensor-core and CUDA-core templates -===//
//
// The forward of the fused linear layer on tensor cores (mma.sync
// m16n8k16 bf16 with f32 accumulators, sm_80+):
//
//   y = x·deq(W)ᵀ (+ bias) (+ bf16(scaling·drop(x)·Aᵀ)·Bᵀ)
//
// One block computes a BM x BN tile of y. Over K, tiles of x, of W and of
// the adapter's A are staged in shared memory, double buffered with
// cp.async. An NF4 weight is never expanded in global memory: each thread
// loads 8 packed codes (one 32-bit word) and the block's absmax (undoing
// double quantization with two separately rounded float operations, as
// bitsandbytes and the CPU backend do), dequantizes to bf16 and stores the
// values into the shared W tile while the tensor cores work on the other
// buffer. The adapter's first product drop(x)·Aᵀ reuses the x fragments
// already in registers (an extra n = rank product per k-step, rank/BN more
// work than the base product); after the K loop it is scaled, rounded to
// bf16 like the CPU backend's intermediate, and its product with B runs as
// rank/16 more k-steps into the same accumulators — the epilogue then adds
// the bias and stores y once.
//
// The source carries a small portability layer: under LORA_CUDA_SIM (the
// CPU simulator of test/cuda_sim) the PTX instructions are replaced by the
// simulator's implementations of the same fragment layouts.
//
//===----------------------------------------------------------------------===//
#include "cuda/gemm.h"
#include "cuda/codegen.h"
#include "cuda/simt.h"

#include "lorart/quant/nf4.h"

#include <cstdio>
#include <map>
#include <string>

namespace lorac::cuda {
namespace {

const char *kGemmFwd = R"(
$TABLES$
// y[$M$, $N$] = x[$M$, $K$]·W[$N$, $K$]ᵀ$BIAS_DOC$$ADAPTER_DOC$
// Tile $BM$x$BN$x32, $WARPS$ warps of $WM$x$WN$, rank padded to $RP$.
extern "C" __global__ void __launch_bounds__($THREADS$$MIN_BLOCKS$) $ENTRY$(const __nv_bfloat16* __restrict__ x, const $WTYPE$* __restrict__ w$BIAS_PARAM$$ADAPTER_PARAMS$, $YTYPE$* __restrict__ y$SEED_PARAM$) {
  constexpr int M = $M$, N = $N$, K = $K$, R = $R$, RP = $RP$;
  constexpr int BM = $BM$, BN = $BN$, BK = 32, LDS = BK + 8;
  constexpr int WM = $WM$, WN = $WN$, WARPS_N = BN / WN, THREADS = $THREADS$;
  constexpr int MT = WM / 16, NT = WN / 8;
  constexpr int XA_TILES = (RP / 8 + WARPS_N - 1) / WARPS_N;  // n8 tiles of x·Aᵀ per warp
  LORA_DYNAMIC_SMEM(smem);
  __nv_bfloat16 (*xs)[BM][LDS] = (__nv_bfloat16 (*)[BM][LDS])smem;
  __nv_bfloat16 (*ws)[BN][LDS] = (__nv_bfloat16 (*)[BN][LDS])(smem + 2 * BM * LDS * 2);
  __nv_bfloat16 (*as)[RP > 0 ? RP : 1][LDS] = (__nv_bfloat16 (*)[RP > 0 ? RP : 1][LDS])(smem + 2 * (BM + BN) * LDS * 2);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp / WARPS_N, wn = warp % WARPS_N;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int g = lane >> 2, t = lane & 3;
$SEED_LOAD$
  float acc[MT][NT][4];
  #pragma unroll
  for (int i = 0; i < MT; ++i) for (int j = 0; j < NT; ++j) for (int c = 0; c < 4; ++c) acc[i][j][c] = 0.f;
  float xa[MT][XA_TILES > 0 ? XA_TILES : 1][4];
  #pragma unroll
  for (int i = 0; i < MT; ++i) for (int j = 0; j < (XA_TILES > 0 ? XA_TILES : 1); ++j) for (int c = 0; c < 4; ++c) xa[i][j][c] = 0.f;

  // Stage the k-tile starting at k0 into buffer b: x and A with cp.async;
  // a dense W too, an NF4 W through registers (wcode/wscale) so that its
  // dequantization can wait until the other buffer's math is issued.
  auto stage_async = [&](int b, int k0) {
    for (int c = tid; c < BM * (BK / 8); c += THREADS) {
      const int r = c / (BK / 8), kc = (c % (BK / 8)) * 8;
      const bool ok = m0 + r < M && k0 + kc < K;
      lora_cp16(&xs[b][r][kc], x + (ok ? (long)(m0 + r) * K + k0 + kc : 0), ok);
    }
$W_ASYNC$
    if (R > 0)
      for (int c = tid; c < RP * (BK / 8); c += THREADS) {
        const int r = c / (BK / 8), kc = (c % (BK / 8)) * 8;
        const bool ok = r < R && k0 + kc < K;
        lora_cp16(&as[b][r][kc], $A_PTR$ + (ok ? (long)r * K + k0 + kc : 0), ok);
      }
    lora_cp_commit();
  };
$NF4_HELPERS$
  auto compute = [&](int b, int k0) {
    #pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      // Written out rather than through lora_load_a/lora_mma_b: with the
      // adapter's x·Aᵀ fragments also live, ptxas spills the 128x128
      // variant when these loads go through the helpers (checked by
      // GemmSim.CompilesWithoutSpills).
      unsigned af[MT][4], bf[NT][2];
      #pragma unroll
      for (int i = 0; i < MT; ++i)
        lora_ldsm_x4(af[i], &xs[b][wm * WM + i * 16 + (lane % 8) + ((lane / 8) % 2) * 8][kk + (lane / 16) * 8]);
      #pragma unroll
      for (int j = 0; j < NT; j += 2) {
        unsigned r4[4];
        lora_ldsm_x4(r4, &ws[b][wn * WN + j * 8 + (lane % 8) + (lane / 16) * 8][kk + ((lane / 8) % 2) * 8]);
        bf[j][0] = r4[0]; bf[j][1] = r4[1]; bf[j + 1][0] = r4[2]; bf[j + 1][1] = r4[3];
      }
      #pragma unroll
      for (int i = 0; i < MT; ++i)
        #pragma unroll
        for (int j = 0; j < NT; ++j) lora_mma_bf16(acc[i][j], af[i], bf[j]);
      if (R > 0) {
$DROP_FRAGMENT$
        #pragma unroll
        for (int q = 0; q < XA_TILES; ++q) {
          const int jt = wn + q * WARPS_N;
          if (jt * 8 >= RP) break;
          unsigned ab[2];
          lora_ldsm_x2(ab, &as[b][jt * 8 + (lane % 8)][kk + ((lane / 8) % 2) * 8]);
          #pragma unroll
          for (int i = 0; i < MT; ++i) lora_mma_bf16(xa[i][q], af[i], ab);
        }
      }
    }
  };

  constexpr int KT = (K + BK - 1) / BK;
  stage_async(0, 0);
$NF4_FIRST$
  lora_cp_wait_all();
  __syncthreads();
  for (int kt = 0; kt < KT; ++kt) {
    const int b = kt & 1;
    if (kt + 1 < KT) {
      stage_async(b ^ 1, (kt + 1) * BK);
$NF4_LOAD_NEXT$
    }
    compute(b, kt * BK);
$NF4_STORE_NEXT$
    lora_cp_wait_all();
    __syncthreads();
  }
$ADAPTER_EPILOGUE$
  #pragma unroll
  for (int i = 0; i < MT; ++i)
    #pragma unroll
    for (int j = 0; j < NT; ++j)
      #pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int row = m0 + wm * WM + i * 16 + g + (c >= 2 ? 8 : 0);
        const int col = n0 + wn * WN + j * 8 + 2 * t + (c & 1);
        if (row < M && col < N) lora_st(y, (long)row * N + col, acc[i][j][c]$BIAS_ADD$);
      }
}
)";

// The adapter's second product: u = bf16(scaling·x·Aᵀ) [BM, RP] and B's
// rows [BN, RP] into shared memory (over the dead x/W tiles), then RP/16
// k-steps into the accumulators.
const char *kAdapterEpilogue = R"(  {
    constexpr int LDU = RP + 8;
    __nv_bfloat16 (*us)[LDU] = (__nv_bfloat16 (*)[LDU])smem;
    __nv_bfloat16 (*bs)[LDU] = (__nv_bfloat16 (*)[LDU])(smem + BM * LDU * 2);
    #pragma unroll
    for (int i = 0; i < MT; ++i)
      #pragma unroll
      for (int q = 0; q < XA_TILES; ++q) {
        const int jt = wn + q * WARPS_N;
        if (jt * 8 >= RP) break;
        #pragma unroll
        for (int c = 0; c < 4; ++c)
          us[wm * WM + i * 16 + g + (c >= 2 ? 8 : 0)][jt * 8 + 2 * t + (c & 1)] = __float2bfloat16($SCALING$ * xa[i][q][c]);
      }
    for (int e = tid; e < BN * RP; e += THREADS) {
      const int r = e / RP, c = e % RP;
      bs[r][c] = (n0 + r < N && c < R) ? b_[(long)(n0 + r) * R + c] : __float2bfloat16(0.f);
    }
    __syncthreads();
    #pragma unroll
    for (int kk = 0; kk < RP; kk += 16) {
      unsigned af[MT][4];
      lora_load_a<MT, LDU, false>(af, &us[0][0], wm * WM, kk);
      lora_mma_b<MT, NT, LDU, false>(acc, af, &bs[0][0], wn * WN, kk);
    }
  }
)";

// Dropout on the adapter's input: the x fragments, element by element
// (a[0]: row g, cols 2t..2t+1; a[1]: row g+8; a[2]: cols +8; a[3]: both),
// before the x·Aᵀ product only.
const char *kDropFragment = R"(        for (int i = 0; i < MT; ++i)
          #pragma unroll
          for (int rg = 0; rg < 4; ++rg) {
            const long row = m0 + wm * WM + i * 16 + g + ((rg & 1) ? 8 : 0);
            const long col = k0 + kk + 2 * t + ((rg & 2) ? 8 : 0);
            float v0 = lora_unpack_bf16(af[i][rg], 0), v1 = lora_unpack_bf16(af[i][rg], 1);
            v0 = lora_keep(key, (unsigned long long)(row * K + col), $P$) ? v0 * $INV$ : 0.f;
            v1 = lora_keep(key, (unsigned long long)(row * K + col + 1), $P$) ? v1 * $INV$ : 0.f;
            af[i][rg] = lora_pack_bf16(v0, v1);
          }
)";

// NF4: 8 codes (one 32-bit word, the first element in the high nibble of
// its byte) and their block's absmax per staged chunk.
const char *kNf4Helpers = R"(  constexpr int WCHUNKS = (BN * (BK / 8) + THREADS - 1) / THREADS;
  unsigned wcode[WCHUNKS];
  float wscale[WCHUNKS];
  const unsigned char* wbytes = (const unsigned char*)w;
  auto nf4_load = [&](int k0) {
    #pragma unroll
    for (int s = 0; s < WCHUNKS; ++s) {
      const int c = tid + s * THREADS;
      const int r = c / (BK / 8), kc = (c % (BK / 8)) * 8;
      wcode[s] = 0x77777777u;  // code 7 is 0.0
      wscale[s] = 0.f;
      if (c < BN * (BK / 8) && n0 + r < N && k0 + kc < K) {
        const long e = (long)(n0 + r) * K + k0 + kc;
        wcode[s] = *(const unsigned*)(wbytes + e / 2);
        const long blk = e / $BS$;
$ABSMAX$
      }
    }
  };
  auto nf4_store = [&](int b) {
    #pragma unroll
    for (int s = 0; s < WCHUNKS; ++s) {
      const int c = tid + s * THREADS;
      if (c >= BN * (BK / 8)) break;
      const int r = c / (BK / 8), kc = (c % (BK / 8)) * 8;
      unsigned packed[4];
      #pragma unroll
      for (int p = 0; p < 4; ++p) {
        const unsigned byte = (wcode[s] >> (8 * p)) & 0xffu;
        packed[p] = lora_pack_bf16(lora_nf4[byte >> 4] * wscale[s], lora_nf4[byte & 15u] * wscale[s]);
      }
      *(uint4*)&ws[b][r][kc] = make_uint4(packed[0], packed[1], packed[2], packed[3]);
    }
  };
)";

} // namespace

std::optional<Source> emitGemmFwd(const GemmFwd &g, std::string *why) {
  if (g.xType != "__nv_bfloat16") {
    *why = "activations are not bf16";
    return std::nullopt;
  }
  if (g.k % 8 != 0) {
    *why = "K is not a multiple of 8";
    return std::nullopt;
  }
  if (g.wNf4 && (g.blockSize < 8 || g.blockSize % 8 != 0)) {
    *why = "NF4 blocks of fewer than 8 elements";
    return std::nullopt;
  }
  if (g.rank > 64) {
    *why = "rank above 64";
    return std::nullopt;
  }
  // Large problems: 128x128 tiles of 8 warps (64x32 each); small ones 64x64
  // tiles of 4 warps (32x32) so that the grid still fills the device.
  if (g.tile != 0 && g.tile != 64 && g.tile != 128) {
    *why = "tile must be 0, 64 or 128";
    return std::nullopt;
  }
  // 128x128 tiles hold 64 accumulators per thread; with the adapter's x·Aᵀ
  // accumulators of a rank above 32 they would spill (ptxas), so larger
  // ranks take 64x64 tiles.
  if (g.tile == 128 && g.rank > 32) {
    *why = "rank above 32 with 128x128 tiles";
    return std::nullopt;
  }
  const bool big = g.tile ? g.tile == 128 : g.m >= 1024 && g.n >= 1024 && g.rank <= 32;
  const int64_t bm = big ? 128 : 64, bn = big ? 128 : 64, wm = big ? 64 : 32, wn = 32;
  const int64_t warps = (bm / wm) * (bn / wn), threads = 32 * warps;
  const int64_t rp = g.rank > 0 ? roundUp(g.rank, 16) : 0;
  const bool drop = g.rank > 0 && g.dropout > 0;

  Source s;
  s.entry = "lora_gemm_fwd_m" + std::to_string(g.m) + "_n" + std::to_string(g.n) + "_k" +
            std::to_string(g.k) + (g.wNf4 ? "_nf4b" + std::to_string(g.blockSize) +
                                                (g.doubleQuantBlock ? "dq" + std::to_string(g.doubleQuantBlock) : "")
                                          : "_bf16") +
            (g.bias ? "_bias" : "") + (g.rank ? "_r" + std::to_string(g.rank) : "") +
            (drop ? "_drop" : "");
  std::map<std::string, std::string> v;
  v["ENTRY"] = s.entry;
  v["M"] = std::to_string(g.m);
  v["N"] = std::to_string(g.n);
  v["K"] = std::to_string(g.k);
  v["R"] = std::to_string(g.rank);
  v["RP"] = std::to_string(rp);
  v["BM"] = std::to_string(bm);
  v["BN"] = std::to_string(bn);
  v["WM"] = std::to_string(wm);
  v["WN"] = std::to_string(wn);
  v["WARPS"] = std::to_string(warps);
  v["THREADS"] = std::to_string(threads);
  // ptxas's register heuristics, checked by the no-spill test of every
  // variant: 64x64 tiles need "one block per SM" to use more than 128
  // registers with a large rank; the 128x128 tiles spill with it.
  v["MIN_BLOCKS"] = big ? "" : ", 1";
  v["YTYPE"] = g.yType;
  v["WTYPE"] = g.wNf4 ? "unsigned char" : "__nv_bfloat16";
  v["BIAS_DOC"] = g.bias ? " + bias" : "";
  v["BIAS_PARAM"] = g.bias ? ", const " + g.biasType + "* __restrict__ bias" : "";
  v["BIAS_ADD"] = g.bias ? " + lora_ld(bias, col)" : "";
  v["ADAPTER_DOC"] = g.rank ? " + bf16(" + floatLiteral(static_cast<float>(g.scaling)) + "·" +
                                  (drop ? "drop(x)" : "x") + "·Aᵀ)·Bᵀ"
                            : "";
  v["ADAPTER_PARAMS"] = g.rank ? ", const __nv_bfloat16* __restrict__ a_, const __nv_bfloat16* __restrict__ b_"
                               : "";
  v["A_PTR"] = g.rank ? "a_" : "x";
  v["SEED_PARAM"] = drop ? ", const unsigned long long* __restrict__ key_" : "";
  v["SEED_LOAD"] = drop ? "  const unsigned long long key = *key_;" : "";
  v["SCALING"] = floatLiteral(static_cast<float>(g.scaling));
  v["ADAPTER_EPILOGUE"] = g.rank ? std::string(kAdapterEpilogue) : "";
  std::string dropCode;
  if (drop) {
    dropCode = subst(kDropFragment, {{"P", doubleLiteral(g.dropout)},
                                     {"INV", floatLiteral(static_cast<float>(1.0 / (1.0 - g.dropout)))}});
  }
  v["DROP_FRAGMENT"] = dropCode;

  std::string tables;
  if (g.wNf4) {
    std::string absmax = nf4AbsmaxCode(g.n, g.k, g.blockSize, g.doubleQuantBlock, "wscale[s]",
                                       "        ", &tables);
    v["NF4_HELPERS"] = subst(kNf4Helpers, {{"BS", std::to_string(g.blockSize)}, {"ABSMAX", absmax}});
    v["W_ASYNC"] = "";
    v["NF4_FIRST"] = "  nf4_load(0);\n  nf4_store(0);";
    v["NF4_LOAD_NEXT"] = "      nf4_load((kt + 1) * BK);";
    v["NF4_STORE_NEXT"] = "    if (kt + 1 < KT) nf4_store(b ^ 1);";
  } else {
    v["NF4_HELPERS"] = "";
    v["W_ASYNC"] = R"(    for (int c = tid; c < BN * (BK / 8); c += THREADS) {
      const int r = c / (BK / 8), kc = (c % (BK / 8)) * 8;
      const bool ok = n0 + r < N && k0 + kc < K;
      lora_cp16(&ws[b][r][kc], w + (ok ? (long)(n0 + r) * K + k0 + kc : 0), ok);
    })";
    v["NF4_FIRST"] = "";
    v["NF4_LOAD_NEXT"] = "";
    v["NF4_STORE_NEXT"] = "";
  }
  v["TABLES"] = tables;
  s.code = std::string(mmaPrelude()) + subst(kGemmFwd, v);
  s.grid = (g.n + bn - 1) / bn;
  s.gridY = (g.m + bm - 1) / bm;
  s.block = threads;
  int64_t lds = 32 + 8;
  int64_t mainBytes = 2 * (bm + bn + rp) * lds * 2;
  int64_t epiBytes = (bm + bn) * (rp + 8) * 2;
  s.shared = std::max(mainBytes, g.rank ? epiBytes : int64_t(0));
  return s;
}

// ===========================================================================
// The same on CUDA cores (any float type): see simt.h.

using namespace simt;

namespace {

// ---------------------------------------------------------------------------
// y = x·Wᵀ (+ bias) (+ s·drop(x)·Aᵀ·Bᵀ)

const char *kSimtGemmFwd = R"(
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
const char *kSimtGemmFwdU = R"(
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

const char *kSimtGemmFwdAdapter = R"(  {  // + u·Bᵀ into the same accumulators
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
  v["ADAPTER"] = g.rank ? kSimtGemmFwdAdapter : "";
  v["U_KERNEL"] = g.rank ? subst(kSimtGemmFwdU, v) : "";
  s.code = std::string(mmaPrelude()) + kSimtPrelude + subst(kSimtGemmFwd, v);
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

} // namespace lorac::cuda

// ===========================================================================
// The family's emitters (codegen.h): operands x, W (, bias) (, A, B) -> y.

namespace lorac::cuda {
namespace {

const char *const kBf16 = "__nv_bfloat16";

/// The tensor-core template, else its CUDA-core variant.
Emitted gemmFwd(const GemmFwd &g, bool tensorCores) {
  std::string why;
  std::optional<Source> s;
  if (tensorCores)
    s = emitGemmFwd(g, &why);
  if (!s)
    s = emitSimtGemmFwd(g, &why);
  return emitted(std::move(s), why);
}

template <class P> Emitted linearFwd(const KernelDesc &d, const P &p, int64_t rank) {
  GemmFwd g;
  g.m = p.m;
  g.n = p.n;
  g.k = p.k;
  g.bias = p.bias != 0;
  g.xType = d.inputs[0].type;
  g.yType = d.outputs[0].type;
  if (g.bias)
    g.biasType = d.inputs[2].type;
  if (!gemmWeight(d.inputs[1], g.xType, &g.wNf4, &g.blockSize, &g.doubleQuantBlock))
    return notCovered("the weight's type differs from the activations'");
  if constexpr (std::is_same_v<P, kernels::params::fused_linear_fwd>) {
    if (rank > 0) {
      g.rank = rank;
      g.scaling = p.scaling.value_or(0);
      g.dropout = p.dropout.value_or(0);
      size_t ia = 2 + (g.bias ? 1 : 0);
      g.aType = d.inputs[ia].type;
      g.bType = d.inputs[ia + 1].type;
    }
  }
  return gemmFwd(g, !g.rank || (g.aType == kBf16 && g.bType == kBf16));
}

Emitted linearFwdKernel(const KernelDesc &d) {
  return linearFwd(d, d.get<kernels::params::linear_fwd>(), 0);
}

Emitted fusedLinearFwdKernel(const KernelDesc &d) {
  const auto &p = d.get<kernels::params::fused_linear_fwd>();
  return linearFwd(d, p, p.rank);
}

/// f32 logits x·Wᵀ (generation's last positions): the GEMM with an f32
/// output.
Emitted lmHeadFwdKernel(const KernelDesc &d) {
  const auto &p = d.get<kernels::params::lm_head_fwd>();
  GemmFwd g;
  g.m = p.m;
  g.n = p.n;
  g.k = p.k;
  g.xType = d.inputs[0].type;
  g.yType = d.outputs[0].type;
  if (d.inputs[1].nf4 || d.inputs[1].type != g.xType)
    return notCovered("the weight's type differs from the activations'");
  return gemmFwd(g, true);
}

} // namespace

const std::vector<Emitter> &gemmEmitters() {
  static const std::vector<Emitter> t = {
      {kernels::Kind::linear_fwd, linearFwdKernel},
      {kernels::Kind::fused_linear_fwd, fusedLinearFwdKernel},
      {kernels::Kind::lm_head_fwd, lmHeadFwdKernel},
  };
  return t;
}

} // namespace lorac::cuda
