//===- lm_head.cpp - The LM-head loss: tensor-core and CUDA-core templates ===//
//
// `lm_head_ce_fwd` with bf16 activations and weight: the cross-entropy of
// the logits x·Wᵀ without a [tokens, vocab] matrix. `_rows`: one block per
// 64 tokens (4 warps of 16 rows) sweeps the vocabulary in tiles of 64; each
// logits tile is a tensor-core product over the hidden size (x and W staged
// 32 columns at a time with cp.async), and an online logsumexp keeps each
// row's running max and sum while the lane holding the row's target picks
// its logit. Each masked-in row's loss LSE − logit[target] lands in the
// workspace as a double; `_sum` adds them in token order (the CPU backend's
// order) and counts the masked-in tokens.
//
//===----------------------------------------------------------------------===//
#include "cuda/lm_head.h"
#include "cuda/linear_bwd.h"
#include "cuda/codegen.h"
#include "cuda/simt.h"

#include <map>

namespace lorac::cuda {
namespace {


const char *kLogitsTile = R"(
namespace {
constexpr int T = $T$, D = $D$, V = $V$;
// The logits tile [64 rows from m0, 64 vocabulary entries from v0] of this
// warp's 16 rows, over the whole hidden size.
__device__ __forceinline__ void lora_logits_tile(float (*s)[4], const __nv_bfloat16* x, const __nv_bfloat16* w,
                                                 int m0, int v0, unsigned char* smem) {
  constexpr int BM = 64, BK = 32, LDS = BK + 8;
  __nv_bfloat16 (*xs)[LDS] = (__nv_bfloat16 (*)[LDS])smem;
  __nv_bfloat16 (*ws)[LDS] = (__nv_bfloat16 (*)[LDS])(smem + BM * LDS * 2);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
#pragma unroll
  for (int j = 0; j < 8; ++j)
#pragma unroll
    for (int c = 0; c < 4; ++c) s[j][c] = 0.f;
  for (int k0 = 0; k0 < D; k0 += BK) {
    for (int c = tid; c < BM * (BK / 8); c += 128) {
      const int r = c / (BK / 8), kc = (c % (BK / 8)) * 8;
      const bool okx = m0 + r < T && k0 + kc < D, okw = v0 + r < V && k0 + kc < D;
      lora_cp16(&xs[r][kc], x + (okx ? (long)(m0 + r) * D + k0 + kc : 0), okx);
      lora_cp16(&ws[r][kc], w + (okw ? (long)(v0 + r) * D + k0 + kc : 0), okw);
    }
    lora_cp_commit();
    lora_cp_wait_all();
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      unsigned af[4];
      lora_ldsm_x4(af, &xs[warp * 16 + (lane % 8) + ((lane / 8) % 2) * 8][kk + (lane / 16) * 8]);
#pragma unroll
      for (int j = 0; j < 8; j += 2) {
        unsigned r4[4];
        lora_ldsm_x4(r4, &ws[j * 8 + (lane % 8) + (lane / 16) * 8][kk + ((lane / 8) % 2) * 8]);
        const unsigned b0[2] = {r4[0], r4[1]}, b1[2] = {r4[2], r4[3]};
        lora_mma_bf16(s[j], af, b0);
        lora_mma_bf16(s[j + 1], af, b1);
      }
    }
    __syncthreads();
  }
}

// Each of this warp's rows (g and g + 8): the logsumexp over the vocabulary
// (online, tile by tile) and the logit of the row's target (`tgt`; any
// value outside [0, V) picks nothing), complete in every lane of the quad.
__device__ __forceinline__ void lora_rows_lse(const __nv_bfloat16* x, const __nv_bfloat16* w, int m0,
                                              const long* tgt, float* lse, float* tl, unsigned char* smem) {
  const int t = threadIdx.x & 3;
  float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f};
  tl[0] = tl[1] = 0.f;
  for (int v0 = 0; v0 < V; v0 += 64) {
    float s[8][4];
    lora_logits_tile(s, x, w, m0, v0, smem);
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int r = c >> 1, col = v0 + j * 8 + 2 * t + (c & 1);
        if (col >= V) s[j][c] = -INFINITY;
        if (col == tgt[r]) tl[r] = s[j][c];
        mx[r] = fmaxf(mx[r], s[j][c]);
      }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      const float mnew = fmaxf(mrow[r], mx[r]);
      lrow[r] *= __expf(mrow[r] - mnew);
#pragma unroll
      for (int j = 0; j < 8; ++j) lrow[r] += __expf(s[j][2 * r] - mnew) + __expf(s[j][2 * r + 1] - mnew);
      mrow[r] = mnew;
    }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    lrow[r] += __shfl_xor_sync(0xffffffffu, lrow[r], 1);
    lrow[r] += __shfl_xor_sync(0xffffffffu, lrow[r], 2);
    tl[r] += __shfl_xor_sync(0xffffffffu, tl[r], 1);
    tl[r] += __shfl_xor_sync(0xffffffffu, tl[r], 2);
    lse[r] = mrow[r] + logf(lrow[r]);
  }
}
}  // namespace
)";

const char *kLmHeadCeFwd = R"(
// LM-head cross-entropy: tokens $T$, hidden $D$, vocab $V$.
extern "C" __global__ void __launch_bounds__(128, 1) $BASE$_rows($PARAMS$) {
  LORA_DYNAMIC_SMEM(smem);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2;
  const int m0 = blockIdx.x * 64;
  double* loss_ws = (double*)ws_;
  const int row[2] = {m0 + warp * 16 + g, m0 + warp * 16 + g + 8};
  long tgt[2];
  for (int r = 0; r < 2; ++r) tgt[r] = row[r] < T ? (long)targets[row[r]] : -1;
  float lse[2], tl[2];
  lora_rows_lse(x, w, m0, tgt, lse, tl, smem);
  for (int r = 0; r < 2; ++r)
    if ((lane & 3) == 0 && row[r] < T)
      loss_ws[row[r]] = mask[row[r]] ? (double)lse[r] - (double)tl[r] : 0.0;
}

)";

const char *kLmHeadSum = R"(
// The sum in token order and the count of masked-in tokens.
extern "C" __global__ void __launch_bounds__(32) $BASE$_sum($PARAMS$) {
  if (threadIdx.x != 0) return;
  const double* loss_ws = (const double*)ws_;
  double sum = 0.0;
  long long count = 0;
  for (long i = 0; i < T; ++i)
    if (mask[i]) {
      sum += loss_ws[i];
      ++count;
    }
  loss_sum[0] = (float)sum;
  count_[0] = count;
}
)";


// lm_head_ce_bwd_x: each row's logsumexp (`_lse`, as `_rows` of the
// forward), then per chunk of C tokens: the chunk's dlogits
// dloss·(softmax − onehot) (zero for masked-out rows), rounded to bf16 into
// the workspace (`_dl_c<i>`, one block per 64 rows x 64 vocabulary entries),
// and dx = dlogits·W for the chunk's rows (`_dx_c<i>`: a tensor-core GEMM
// over the vocabulary, W's tile through ldmatrix.trans).
// The backward's workspace: each row's logsumexp (f32), then the chunk's
// bf16 dlogits from a 16-byte boundary — cp.async reads their rows 16
// bytes at a time (row stride VP·2, VP a multiple of 8), and a misaligned
// cp.async faults on a GPU (the simulator checks it).
int64_t dlOffset(int64_t tokens) { return roundUp(tokens * 4, 16); }

/// The variables of the backward templates (kLmHeadCeBwdX, kLmHeadDw):
/// sizes, chunk, the dlogits' row stride and offset, the launches' entries.
std::map<std::string, std::string> bwdVars(const LmHeadCe &l, const std::string &base,
                                           const std::string &params, int64_t chunk, int64_t vp,
                                           const std::string &entries) {
  return {{"BASE", base},
          {"PARAMS", params},
          {"T", std::to_string(l.tokens)},
          {"D", std::to_string(l.hidden)},
          {"V", std::to_string(l.vocab)},
          {"C", std::to_string(chunk)},
          {"VP", std::to_string(vp)},
          {"DLOFF", std::to_string(dlOffset(l.tokens))},
          {"TT", l.targetType},
          {"CHUNK_ENTRIES", entries}};
}

const char *kLmHeadCeBwdX = R"(
// LM-head cross-entropy backward (dx): tokens $T$, hidden $D$, vocab $V$, chunk $C$.
namespace {
constexpr int C = $C$, VP = $VP$;
__device__ __forceinline__ void lora_dl(const __nv_bfloat16* x, const __nv_bfloat16* w, const $TT$* targets,
                                        const unsigned char* mask, const float* dloss, void* ws_, int c0) {
  LORA_DYNAMIC_SMEM(smem);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int v0 = blockIdx.x * 64, m0 = c0 + blockIdx.y * 64;
  const float* lse = (const float*)ws_;
  __nv_bfloat16* dl = (__nv_bfloat16*)((unsigned char*)ws_ + $DLOFF$);
  float s[8][4];
  lora_logits_tile(s, x, w, m0, v0, smem);
  const float scale = dloss[0];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = m0 + warp * 16 + g + 8 * r;
    if (row >= T || row >= c0 + C) continue;
    const bool on = mask[row] != 0;
    const long tg = (long)targets[row];
    const float l = lse[row];
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int col = v0 + j * 8 + 2 * t + c;
        if (col >= V) continue;
        const float p = __expf(s[j][2 * r + c] - l) - (col == tg ? 1.f : 0.f);
        dl[(long)(row - c0) * VP + col] = __float2bfloat16(on ? scale * p : 0.f);
      }
  }
}

// dx for the chunk's rows = dlogits (the workspace, row stride VP)·W.
template <int C0>
__device__ __forceinline__ void lora_dx(const __nv_bfloat16* w, __nv_bfloat16* dx, const void* ws_) {
  constexpr int ROWS = T - C0 < C ? T - C0 : C;
  LORA_DYNAMIC_SMEM(smem);
  const int k0 = blockIdx.x * 64, m0 = blockIdx.y * 64;  // m0: row within the chunk
  float acc[2][4][4];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[i][j][c] = 0.f;
  lora_dyw_tile<ROWS, V, D, VP>(acc, (const __nv_bfloat16*)((const unsigned char*)ws_ + $DLOFF$), w, m0, k0, smem);
  lora_tile64_each(acc, [&](int r, int c, float v) {
    if (m0 + r < ROWS && k0 + c < D) lora_st(dx, (long)(C0 + m0 + r) * D + k0 + c, v);
  });
}
}  // namespace

// Each row's logsumexp into the workspace (+inf never: every row has V entries).
extern "C" __global__ void __launch_bounds__(128, 1) $BASE$_lse($PARAMS$) {
  LORA_DYNAMIC_SMEM(smem);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2;
  const int m0 = blockIdx.x * 64;
  float* out = (float*)ws_;
  const long none[2] = {-1, -1};
  float lse[2], tl[2];
  lora_rows_lse(x, w, m0, none, lse, tl, smem);
  for (int r = 0; r < 2; ++r) {
    const int row = m0 + warp * 16 + g + 8 * r;
    if ((lane & 3) == 0 && row < T) out[row] = lse[r];
  }
}
$CHUNK_ENTRIES$
)";

// The weight gradient's per-chunk product: dw[v0.., k0..] (+)= Σ over the
// chunk's rows of dlogits[row][v]·x[C0 + row][k], summed over the chunks in
// f32 in $ACC$ (dw itself when it is f32, else the workspace's f32 copy);
// the last chunk stores dw.
const char *kLmHeadDw = R"(
namespace {
template <int C0, bool FIRST, bool LAST>
__device__ __forceinline__ void lora_dw(const __nv_bfloat16* x, $DWT$* dw, void* ws_) {
  constexpr int ROWS = T - C0 < $C$ ? T - C0 : $C$;
  LORA_DYNAMIC_SMEM(smem);
  const int k0 = blockIdx.x * 64, v0 = blockIdx.y * 64;
  float acc[2][4][4];
  lora_dytx_tile<ROWS, V, D, $VP$>(acc, (const __nv_bfloat16*)((const unsigned char*)ws_ + $DLOFF$), x + (long)C0 * D,
                                 v0, k0, smem);
  float* sum = $ACC$;
  lora_tile64_each(acc, [&](int r, int c, float v) {
    if (v0 + r >= V || k0 + c >= D) return;
    const long e = (long)(v0 + r) * D + k0 + c;
    if (!FIRST) v += sum[e];
    if (LAST) lora_st(dw, e, v);
    else sum[e] = v;
  });
}
}  // namespace
)";

} // namespace

const char *lmHeadSumKernel() { return kLmHeadSum; }

std::optional<Source> emitLmHeadCeFwd(const LmHeadCe &l, std::string *why) {
  if (l.xType != "__nv_bfloat16" || l.wType != "__nv_bfloat16") {
    *why = "x or the weight is not bf16";
    return std::nullopt;
  }
  if (l.hidden % 8 != 0) {
    *why = "hidden is not a multiple of 8";
    return std::nullopt;
  }
  std::string base = "lora_lm_head_ce_fwd_t" + std::to_string(l.tokens) + "_d" +
                     std::to_string(l.hidden) + "_v" + std::to_string(l.vocab);
  std::string params = "const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ w, const " +
                       l.targetType + "* __restrict__ targets, const unsigned char* __restrict__ mask, "
                       "float* __restrict__ loss_sum, long long* __restrict__ count_, void* __restrict__ ws_";
  Source s;
  s.code = std::string(mmaPrelude()) +
           subst(std::string(kLogitsTile) + kLmHeadCeFwd + kLmHeadSum, {{"BASE", base},
                                {"PARAMS", params},
                                {"T", std::to_string(l.tokens)},
                                {"D", std::to_string(l.hidden)},
                                {"V", std::to_string(l.vocab)}});
  s.entry = base + "_rows";
  s.grid = (l.tokens + 63) / 64;
  s.block = 128;
  s.shared = 2 * 64 * (32 + 8) * 2;
  Step sum;
  sum.entry = base + "_sum";
  sum.block = 32;
  s.next.push_back(sum);
  s.workspace = l.tokens * 8;
  return s;
}

} // namespace lorac::cuda

namespace lorac::cuda {

namespace {
// The shape checks of the chunked backward kernels.
bool checkChunked(const LmHeadCe &l, int64_t chunk, std::string *why) {
  if (l.hidden % 8 != 0) {
    *why = "hidden is not a multiple of 8";
    return false;
  }
  if (chunk <= 0) {
    *why = "chunk_size must be positive";
    return false;
  }
  return true;
}
} // namespace

std::optional<Source> emitLmHeadCeBwdX(const LmHeadCe &l, int64_t chunk, std::string *why) {
  if (l.xType != "__nv_bfloat16" || l.wType != "__nv_bfloat16" || l.dxType != "__nv_bfloat16") {
    *why = "x, the weight or dx is not bf16";
    return std::nullopt;
  }
  if (!checkChunked(l, chunk, why))
    return std::nullopt;
  const int64_t c = std::min(chunk, l.tokens);
  const int64_t chunks = (l.tokens + c - 1) / c;
  const int64_t vp = (l.vocab + 7) / 8 * 8;
  std::string base = "lora_lm_head_ce_bwd_x_t" + std::to_string(l.tokens) + "_d" +
                     std::to_string(l.hidden) + "_v" + std::to_string(l.vocab) + "_c" +
                     std::to_string(c);
  std::string params = "const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ w, const " +
                       l.targetType + "* __restrict__ targets, const unsigned char* __restrict__ mask, "
                       "const float* __restrict__ dloss, __nv_bfloat16* __restrict__ dx, void* __restrict__ ws_";
  std::string entries;
  for (int64_t i = 0; i < chunks; ++i) {
    entries += "extern \"C\" __global__ void __launch_bounds__(128, 1) " + base + "_dl_c" +
               std::to_string(i) + "(" + params + ") { lora_dl(x, w, targets, mask, dloss, ws_, " +
               std::to_string(i * c) + "); }\n";
    entries += "extern \"C\" __global__ void __launch_bounds__(128, 1) " + base + "_dx_c" +
               std::to_string(i) + "(" + params + ") { lora_dx<" + std::to_string(i * c) + ">(w, dx, ws_); }\n";
  }
  Source s;
  s.code = std::string(mmaPrelude()) + dyWTileFunction("") +
           subst(std::string(kLogitsTile) + kLmHeadCeBwdX, bwdVars(l, base, params, c, vp, entries));
  const int64_t tiles = 2 * 64 * (32 + 8) * 2;
  s.entry = base + "_lse";
  s.grid = (l.tokens + 63) / 64;
  s.block = 128;
  s.shared = tiles;
  for (int64_t i = 0; i < chunks; ++i) {
    const int64_t rows = std::min(c, l.tokens - i * c);
    Step dl{base + "_dl_c" + std::to_string(i), (l.vocab + 63) / 64, (rows + 63) / 64, 1, 128, tiles};
    Step dx{base + "_dx_c" + std::to_string(i), (l.hidden + 63) / 64, (rows + 63) / 64, 1, 128,
            dyWTileSharedBytes()};
    s.next.push_back(dl);
    s.next.push_back(dx);
  }
  s.workspace = dlOffset(l.tokens) + c * vp * 2;
  return s;
}

} // namespace lorac::cuda

namespace lorac::cuda {

std::optional<Source> emitLmHeadCeBwdW(const LmHeadCe &l, int64_t chunk, const std::string &dwType,
                                       std::string *why) {
  if (l.xType != "__nv_bfloat16" || l.wType != "__nv_bfloat16" ||
      (dwType != "__nv_bfloat16" && dwType != "float")) {
    *why = "x or the weight is not bf16, or dw is neither f32 nor bf16";
    return std::nullopt;
  }
  if (!checkChunked(l, chunk, why))
    return std::nullopt;
  const int64_t c = std::min(chunk, l.tokens);
  const int64_t chunks = (l.tokens + c - 1) / c;
  const int64_t vp = (l.vocab + 7) / 8 * 8;
  const bool f32 = dwType == "float";
  // The workspace: each row's logsumexp (f32), one chunk's bf16 dlogits,
  // and for a bf16 dw over several chunks the f32 sum.
  const int64_t accOffset = roundUp(dlOffset(l.tokens) + c * vp * 2, 256);
  const bool copy = !f32 && chunks > 1;
  std::string base = "lora_lm_head_ce_bwd_w_t" + std::to_string(l.tokens) + "_d" +
                     std::to_string(l.hidden) + "_v" + std::to_string(l.vocab) + "_c" +
                     std::to_string(c) + (f32 ? "_f32" : "_bf16");
  std::string params = "const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ w, const " +
                       l.targetType + "* __restrict__ targets, const unsigned char* __restrict__ mask, "
                       "const float* __restrict__ dloss, " + dwType + "* __restrict__ dw, void* __restrict__ ws_";
  std::string entries;
  for (int64_t i = 0; i < chunks; ++i) {
    entries += "extern \"C\" __global__ void __launch_bounds__(128, 1) " + base + "_dl_c" +
               std::to_string(i) + "(" + params + ") { lora_dl(x, w, targets, mask, dloss, ws_, " +
               std::to_string(i * c) + "); }\n";
    entries += "extern \"C\" __global__ void __launch_bounds__(128, 1) " + base + "_dw_c" +
               std::to_string(i) + "(" + params + ") { lora_dw<" + std::to_string(i * c) + ", " +
               (i == 0 ? "true" : "false") + ", " + (i + 1 == chunks ? "true" : "false") +
               ">(x, dw, ws_); }\n";
  }
  auto v = bwdVars(l, base, params, c, vp, entries);
  v["DWT"] = dwType;
  v["ACC"] = f32 ? std::string("(float*)dw")
                 : "(float*)((unsigned char*)ws_ + " + std::to_string(accOffset) + ")";
  Source s;
  // kLmHeadCeBwdX brings lora_dl and the `_lse` entry (its lora_dx is a
  // template this source never instantiates).
  s.code = std::string(mmaPrelude()) + dyWTileFunction("") + dytXTileFunction() +
           subst(std::string(kLogitsTile) + kLmHeadDw + kLmHeadCeBwdX, v);
  const int64_t tiles = 2 * 64 * (32 + 8) * 2;
  s.entry = base + "_lse";
  s.grid = (l.tokens + 63) / 64;
  s.block = 128;
  s.shared = tiles;
  for (int64_t i = 0; i < chunks; ++i) {
    const int64_t rows = std::min(c, l.tokens - i * c);
    s.next.push_back(
        Step{base + "_dl_c" + std::to_string(i), (l.vocab + 63) / 64, (rows + 63) / 64, 1, 128, tiles});
    s.next.push_back(Step{base + "_dw_c" + std::to_string(i), (l.hidden + 63) / 64,
                          (l.vocab + 63) / 64, 1, 128, dytXTileSharedBytes()});
  }
  s.workspace = copy ? accOffset + l.vocab * l.hidden * 4 : dlOffset(l.tokens) + c * vp * 2;
  return s;
}

// ===========================================================================
// The LM-head loss on CUDA cores (any float type): see simt.h.

using namespace simt;

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
const char *kSimtLmHeadDw = R"(
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
  v["PRODUCT"] = weight ? subst(kSimtLmHeadDw, v) : subst(kLmHeadDx, v);
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

} // namespace lorac::cuda

// ===========================================================================
// The family's emitters (codegen.h): operands x, weight, targets, mask
// (, dloss).

namespace lorac::cuda {
namespace {

template <class P> LmHeadCe lmHeadCe(const KernelDesc &d, const P &p) {
  LmHeadCe l;
  l.tokens = p.tokens;
  l.hidden = p.hidden;
  l.vocab = p.vocab;
  l.xType = d.inputs[0].type;
  l.wType = d.inputs[1].type;
  l.targetType = d.inputs[2].type;
  return l;
}

Emitted lmHeadCeFwdKernel(const KernelDesc &d) {
  LmHeadCe l = lmHeadCe(d, d.get<kernels::params::lm_head_ce_fwd>());
  std::string why;
  std::optional<Source> s = emitLmHeadCeFwd(l, &why);
  if (!s)
    s = emitSimtLmHeadCeFwd(l, &why);
  return emitted(std::move(s), why);
}

Emitted lmHeadCeBwdXKernel(const KernelDesc &d) {
  const auto &p = d.get<kernels::params::lm_head_ce_bwd_x>();
  LmHeadCe l = lmHeadCe(d, p);
  l.dxType = d.outputs[0].type;
  std::string why;
  std::optional<Source> s = emitLmHeadCeBwdX(l, p.chunk_size, &why);
  if (!s)
    s = emitSimtLmHeadCeBwdX(l, p.chunk_size, &why);
  return emitted(std::move(s), why);
}

Emitted lmHeadCeBwdWKernel(const KernelDesc &d) {
  const auto &p = d.get<kernels::params::lm_head_ce_bwd_w>();
  LmHeadCe l = lmHeadCe(d, p);
  const std::string &dw = d.outputs[0].type;
  std::string why;
  std::optional<Source> s = emitLmHeadCeBwdW(l, p.chunk_size, dw, &why);
  if (!s)
    s = emitSimtLmHeadCeBwdW(l, p.chunk_size, dw, &why);
  return emitted(std::move(s), why);
}

} // namespace

const std::vector<Emitter> &lmHeadEmitters() {
  static const std::vector<Emitter> t = {
      {kernels::Kind::lm_head_ce_fwd, lmHeadCeFwdKernel},
      {kernels::Kind::lm_head_ce_bwd_x, lmHeadCeBwdXKernel},
      {kernels::Kind::lm_head_ce_bwd_w, lmHeadCeBwdWKernel},
  };
  return t;
}

} // namespace lorac::cuda
