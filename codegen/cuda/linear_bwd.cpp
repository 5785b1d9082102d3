//===- linear_bwd.cpp - The linear backward: tensor-core and CUDA-core ---===//
//
// The backward of the fused linear layer (`fused_linear_bwd`), of the plain
// frozen linear (`linear_bwd_x`) and of an adapter alone (`lora_bwd`), with
// bf16 activations. With s = scaling, u = drop(x)·Aᵀ and g = dy·B (f32):
//
//   db = s·dyᵀ·u      da = s·gᵀ·drop(x)      dx = dy·deq(W) + s·drop'(g·A)
//
// in up to four launches of one source (Kernel.cuda_next), which share a
// workspace holding u and g ([m, rank] f32 each):
//   _ug  one block per 64 rows: u and g on tensor cores (x and dy tiles with
//        cp.async, A's and B's fragments by ldmatrix, B's transposed), into
//        the workspace;
//   _db  one block per 64 rows of db: Σ over m in a fixed order (f32, u
//        rounded to bf16 first like the CPU's f32 x bf16 products);
//   _da  one block per 64 columns of da: likewise;
//   _dx  the tensor-core GEMM dy·deq(W) over n (W's tile, dense or NF4
//        dequantized in shared memory, read through ldmatrix.trans), whose
//        epilogue adds s·drop'(g·A) in f32 from the workspace's g and rounds
//        dx once — the CPU backend's order of roundings.
// No atomics: every sum has one order, so the gradients are reproducible.
//
//===----------------------------------------------------------------------===//
#include "cuda/linear_bwd.h"
#include "cuda/codegen.h"
#include "cuda/simt.h"

#include "lorart/quant/nf4.h"

#include <cstdio>
#include <map>

namespace lorac::cuda {
namespace {

const char *kCommon = R"(
$TABLES$
// Linear backward: m=$M$ n=$N$ k=$K$ rank=$R$ (padded $RP$), scaling $S$, dropout $P$.
namespace {
constexpr int M = $M$, N = $N$, K = $K$, R = $R$, RP = $RP$;
constexpr bool DROP = $DROP$;
constexpr float S = $S$, INV = $INV$;
constexpr double P = $P$;
// u and g are kept in f32 but meet bf16 operands rounded to bf16, as the
// CPU backend's F32 x BF16 products (and PyTorch's autocast) do.
__device__ __forceinline__ float lora_bf16_round(float v) { return __bfloat162float(__float2bfloat16(v)); }
// Element e = row·K + col of drop(x), rounded to x's type (the CPU's DropInput).
__device__ __forceinline__ float lora_dropped(float v, unsigned long long key, long e) {
  if (!DROP) return v;
  return lora_keep(key, (unsigned long long)e, P) ? __bfloat162float(__float2bfloat16(v * INV)) : 0.f;
}
}  // namespace
)";

// u = drop(x)·Aᵀ and g = dy·B for 64 rows per block, into the workspace.
const char *kUg = R"(
extern "C" __global__ void __launch_bounds__(128, 1) $BASE$_ug($PARAMS$) {
  constexpr int BM = 64, BK = 32, LDS = BK + 8, LDB = RP + 8;
  LORA_DYNAMIC_SMEM(smem);
  __nv_bfloat16 (*ts)[LDS] = (__nv_bfloat16 (*)[LDS])smem;                    // x or dy tile [BM][BK]
  __nv_bfloat16 (*as)[LDS] = (__nv_bfloat16 (*)[LDS])(smem + BM * LDS * 2);   // A tile [RP][BK]
  __nv_bfloat16 (*bs)[LDB] = (__nv_bfloat16 (*)[LDB])(smem + (BM + RP) * LDS * 2);  // B tile [BK][RP]
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g8 = lane >> 2, t4 = lane & 3;
  const int m0 = blockIdx.x * BM;
$KEY_LOAD$
  float* uw = (float*)ws_;
  float* gw = uw + (long)M * RP;
  // u: over k.
  float acc[RP / 8][4];
  for (int pass = 0; pass < 2; ++pass) {
#pragma unroll
    for (int j = 0; j < RP / 8; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[j][c] = 0.f;
    const int L = pass == 0 ? K : N;
    for (int k0 = 0; k0 < L; k0 += BK) {
      for (int c = tid; c < BM * (BK / 8); c += 128) {
        const int r = c / (BK / 8), kc = (c % (BK / 8)) * 8;
        const bool ok = m0 + r < M && k0 + kc < L;
        lora_cp16(&ts[r][kc], (pass == 0 ? x : dy) + (ok ? (long)(m0 + r) * L + k0 + kc : 0), ok);
      }
      if (pass == 0) {
        for (int c = tid; c < RP * (BK / 8); c += 128) {
          const int r = c / (BK / 8), kc = (c % (BK / 8)) * 8;
          const bool ok = r < R && k0 + kc < K;
          lora_cp16(&as[r][kc], a_ + (ok ? (long)r * K + k0 + kc : 0), ok);
        }
      } else {
        for (int e = tid; e < BK * RP; e += 128) {
          const int nn = e / RP, rr = e % RP;
          bs[nn][rr] = (k0 + nn < N && rr < R) ? b_[(long)(k0 + nn) * R + rr] : __float2bfloat16(0.f);
        }
      }
      lora_cp_commit();
      lora_cp_wait_all();
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < BK; kk += 16) {
        unsigned af[4];
        lora_ldsm_x4(af, &ts[warp * 16 + (lane % 8) + ((lane / 8) % 2) * 8][kk + (lane / 16) * 8]);
        if (pass == 0 && DROP) {
#pragma unroll
          for (int rg = 0; rg < 4; ++rg) {
            const long row = m0 + warp * 16 + g8 + ((rg & 1) ? 8 : 0);
            const long col = k0 + kk + 2 * t4 + ((rg & 2) ? 8 : 0);
            af[rg] = lora_pack_bf16(lora_dropped(lora_unpack_bf16(af[rg], 0), key, row * K + col),
                                    lora_dropped(lora_unpack_bf16(af[rg], 1), key, row * K + col + 1));
          }
        }
#pragma unroll
        for (int j = 0; j < RP / 8; j += 2) {
          unsigned r4[4];
          if (pass == 0)
            lora_ldsm_x4(r4, &as[j * 8 + (lane % 8) + (lane / 16) * 8][kk + ((lane / 8) % 2) * 8]);
          else
            lora_ldsm_x4_trans(r4, &bs[kk + (lane % 8) + ((lane / 8) % 2) * 8][j * 8 + (lane / 16) * 8]);
          const unsigned b0[2] = {r4[0], r4[1]}, b1[2] = {r4[2], r4[3]};
          lora_mma_bf16(acc[j], af, b0);
          lora_mma_bf16(acc[j + 1], af, b1);
        }
      }
      __syncthreads();
    }
    float* out = pass == 0 ? uw : gw;
#pragma unroll
    for (int j = 0; j < RP / 8; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int row = m0 + warp * 16 + g8 + (c >= 2 ? 8 : 0);
        if (row < M) out[(long)row * RP + j * 8 + 2 * t4 + (c & 1)] = acc[j][c];
      }
  }
}

// db[n][r] = s·Σ_m dy[m][n]·u[m][r]: 64 rows of db per block, m in order.
extern "C" __global__ void __launch_bounds__(256, 1) $BASE$_db($PARAMS$) {
  constexpr int BN = 64, BMK = 32, OUT = BN * RP / 256;
  __shared__ float dys[BMK][BN + 1], us[BMK][RP + 1];
  const int tid = threadIdx.x, n0 = blockIdx.x * BN;
  const float* uw = (const float*)ws_;
  float acc[OUT];
#pragma unroll
  for (int o = 0; o < OUT; ++o) acc[o] = 0.f;
  for (int mb = 0; mb < M; mb += BMK) {
    for (int e = tid; e < BMK * BN; e += 256) {
      const int i = e / BN, j = e % BN;
      dys[i][j] = (mb + i < M && n0 + j < N) ? lora_ld(dy, (long)(mb + i) * N + n0 + j) : 0.f;
    }
    for (int e = tid; e < BMK * RP; e += 256) {
      const int i = e / RP, j = e % RP;
      us[i][j] = mb + i < M ? lora_bf16_round(uw[(long)(mb + i) * RP + j]) : 0.f;
    }
    __syncthreads();
    for (int i = 0; i < BMK; ++i)
#pragma unroll
      for (int o = 0; o < OUT; ++o) {
        const int idx = tid + o * 256;
        acc[o] += dys[i][idx / RP] * us[i][idx % RP];
      }
    __syncthreads();
  }
#pragma unroll
  for (int o = 0; o < OUT; ++o) {
    const int idx = tid + o * 256, nn = idx / RP, rr = idx % RP;
    if (n0 + nn < N && rr < R) lora_st(db_, (long)(n0 + nn) * R + rr, S * acc[o]);
  }
}

// da[r][k] = s·Σ_m g[m][r]·drop(x)[m][k]: 64 columns of da per block.
extern "C" __global__ void __launch_bounds__(256, 1) $BASE$_da($PARAMS$) {
  constexpr int BKC = 64, BMK = 32, OUT = BKC * RP / 256;
  __shared__ float xs[BMK][BKC + 1], gs[BMK][RP + 1];
  const int tid = threadIdx.x, k0 = blockIdx.x * BKC;
$KEY_LOAD$
  const float* gw = (const float*)ws_ + (long)M * RP;
  float acc[OUT];
#pragma unroll
  for (int o = 0; o < OUT; ++o) acc[o] = 0.f;
  for (int mb = 0; mb < M; mb += BMK) {
    for (int e = tid; e < BMK * BKC; e += 256) {
      const int i = e / BKC, j = e % BKC;
      const long row = mb + i, col = k0 + j;
      xs[i][j] = (row < M && col < K) ? lora_dropped(lora_ld(x, row * K + col), key, row * K + col) : 0.f;
    }
    for (int e = tid; e < BMK * RP; e += 256) {
      const int i = e / RP, j = e % RP;
      gs[i][j] = mb + i < M ? lora_bf16_round(gw[(long)(mb + i) * RP + j]) : 0.f;
    }
    __syncthreads();
    for (int i = 0; i < BMK; ++i)
#pragma unroll
      for (int o = 0; o < OUT; ++o) {
        const int idx = tid + o * 256;
        acc[o] += gs[i][idx / BKC] * xs[i][idx % BKC];
      }
    __syncthreads();
  }
#pragma unroll
  for (int o = 0; o < OUT; ++o) {
    const int idx = tid + o * 256, rr = idx / BKC, kk = idx % BKC;
    if (rr < R && k0 + kk < K) lora_st(da_, (long)rr * K + k0 + kk, S * acc[o]);
  }
}
)";

// dx = dy·deq(W) (+ s·drop'(g·A)): 64x64 tiles, 4 warps of 32x32.
const char *kDx = R"(
extern "C" __global__ void __launch_bounds__(128, 1) $BASE$_dx($PARAMS$) {
  constexpr int BM = 64, BN = 64, WM = 32, WN = 32, WARPS_N = BN / WN, MT = WM / 16, NT = WN / 8;
  constexpr int THREADS = 128;
  LORA_DYNAMIC_SMEM(smem);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp / WARPS_N, wn = warp % WARPS_N, g8 = lane >> 2, t4 = lane & 3;
  const int k0 = blockIdx.x * BN, m0 = blockIdx.y * BM;
$KEY_LOAD$
  float acc[MT][NT][4];
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[i][j][c] = 0.f;
$MAIN_LOOP$
$EPILOGUE$
}
)";

// acc (+)= dy[m0.., :N]·W[:N, k0..] for one 64x64 output tile of 4 warps
// (32x32 each): dy rows of stride LDY, ROWS of them valid; W [N][K] read
// through ldmatrix.trans; tiles double buffered with cp.async ($W_STAGE$
// stages W: dense by cp.async or NF4 dequantized into shared memory).
const char *kDyWTile = R"(
template <int ROWS, int N, int K, int LDY, typename DY>
__device__ __forceinline__ void lora_dyw_tile(float (&acc)[2][4][4], const DY* dy, const void* wv,
                                              int m0, int k0, unsigned char* smem) {
  constexpr int BM = 64, BN = 64, BK = 32, LDS = BK + 8, LDW = BN + 8;
  constexpr int WM = 32, WN = 32, WARPS_N = BN / WN, MT = WM / 16, NT = WN / 8, THREADS = 128;
  __nv_bfloat16 (*ys)[BM][LDS] = (__nv_bfloat16 (*)[BM][LDS])smem;                 // dy [2][BM][BK]
  __nv_bfloat16 (*ws)[BK][LDW] = (__nv_bfloat16 (*)[BK][LDW])(smem + 2 * BM * LDS * 2);  // W [2][BK n][BN k]
  const __nv_bfloat16* w = (const __nv_bfloat16*)wv;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp / WARPS_N, wn = warp % WARPS_N;
  auto stage = [&](int b, int n0) {
    for (int c = tid; c < BM * (BK / 8); c += THREADS) {
      const int r = c / (BK / 8), nc = (c % (BK / 8)) * 8;
      const bool ok = m0 + r < ROWS && n0 + nc < N;
      if constexpr (sizeof(DY) == 2) {
        lora_cp16(&ys[b][r][nc], dy + (ok ? (long)(m0 + r) * LDY + n0 + nc : 0), ok);
      } else {
        // f32 dy (the logits' gradient): rounded to bf16 as it is staged,
        // as the CPU backend's f32 x bf16 product rounds it.
        unsigned packed[4] = {0u, 0u, 0u, 0u};
        if (ok) {
          const float* src = (const float*)dy + (long)(m0 + r) * LDY + n0 + nc;
#pragma unroll
          for (int p = 0; p < 4; ++p) packed[p] = lora_pack_bf16(src[2 * p], src[2 * p + 1]);
        }
        *(uint4*)&ys[b][r][nc] = make_uint4(packed[0], packed[1], packed[2], packed[3]);
      }
    }
$W_STAGE$
    lora_cp_commit();
  };
  constexpr int NTILES = (N + BK - 1) / BK;
  stage(0, 0);
  lora_cp_wait_all();
  __syncthreads();
  for (int nt = 0; nt < NTILES; ++nt) {
    const int b = nt & 1;
    if (nt + 1 < NTILES) stage(b ^ 1, (nt + 1) * BK);
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      unsigned af[MT][4];
      lora_load_a<MT, LDS, false>(af, &ys[b][0][0], wm * WM, kk);
      lora_mma_b<MT, NT, LDW, true>(acc, af, &ws[b][0][0], wn * WN, kk);
    }
    lora_cp_wait_all();
    __syncthreads();
  }
}
)";

const char *kDenseWStage = R"(    for (int c = tid; c < BK * (BN / 8); c += THREADS) {
      const int r = c / (BN / 8), kc = (c % (BN / 8)) * 8;
      const bool ok = n0 + r < N && k0 + kc < K;
      lora_cp16(&ws[b][r][kc], w + (ok ? (long)(n0 + r) * K + k0 + kc : 0), ok);
    })";

// NF4: 8 codes per 32-bit word along k, dequantized straight into the tile
// (the loads are synchronous here; the tensor cores work on the other buffer).
const char *kNf4WStage = R"(    for (int c = tid; c < BK * (BN / 8); c += THREADS) {
      const int r = c / (BN / 8), kc = (c % (BN / 8)) * 8;
      unsigned packed[4] = {0u, 0u, 0u, 0u};
      if (n0 + r < N && k0 + kc < K) {
        const unsigned char* wbytes = (const unsigned char*)w;
        const long e = (long)(n0 + r) * K + k0 + kc;
        const unsigned code = *(const unsigned*)(wbytes + e / 2);
        const long blk = e / $BS$;
$ABSMAX$
#pragma unroll
        for (int p = 0; p < 4; ++p) {
          const unsigned byte = (code >> (8 * p)) & 0xffu;
          packed[p] = lora_pack_bf16(lora_nf4[byte >> 4] * scale, lora_nf4[byte & 15u] * scale);
        }
      }
      *(uint4*)&ws[b][r][kc] = make_uint4(packed[0], packed[1], packed[2], packed[3]);
    })";

// s·drop'(g·A) in f32 from the workspace's g and A's columns, then one
// rounding of dx.
const char *kDxEpilogue = R"(
  float* gs = (float*)smem;                 // [BM][RP]
  float* as = gs + BM * RP;                 // [RP][BN]
  const float* gw = (const float*)ws_ + (long)M * RP;
  for (int e = tid; e < BM * RP; e += THREADS) {
    const int i = e / RP, j = e % RP;
    gs[e] = m0 + i < M ? lora_bf16_round(gw[(long)(m0 + i) * RP + j]) : 0.f;
  }
  for (int e = tid; e < RP * BN; e += THREADS) {
    const int i = e / BN, j = e % BN;
    as[e] = (i < R && k0 + j < K) ? __bfloat162float(a_[(long)i * K + k0 + j]) : 0.f;
  }
  __syncthreads();
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int rl = wm * WM + i * 16 + g8 + (c >= 2 ? 8 : 0), cl = wn * WN + j * 8 + 2 * t4 + (c & 1);
        float t = 0.f;
#pragma unroll 4
        for (int q = 0; q < RP; ++q) t += gs[rl * RP + q] * as[q * BN + cl];
        const long row = m0 + rl, col = k0 + cl;
        float v;
        if (DROP) v = lora_keep(key, (unsigned long long)(row * K + col), P) ? (S * INV) * t : 0.f;
        else v = S * t;
        acc[i][j][c] += v;
      }
)";

const char *kDxStore = R"(
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int row = m0 + wm * WM + i * 16 + g8 + (c >= 2 ? 8 : 0);
        const int col = k0 + wn * WN + j * 8 + 2 * t4 + (c & 1);
        if (row < M && col < K) lora_st(dx, (long)row * K + col, acc[i][j][c]);
      }
)";


// acc = Σ_m dy[m][n0..]·x[m][k0..] for one 64x64 tile of dw[n][k] (4 warps
// of 32x32), over m in steps of 32; dy rows of stride LDY, x rows of stride
// K; both operands are read transposed (ldmatrix.trans) from their
// row-major tiles. One order of summation per element.
const char *kDytXTile = R"(
template <int M, int N, int K, int LDY>
__device__ __forceinline__ void lora_dytx_tile(float (&acc)[2][4][4], const __nv_bfloat16* dy,
                                               const __nv_bfloat16* x, int n0, int k0, unsigned char* smem) {
  constexpr int BN = 64, BKC = 64, BM = 32, LDA = BN + 8, LDB = BKC + 8;
  constexpr int WM = 32, WN = 32, WARPS_N = BKC / WN, MT = WM / 16, NT = WN / 8;
  __nv_bfloat16 (*ys)[LDA] = (__nv_bfloat16 (*)[LDA])smem;                 // dy [BM m][BN n]
  __nv_bfloat16 (*xs)[LDB] = (__nv_bfloat16 (*)[LDB])(smem + BM * LDA * 2);  // x [BM m][BKC k]
  const int tid = threadIdx.x, warp = tid >> 5;
  const int wm = warp / WARPS_N, wn = warp % WARPS_N;
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[i][j][c] = 0.f;
  for (int m0 = 0; m0 < M; m0 += BM) {
    for (int c = tid; c < BM * (BN / 8); c += 128) {
      const int r = c / (BN / 8), cc = (c % (BN / 8)) * 8;
      const bool ok = m0 + r < M && n0 + cc < N;
      lora_cp16(&ys[r][cc], dy + (ok ? (long)(m0 + r) * LDY + n0 + cc : 0), ok);
    }
    for (int c = tid; c < BM * (BKC / 8); c += 128) {
      const int r = c / (BKC / 8), cc = (c % (BKC / 8)) * 8;
      const bool ok = m0 + r < M && k0 + cc < K;
      lora_cp16(&xs[r][cc], x + (ok ? (long)(m0 + r) * K + k0 + cc : 0), ok);
    }
    lora_cp_commit();
    lora_cp_wait_all();
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BM; kk += 16) {
      unsigned af[MT][4];
      lora_load_a<MT, LDA, true>(af, &ys[0][0], wm * WM, kk);
      lora_mma_b<MT, NT, LDB, true>(acc, af, &xs[0][0], wn * WN, kk);
    }
    __syncthreads();
  }
}
)";

// dw[n][k] = Σ_m dy[m][n]·x[m][k]: one lora_dytx_tile per block.
const char *kLinearBwdW = R"(
extern "C" __global__ void __launch_bounds__(128, 1) $ENTRY$(const __nv_bfloat16* __restrict__ dy, const __nv_bfloat16* __restrict__ x, $DWTYPE$* __restrict__ dw) {
  constexpr int N = $N$, K = $K$;
  LORA_DYNAMIC_SMEM(smem);
  const int k0 = blockIdx.x * 64, n0 = blockIdx.y * 64;
  float acc[2][4][4];
  lora_dytx_tile<$M$, N, K, N>(acc, dy, x, n0, k0, smem);
  lora_tile64_each(acc, [&](int r, int c, float v) {
    if (n0 + r < N && k0 + c < K) lora_st(dw, (long)(n0 + r) * K + k0 + c, v);
  });
}
)";



} // namespace

std::string dytXTileFunction() { return kDytXTile; }
int64_t dytXTileSharedBytes() { return 32 * (64 + 8) * 2 * 2; }

int64_t dyWTileSharedBytes() { return 2 * 64 * (32 + 8) * 2 + 2 * 32 * (64 + 8) * 2; }

std::string dyWTileFunction(const std::string &wStage) {
  return subst(kDyWTile, {{"W_STAGE", wStage.empty() ? std::string(kDenseWStage) : wStage}});
}

std::optional<Source> emitLinearBwd(const LinearBwd &g, std::string *why) {
  // dy may be f32 for the weight-only product (`linear_bwd_x` of the LM
  // head under a preference objective: the logits' gradient is f32).
  const bool dyOk = g.dyType == "__nv_bfloat16" || (g.rank == 0 && g.dyType == "float");
  if (!dyOk || (g.rank > 0 && g.xType != "__nv_bfloat16") ||
      (g.dx && g.dxType != "__nv_bfloat16")) {
    *why = "activations are not bf16";
    return std::nullopt;
  }
  if (g.k % 8 != 0 || g.n % 8 != 0) {
    *why = "N or K is not a multiple of 8";
    return std::nullopt;
  }
  if (g.hasW && g.wNf4 && (g.blockSize < 8 || g.blockSize % 8 != 0)) {
    *why = "NF4 blocks of fewer than 8 elements";
    return std::nullopt;
  }
  if (g.rank > 64) {
    *why = "rank above 64";
    return std::nullopt;
  }
  if (!g.hasW && g.rank == 0) {
    *why = "neither a weight nor an adapter";
    return std::nullopt;
  }
  if (!g.dx && g.rank == 0) {
    *why = "no gradient to compute";
    return std::nullopt;
  }
  const int64_t rp = g.rank > 0 ? roundUp(g.rank, 16) : 0;
  const bool drop = g.rank > 0 && g.dropout > 0;
  std::string base = "lora_linear_bwd_m" + std::to_string(g.m) + "_n" + std::to_string(g.n) +
                     "_k" + std::to_string(g.k) +
                     (g.hasW ? (g.wNf4 ? "_nf4b" + std::to_string(g.blockSize) +
                                             (g.doubleQuantBlock ? "dq" + std::to_string(g.doubleQuantBlock) : "")
                                       : "_bf16")
                             : "_now") +
                     (g.rank ? "_r" + std::to_string(g.rank) : "") + (drop ? "_drop" : "") +
                     (g.dyType == "float" ? "_dyf32" : "") + (g.dx ? "" : "_nodx");
  // One parameter list for every step: the launch's inputs, its outputs,
  // the workspace, the dropout key.
  std::string params = "const " + g.dyType + "* __restrict__ dy";
  if (g.rank) params += ", const __nv_bfloat16* __restrict__ x";
  if (g.hasW) params += g.wNf4 ? ", const unsigned char* __restrict__ w" : ", const __nv_bfloat16* __restrict__ w";
  if (g.rank) params += ", const __nv_bfloat16* __restrict__ a_, const __nv_bfloat16* __restrict__ b_";
  if (g.dx) params += ", __nv_bfloat16* __restrict__ dx";
  if (g.rank)
    params += ", " + g.daType + "* __restrict__ da_, " + g.dbType + "* __restrict__ db_, void* __restrict__ ws_";
  if (drop) params += ", const unsigned long long* __restrict__ key_";

  std::map<std::string, std::string> v;
  v["BASE"] = base;
  v["PARAMS"] = params;
  v["M"] = std::to_string(g.m);
  v["N"] = std::to_string(g.n);
  v["K"] = std::to_string(g.k);
  v["R"] = std::to_string(g.rank);
  v["RP"] = std::to_string(rp);
  v["DROP"] = drop ? "true" : "false";
  v["S"] = floatLiteral(static_cast<float>(g.scaling));
  v["INV"] = floatLiteral(drop ? static_cast<float>(1.0 / (1.0 - g.dropout)) : 1.0f);
  char p[40];
  snprintf(p, sizeof p, "%.17g", drop ? g.dropout : 0.0);
  v["P"] = p;
  v["KEY_LOAD"] = drop ? "  const unsigned long long key = *key_;" : "  const unsigned long long key = 0;";

  std::string tables, absmax;
  if (g.hasW && g.wNf4)
    absmax = nf4AbsmaxCode(g.n, g.k, g.blockSize, g.doubleQuantBlock, "const float scale",
                           "        ", &tables);
  v["TABLES"] = tables;

  std::string dx = kDx;
  std::string tile, mainLoop;
  if (g.hasW) {
    tile = dyWTileFunction(g.wNf4 ? subst(kNf4WStage, {{"BS", std::to_string(g.blockSize)},
                                                        {"ABSMAX", absmax}})
                                  : std::string());
    mainLoop = "  lora_dyw_tile<M, N, K, N>(acc, dy, w, m0, k0, smem);";
  }
  std::string epi = (g.rank ? std::string(kDxEpilogue) : "") + kDxStore;
  dx = subst(dx, {{"MAIN_LOOP", mainLoop}, {"EPILOGUE", epi}});

  Source s;
  s.code = std::string(mmaPrelude()) + subst(kCommon, v) + (g.dx ? tile : "") +
           (g.rank ? subst(kUg, v) : "") + (g.dx ? subst(dx, v) : "");
  const int64_t ldsBytes = (32 + 8) * 2;
  const int64_t dxMain = g.hasW ? dyWTileSharedBytes() : 0;
  const int64_t dxEpi = g.rank ? (64 * rp + rp * 64) * 4 : 0;
  Step dxStep;
  dxStep.entry = base + "_dx";
  dxStep.grid = (g.k + 63) / 64;
  dxStep.gridY = (g.m + 63) / 64;
  dxStep.block = 128;
  dxStep.shared = std::max(dxMain, dxEpi);
  if (g.rank) {
    s.entry = base + "_ug";
    s.grid = (g.m + 63) / 64;
    s.block = 128;
    s.shared = (64 + rp) * ldsBytes + 32 * (rp + 8) * 2;
    Step db{base + "_db", (g.n + 63) / 64, 1, 1, 256, 0};
    Step da{base + "_da", (g.k + 63) / 64, 1, 1, 256, 0};
    s.next = {db, da};
    if (g.dx)
      s.next.push_back(dxStep);
    s.workspace = 2 * g.m * rp * 4;
  } else {
    s.entry = dxStep.entry;
    s.grid = dxStep.grid;
    s.gridY = dxStep.gridY;
    s.block = dxStep.block;
    s.shared = dxStep.shared;
  }
  return s;
}

} // namespace lorac::cuda

namespace lorac::cuda {

std::optional<Source> emitLinearBwdW(int64_t m, int64_t n, int64_t k, const std::string &dyType,
                                     const std::string &xType, const std::string &dwType,
                                     std::string *why) {
  if (dyType != "__nv_bfloat16" || xType != "__nv_bfloat16") {
    *why = "activations are not bf16";
    return std::nullopt;
  }
  if (n % 8 != 0 || k % 8 != 0) {
    *why = "N or K is not a multiple of 8";
    return std::nullopt;
  }
  Source s;
  s.entry = "lora_linear_bwd_w_m" + std::to_string(m) + "_n" + std::to_string(n) + "_k" +
            std::to_string(k) + (dwType == "float" ? "_f32" : "_bf16");
  s.code = std::string(mmaPrelude()) + kDytXTile + subst(kLinearBwdW, {{"ENTRY", s.entry},
                                                           {"M", std::to_string(m)},
                                                           {"N", std::to_string(n)},
                                                           {"K", std::to_string(k)},
                                                           {"DWTYPE", dwType}});
  s.grid = (k + 63) / 64;
  s.gridY = (n + 63) / 64;
  s.block = 128;
  s.shared = 32 * (64 + 8) * 2 * 2;
  return s;
}

// ===========================================================================
// The linear backward on CUDA cores (any float type): see simt.h.

using namespace simt;

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
$ADAPTER_KERNELS$$DX_KERNEL$)";

// dx = dy·deq(W) (+ s·drop'(g·A)), rounded once.
const char *kSimtDx = R"(
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
  if (!floatType(g.dyType) || (g.dx && !floatType(g.dxType)) ||
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
  if (!g.dx && !adapter) {
    *why = "no gradient to compute";
    return std::nullopt;
  }
  const bool drop = adapter && g.dropout > 0;
  const std::string wType = g.wNf4 ? "unsigned char" : g.wType;
  std::string base = "lora_simt_linear_bwd_" + tag(g.dyType) + "_m" + std::to_string(g.m) + "_n" +
                     std::to_string(g.n) + "_k" + std::to_string(g.k) +
                     (g.hasW ? weightTag(g.wNf4, g.blockSize, g.doubleQuantBlock, "_w") : "") +
                     (adapter ? "_r" + std::to_string(g.rank) : "") + (drop ? "_drop" : "") +
                     (g.dx ? "" : "_nodx");
  std::string params = "const " + g.dyType + "* __restrict__ dy";
  if (adapter)
    params += ", const " + g.xType + "* __restrict__ x";
  if (g.hasW)
    params += ", const " + wType + "* __restrict__ w";
  if (adapter)
    params += ", const " + g.aType + "* __restrict__ a_, const " + g.bType + "* __restrict__ b_";
  if (g.dx)
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
  v["DX_KERNEL"] = g.dx ? subst(kSimtDx, v) : "";
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
    if (g.dx)
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

} // namespace lorac::cuda

// ===========================================================================
// The family's emitters (codegen.h).

namespace lorac::cuda {
namespace {

const char *const kBf16 = "__nv_bfloat16";

/// dx, dA and dB through the frozen (dense or NF4) weight and the adapter:
/// several launches sharing a workspace for u and g. Operands: dy, W for
/// linear_bwd_x; dy, x, A, B for lora_bwd; dy, x, W, A, B for
/// fused_linear_bwd. Results dx (, dA, dB).
template <class P>
Emitted linearBwd(const KernelDesc &d, const P &p, bool hasX, bool hasW) {
  LinearBwd g;
  g.m = p.m;
  g.n = p.n;
  g.k = p.k;
  const Operand *w = nullptr;
  if (!hasX) {
    w = &d.inputs[1];
  } else {
    if (hasW)
      w = &d.inputs[2];
    const Operand &a = d.inputs[hasW ? 3 : 2], &b = d.inputs[hasW ? 4 : 3];
    if constexpr (!std::is_same_v<P, kernels::params::linear_bwd_x>) {
      g.rank = p.rank;
      g.scaling = p.scaling;
      g.dropout = p.dropout;
    }
    if constexpr (!std::is_same_v<P, kernels::params::linear_bwd_x>) {
      const int64_t noDx = p.no_dx.value_or(0);
      if (noDx != 0 && noDx != 1)
        return notCovered("parameter 'no_dx' must be 0 or 1");
      g.dx = noDx == 0;
    }
    const size_t o = g.dx ? 1 : 0;  // dx, when wanted, comes first
    g.xType = d.inputs[1].type;
    g.daType = d.outputs[o].type;
    g.dbType = d.outputs[o + 1].type;
    g.aType = a.type;
    g.bType = b.type;
  }
  g.dyType = d.inputs[0].type;
  if (g.dx)
    g.dxType = d.outputs[0].type;
  g.hasW = w != nullptr;
  if (w) {
    // A dense W of any float type (the LM head under DPO: an f32 dy
    // against a bf16 W), or NF4.
    if (!w->nf4)
      g.wType = w->type;
    if (!gemmWeight(*w, g.wType, &g.wNf4, &g.blockSize, &g.doubleQuantBlock))
      return notCovered("the weight's type is not covered");
  }
  std::string why;
  std::optional<Source> s;
  if (g.aType == kBf16 && g.bType == kBf16 && g.wType == kBf16)
    s = emitLinearBwd(g, &why);
  if (!s)
    s = emitSimtLinearBwd(g, &why);
  return emitted(std::move(s), why);
}

Emitted linearBwdXKernel(const KernelDesc &d) {
  return linearBwd(d, d.get<kernels::params::linear_bwd_x>(), false, true);
}
Emitted loraBwdKernel(const KernelDesc &d) {
  return linearBwd(d, d.get<kernels::params::lora_bwd>(), true, false);
}
Emitted fusedLinearBwdKernel(const KernelDesc &d) {
  return linearBwd(d, d.get<kernels::params::fused_linear_bwd>(), true, true);
}

/// dW = dyᵀ·x.
Emitted linearBwdWKernel(const KernelDesc &d) {
  const auto &p = d.get<kernels::params::linear_bwd_w>();
  const std::string &dy = d.inputs[0].type, &x = d.inputs[1].type, &dw = d.outputs[0].type;
  std::string why;
  std::optional<Source> s = emitLinearBwdW(p.m, p.n, p.k, dy, x, dw, &why);
  if (!s)
    s = emitSimtLinearBwdW(p.m, p.n, p.k, dy, x, dw, &why);
  return emitted(std::move(s), why);
}

} // namespace

const std::vector<Emitter> &linearBwdEmitters() {
  static const std::vector<Emitter> t = {
      {kernels::Kind::linear_bwd_x, linearBwdXKernel},
      {kernels::Kind::lora_bwd, loraBwdKernel},
      {kernels::Kind::fused_linear_bwd, fusedLinearBwdKernel},
      {kernels::Kind::linear_bwd_w, linearBwdWKernel},
  };
  return t;
}

} // namespace lorac::cuda
