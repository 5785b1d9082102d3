// The linear family's shared machinery on the CPU, used by linear.cc (matmuls,
// LoRA adapters, embeddings, dequantization), lm_head.cc (the LM head and its
// chunked cross-entropy) and losses.cc (cross-entropy, sequence
// log-probabilities, DPO, replay, EWC): per-thread scratch, operand checks,
// NF4 weights dequantized tile by tile, adapters and dropout, the fused
// product and its gradients, softmax rows. Internal to the CPU backend.
//
// Matrix products go through Gemm (gemm.h). Elementwise work (dropout masks,
// bias, epilogues, softmax) runs on OpenMP threads, ctx.num_threads of them.
// NF4 weights are dequantized a tile at a time into a per-thread scratch, in
// the compute type of the other operand (bf16 for bf16 activations, f32
// otherwise) — bit for bit what nf4.h's DequantizeNf4(ToBf16) give — and
// multiplied tile by tile: the dequantized matrix never exists whole.
#ifndef LORART_CPU_MATMUL_H_
#define LORART_CPU_MATMUL_H_

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "lorart/cpu/gemm.h"
#include "lorart/cpu/kernel.h"
#include "lorart/cpu/linear_tiles.h"
#include "lorart/cpu/vecmath.h"
#include "lorart/quant/nf4.h"

namespace lorart::cpu::matmul {

// ----------------------------------------------------------------------------
// Sizes of the per-thread scratch tiles.

// Elements of one dequantized NF4 tile (1 Mi: 2 MiB in bf16, 4 MiB in f32).
constexpr int64_t kNf4TileElems = int64_t{1} << 20;
// Elements of one f32 output panel when the result needs an epilogue before
// it is rounded into the output (16 MiB).
constexpr int64_t kOutPanelElems = int64_t{1} << 22;

inline int64_t Clamp(int64_t v, int64_t lo, int64_t hi) { return std::max(lo, std::min(v, hi)); }

// Per-thread scratch buffers, one per purpose. Kernels never nest, so each
// slot has one user at a time on a thread; buffers keep their peak size.
enum Slot {
  kDrop,
  kU,
  kG,
  kTile,
  kPanel,
  kPanel2,
  kBias,
  kGather,
  kLogits,
  kRows,
  kAbsmax,
  kKeep,
  kKeepAll,
  kGrad16,
  kNumSlots
};
template <typename T>
T* Scratch(Slot slot, int64_t n) {
  thread_local std::vector<uint8_t> bufs[kNumSlots];
  std::vector<uint8_t>& v = bufs[slot];
  const size_t bytes = static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(T);
  if (v.size() < bytes) v.resize(bytes);
  return reinterpret_cast<T*>(v.data());
}

inline size_t ElemSize(DType t) {
  switch (t) {
    case DType::F32:
    case DType::I32:
      return 4;
    case DType::I64:
      return 8;
    case DType::BOOL:
      return 1;
    default:
      return 2;
  }
}
inline const char* Name(DType t) { return schema::EnumNameDType(t); }

// The operand `t` starting `offset` elements in, with row stride `ld`.
inline GemmMatrix Mat(const TensorView& t, int64_t offset, int64_t ld) {
  return {static_cast<const uint8_t*>(t.data) + offset * static_cast<int64_t>(ElemSize(t.dtype)),
          t.dtype, ld};
}
inline GemmMatrix Mat(const void* p, DType t, int64_t ld) { return {p, t, ld}; }
inline TensorView View(const void* p, DType t) {
  TensorView v;
  v.data = const_cast<void*>(p);
  v.dtype = t;
  return v;
}

// ----------------------------------------------------------------------------
// Parameter and operand checks (errors name the kernel kind).

inline Status SizeParam(const KernelParams& p, const char* key, int64_t value, int64_t* out) {
  *out = value;
  if (*out < 1)
    return InvalidArgumentError(StrFormat("kernel '%s': parameter '%s' must be positive, got %lld",
                                          p.kind().c_str(), key, static_cast<long long>(*out)));
  return OkStatus();
}

// The product sizes m, n, k of the matmul kinds (each positive); P is the
// kind's parameter struct, read into *prm.
template <class P>
Status MatmulSizes(const KernelParams& p, P* prm, int64_t* m, int64_t* n, int64_t* k) {
  LORA_RETURN_IF_ERROR(p.Typed(prm));
  LORA_RETURN_IF_ERROR(SizeParam(p, "m", prm->m, m));
  LORA_RETURN_IF_ERROR(SizeParam(p, "n", prm->n, n));
  return SizeParam(p, "k", prm->k, k);
}

inline Status ExpectFloatN(const KernelParams& p, const TensorView& t, int64_t n,
                           const char* what) {
  LORA_RETURN_IF_ERROR(ExpectFloat(p, t, what));
  LORA_RETURN_IF_ERROR(ExpectElements(p, t, n, what));
  if (t.data == nullptr)
    return InvalidArgumentError(StrFormat("kernel '%s': %s has no data", p.kind().c_str(), what));
  return OkStatus();
}

inline Status ExpectTyped(const KernelParams& p, const TensorView& t, DType want, int64_t n,
                          const char* what) {
  if (t.dtype != want)
    return InvalidArgumentError(StrFormat("kernel '%s': %s must be %s, got %s", p.kind().c_str(),
                                          what, Name(want), Name(t.dtype)));
  LORA_RETURN_IF_ERROR(ExpectElements(p, t, n, what));
  if (t.data == nullptr)
    return InvalidArgumentError(StrFormat("kernel '%s': %s has no data", p.kind().c_str(), what));
  return OkStatus();
}

inline Status ExpectIndex(const KernelParams& p, const TensorView& t, int64_t n, const char* what) {
  if (t.dtype != DType::I32 && t.dtype != DType::I64)
    return InvalidArgumentError(StrFormat("kernel '%s': %s must be I32 or I64, got %s",
                                          p.kind().c_str(), what, Name(t.dtype)));
  LORA_RETURN_IF_ERROR(ExpectElements(p, t, n, what));
  if (t.data == nullptr)
    return InvalidArgumentError(StrFormat("kernel '%s': %s has no data", p.kind().c_str(), what));
  return OkStatus();
}

inline int64_t LoadIndex(const TensorView& t, int64_t i) {
  return t.dtype == DType::I64 ? t.as<const int64_t>()[i] : t.as<const int32_t>()[i];
}

inline int Threads(const KernelContext& ctx) { return std::max(1, ctx.num_threads); }

// ----------------------------------------------------------------------------
// Weights: dense, or NF4 dequantized tile by tile.

struct Weight {
  const TensorView* t = nullptr;
  int64_t n = 0, k = 0;  // logical [n, k]
  bool nf4 = false;
  Nf4Layout layout;
  const float* absmax = nullptr;  // per block, double quantization undone
};

// P: a kind with the weight-format parameters.
template <class P>
Status BindWeight(const KernelParams& p, const P& prm, const TensorView& w, int64_t n, int64_t k,
                  Weight* out) {
  out->t = &w;
  out->n = n;
  out->k = k;
  const std::string& format = prm.weight_format;
  if (format == "dense") {
    out->nf4 = false;
    return ExpectFloatN(p, w, n * k, "the weight");
  }
  if (format != "nf4")
    return InvalidArgumentError(
        StrFormat("kernel '%s': weight_format must be 'dense' or 'nf4', got '%s'", p.kind().c_str(),
                  format.c_str()));
  if (w.dtype != DType::NF4)
    return InvalidArgumentError(
        StrFormat("kernel '%s': weight_format 'nf4' needs an NF4 weight, got %s", p.kind().c_str(),
                  Name(w.dtype)));
  if (!prm.block_size || !prm.double_quant_block)
    return InvalidArgumentError(StrFormat(
        "kernel '%s': weight_format 'nf4' needs parameters 'block_size' and 'double_quant_block'",
        p.kind().c_str()));
  const int64_t bs = *prm.block_size, dqb = *prm.double_quant_block;
  if (w.nf4.block_size != 0 && (w.nf4.block_size != bs || w.nf4.double_quant_block != dqb))
    return InvalidArgumentError(StrFormat(
        "kernel '%s': the weight's NF4 layout (block_size %lld, double_quant_block %lld) differs "
        "from the parameters (%lld, %lld)",
        p.kind().c_str(), static_cast<long long>(w.nf4.block_size),
        static_cast<long long>(w.nf4.double_quant_block), static_cast<long long>(bs),
        static_cast<long long>(dqb)));
  LORA_RETURN_IF_ERROR(ExpectElements(p, w, n * k, "the weight"));
  if (w.data == nullptr)
    return InvalidArgumentError(StrFormat("kernel '%s': the weight has no data", p.kind().c_str()));
  StatusOr<Nf4Layout> layout = Nf4Layout::Make(n * k, bs, dqb);
  if (!layout.ok()) {
    Status s = layout.status();
    return s.WithContext(StrFormat("kernel '%s'", p.kind().c_str()));
  }
  out->nf4 = true;
  out->layout = *layout;
  float* absmax = Scratch<float>(kAbsmax, out->layout.num_blocks);
  LORA_RETURN_IF_ERROR(DequantizeNf4Absmax(w.as<const uint8_t>(), out->layout.total_bytes(),
                                           out->layout, absmax, out->layout.num_blocks),
                       "kernel '%s'", p.kind().c_str());
  out->absmax = absmax;
  return OkStatus();
}

// The 16 x 16 pairs of codebook values a code byte holds (high nibble first).
struct Nf4Pairs {
  float v[256][2];
  Nf4Pairs() {
    for (int b = 0; b < 256; ++b) {
      v[b][0] = kNf4Codebook[b >> 4];
      v[b][1] = kNf4Codebook[b & 15];
    }
  }
};
inline const Nf4Pairs& Pairs() {
  static const Nf4Pairs pairs;
  return pairs;
}

struct ToF32 {
  float operator()(float v) const { return v; }
};
struct ToBf16 {
  uint16_t operator()(float v) const { return FloatToBf16(v); }
};
struct ToF16 {
  uint16_t operator()(float v) const { return FloatToHalf(v); }
};

// Dequantizes rows [r0, r1) x columns [c0, c1) of an NF4 weight into `dst`
// (row stride `ld`): w = codebook[code] * absmax, rounded once by `cvt`.
template <typename Out, typename Cvt>
void DequantRectT(const Weight& w, int64_t r0, int64_t r1, int64_t c0, int64_t c1, Out* dst,
                  int64_t ld, int threads, Cvt cvt) {
  const uint8_t* codes = w.t->as<const uint8_t>();
  const float* absmax = w.absmax;
  const int64_t bs = w.layout.block_size, k = w.k;
  const auto& pairs = Pairs().v;
#pragma omp parallel for num_threads(threads) \
    schedule(static) if ((r1 - r0) * (c1 - c0) >= (1 << 15))
  for (int64_t i = r0; i < r1; ++i) {
    Out* o = dst + (i - r0) * ld;
    int64_t e = i * k + c0;
    const int64_t end = i * k + c1;
    while (e < end) {
      const int64_t b = e / bs;
      const int64_t seg = std::min(end, (b + 1) * bs);
      const float amax = absmax[b];
      if (e & 1) {  // odd start: the low nibble of a byte
        *o++ = cvt(kNf4Codebook[codes[e >> 1] & 15] * amax);
        ++e;
      }
      for (; e + 1 < seg; e += 2, o += 2) {
        const float* pr = pairs[codes[e >> 1]];
        o[0] = cvt(pr[0] * amax);
        o[1] = cvt(pr[1] * amax);
      }
      if (e < seg) {  // odd end: the high nibble
        *o++ = cvt(kNf4Codebook[codes[e >> 1] >> 4] * amax);
        ++e;
      }
    }
  }
}

inline void DequantRect(const Weight& w, int64_t r0, int64_t r1, int64_t c0, int64_t c1, void* dst,
                        DType dt, int64_t ld, int threads) {
  switch (dt) {
    case DType::BF16:
      DequantRectT(w, r0, r1, c0, c1, static_cast<uint16_t*>(dst), ld, threads, ToBf16());
      break;
    case DType::F16:
      DequantRectT(w, r0, r1, c0, c1, static_cast<uint16_t*>(dst), ld, threads, ToF16());
      break;
    default:
      DequantRectT(w, r0, r1, c0, c1, static_cast<float*>(dst), ld, threads, ToF32());
  }
}

// The type NF4 tiles are dequantized to when multiplied with `other`.
inline DType TileType(DType other) { return other == DType::BF16 ? DType::BF16 : DType::F32; }

// Rows [n0, n1) of the weight (all k columns) as a Gemm operand.
inline GemmMatrix WeightRows(const Weight& w, int64_t n0, int64_t n1, DType tile_dt, int threads) {
  if (!w.nf4) return Mat(*w.t, n0 * w.k, w.k);
  void* tile = Scratch<uint8_t>(kTile, (n1 - n0) * w.k * static_cast<int64_t>(ElemSize(tile_dt)));
  DequantRect(w, n0, n1, 0, w.k, tile, tile_dt, w.k, threads);
  return Mat(tile, tile_dt, w.k);
}

// Columns [k0, k1) of the weight (all n rows) as a Gemm operand.
inline GemmMatrix WeightCols(const Weight& w, int64_t k0, int64_t k1, DType tile_dt, int threads) {
  if (!w.nf4) return Mat(*w.t, k0, w.k);
  void* tile = Scratch<uint8_t>(kTile, w.n * (k1 - k0) * static_cast<int64_t>(ElemSize(tile_dt)));
  DequantRect(w, 0, w.n, k0, k1, tile, tile_dt, k1 - k0, threads);
  return Mat(tile, tile_dt, k1 - k0);
}

// ----------------------------------------------------------------------------
// LoRA adapters and dropout.

struct Adapter {
  int64_t rank = 0;
  float scaling = 0.0f;
  double dropout = 0.0;
  uint64_t stream = 0;
};

// P: a kind with the adapter parameters (scaling, dropout and rng_stream
// Required or Optional).
template <class P>
Status ReadAdapter(const KernelParams& p, const P& prm, bool required, Adapter* ad) {
  ad->rank = prm.rank;
  if (ad->rank < 0 || (required && ad->rank == 0))
    return InvalidArgumentError(StrFormat("kernel '%s': parameter 'rank' must be %s, got %lld",
                                          p.kind().c_str(), required ? "positive" : ">= 0",
                                          static_cast<long long>(ad->rank)));
  if (ad->rank == 0) return OkStatus();
  const std::optional<double> scaling = kernels::AsOptional(prm.scaling);
  if (!scaling)
    return InvalidArgumentError(
        StrFormat("kernel '%s': an adapter (rank %lld) needs parameter 'scaling'", p.kind().c_str(),
                  static_cast<long long>(ad->rank)));
  ad->scaling = static_cast<float>(*scaling);
  ad->dropout = kernels::AsOptional(prm.dropout).value_or(0.0);
  if (!(ad->dropout >= 0.0 && ad->dropout < 1.0))
    return InvalidArgumentError(
        StrFormat("kernel '%s': parameter 'dropout' must be in [0, 1), got %g", p.kind().c_str(),
                  ad->dropout));
  ad->stream = static_cast<uint64_t>(kernels::AsOptional(prm.rng_stream).value_or(0));
  return OkStatus();
}

inline float DropScale(double p) { return static_cast<float>(1.0 / (1.0 - p)); }

// drop(x) into a per-thread scratch of x's type (x itself when p = 0):
// element e kept (scaled by 1 / (1 - p)) when KeepDropout(seed, stream, e, p).
// With `keep` (count bytes), the mask is also left there (1 = kept), for a
// kernel that needs it again.
inline const void* DropInput(const KernelContext& ctx, const Adapter& ad, const TensorView& x,
                             int64_t count, uint8_t* keep = nullptr) {
  if (ad.dropout <= 0.0) return x.data;
  void* out = Scratch<uint8_t>(kDrop, count * static_cast<int64_t>(ElemSize(x.dtype)));
  TensorView o = View(out, x.dtype);
  constexpr int64_t kBlock = 4096;
  const int64_t blocks = (count + kBlock - 1) / kBlock;
#pragma omp parallel for num_threads(Threads(ctx)) schedule(static) if (count >= (1 << 15))
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t e0 = blk * kBlock, len = std::min(kBlock, count - e0);
    uint8_t drawn[kBlock];
    uint8_t* kp = keep ? keep + e0 : drawn;
    DropoutKeepMask(ctx.step_seed, ad.stream, static_cast<uint64_t>(e0), len, ad.dropout, kp);
    const float inv = DropScale(ad.dropout);
    if (x.dtype == DType::F32) {  // masked straight from x into the output
      ApplyKeepMaskTo(kp, len, inv, x.as<const float>() + e0, o.as<float>() + e0);
      continue;
    }
    float buf[kBlock];  // other types through an f32 block
    ToFloat(x, e0, len, buf);
    ApplyKeepMask(kp, len, inv, buf);
    FromFloat(buf, len, o, e0);
  }
  return out;
}

// Stores rows x cols f32 values of `src` (row stride lds) into `dst` at
// element `offset` with row stride ldd, adding bias[j] when given.
inline void StorePanel(const KernelContext& ctx, const float* src, int64_t lds, int64_t rows,
                       int64_t cols, const float* bias, const TensorView& dst, int64_t offset,
                       int64_t ldd) {
#pragma omp parallel for num_threads(Threads(ctx)) schedule(static) if (rows * cols >= (1 << 14))
  for (int64_t i = 0; i < rows; ++i) {
    const float* s = src + i * lds;
    if (bias == nullptr) {
      FromFloat(s, cols, dst, offset + i * ldd);
      continue;
    }
    float* row = Scratch<float>(kRows, cols);
    for (int64_t j = 0; j < cols; ++j) row[j] = s[j] + bias[j];
    FromFloat(row, cols, dst, offset + i * ldd);
  }
}

// y[m, n] = x·Wᵀ (+ bias) + scaling·(drop(x)·Aᵀ)·Bᵀ, each element rounded
// into y once. `w` null: the adapter term alone (lora_fwd). `rank` 0: no
// adapter.
inline Status LinearForward(const KernelContext& ctx, const TensorView& x, const Weight* w,
                            const TensorView* bias, const TensorView* a, const TensorView* b,
                            const Adapter& ad, const TensorView& y, int64_t m, int64_t n,
                            int64_t k) {
  const int T = Threads(ctx);
  const int64_t r = ad.rank;
  const void* su = nullptr;
  DType su_dt = DType::F32;
  if (r > 0) {  // su = scaling·drop(x)·Aᵀ, [m, r], in B's type when that is bf16
    const void* xd = DropInput(ctx, ad, x, m * k);
    su_dt = b->dtype == DType::BF16 ? DType::BF16 : DType::F32;
    void* buf = Scratch<uint8_t>(kU, m * r * static_cast<int64_t>(ElemSize(su_dt)));
    LORA_RETURN_IF_ERROR(Gemm(false, true, m, r, k, ad.scaling, Mat(xd, x.dtype, k), Mat(*a, 0, k),
                              0.0f, buf, su_dt, r, T));
    su = buf;
  }
  if (w == nullptr)  // adapter only: one product straight into y
    return Gemm(false, true, m, n, r, 1.0f, Mat(su, su_dt, r), Mat(*b, 0, r), 0.0f, y.data, y.dtype,
                n, T);

  const float* bias_f = nullptr;
  if (bias != nullptr) {
    float* bf = Scratch<float>(kBias, n);
    ToFloat(*bias, 0, n, bf);
    bias_f = bf;
  }
  // The register tiles where they apply: adapter and bias fused, y written once.
  TiledForward tiled;
  tiled.x = &x, tiled.w = w, tiled.u = su, tiled.b = b, tiled.r = r, tiled.bias = bias_f;
  tiled.y = &y, tiled.m = m, tiled.n = n, tiled.k = k;
  if (TiledLinearForward(ctx, tiled)) return OkStatus();
  // Products land in y itself when y is f32 or when nothing is added to
  // them; otherwise in an f32 panel that the epilogue rounds into y.
  const bool direct = y.dtype == DType::F32 || (bias == nullptr && r == 0);
  int64_t tn = w->nf4 ? Clamp(kNf4TileElems / k, 16, n) : n;
  if (!direct) tn = std::min(tn, Clamp(kOutPanelElems / m, 64, n));
  const DType tile_dt = TileType(x.dtype);
  for (int64_t n0 = 0; n0 < n; n0 += tn) {
    const int64_t nn = std::min(tn, n - n0);
    void* c;
    DType c_dt;
    int64_t ldc;
    if (direct) {
      c = static_cast<uint8_t*>(y.data) + n0 * static_cast<int64_t>(ElemSize(y.dtype));
      c_dt = y.dtype;
      ldc = n;
    } else {
      c = Scratch<float>(kPanel, m * nn);
      c_dt = DType::F32;
      ldc = nn;
    }
    GemmMatrix wm = WeightRows(*w, n0, n0 + nn, tile_dt, T);
    LORA_RETURN_IF_ERROR(
        Gemm(false, true, m, nn, k, 1.0f, Mat(x, 0, k), wm, 0.0f, c, c_dt, ldc, T));
    if (r > 0)
      LORA_RETURN_IF_ERROR(Gemm(false, true, m, nn, r, 1.0f, Mat(su, su_dt, r), Mat(*b, n0 * r, r),
                                1.0f, c, c_dt, ldc, T));
    if (!direct) {
      StorePanel(ctx, static_cast<const float*>(c), nn, m, nn, bias_f ? bias_f + n0 : nullptr, y,
                 n0, n);
    } else if (bias_f != nullptr) {  // y is f32: add the bias in place
      float* yf = y.as<float>();
#pragma omp parallel for num_threads(T) schedule(static) if (m * nn >= (1 << 14))
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < nn; ++j) yf[i * n + n0 + j] += bias_f[n0 + j];
    }
  }
  return OkStatus();
}

// dx[m, k] = dy·deq(W) (w may be null) + scaling·drop'(g·A), g = dy·B given
// as `g` [m, r] f32 (null when there is no adapter), each element of dx
// rounded once.
// `keep` [m, k]: the dropout mask when the caller already drew it.
inline Status InputGradient(const KernelContext& ctx, const TensorView& dy, const Weight* w,
                            const float* g, const TensorView* a, const Adapter& ad,
                            const TensorView& dx, int64_t m, int64_t n, int64_t k,
                            const uint8_t* keep = nullptr) {
  const int T = Threads(ctx);
  const int64_t r = g ? ad.rank : 0;
  const bool drop = r > 0 && ad.dropout > 0.0;
  if (w != nullptr) {  // the register tiles where they apply: the adapter term fused
    TiledInputGrad tiled;
    tiled.dy = &dy, tiled.w = w, tiled.g = g, tiled.a = a, tiled.r = r;
    tiled.coef = drop ? ad.scaling * DropScale(ad.dropout) : ad.scaling;
    tiled.drop = drop, tiled.seed = ctx.step_seed, tiled.stream = ad.stream, tiled.p = ad.dropout;
    tiled.keep = keep;
    tiled.dx = &dx, tiled.m = m, tiled.n = n, tiled.k = k;
    if (TiledInputGradient(ctx, tiled)) return OkStatus();
  }
  // A single product into dx when nothing has to be combined before rounding.
  if (w == nullptr && !drop)
    return Gemm(false, false, m, k, r, ad.scaling, Mat(g, DType::F32, r), Mat(*a, 0, k), 0.0f,
                dx.data, dx.dtype, k, T);
  if (w != nullptr && r == 0 && !w->nf4)
    return Gemm(false, false, m, k, n, 1.0f, Mat(dy, 0, n), Mat(*w->t, 0, k), 0.0f, dx.data,
                dx.dtype, k, T);
  // f32 dx takes the products in place (the masked adapter term is added
  // there too); other types go through an f32 panel rounded once.
  const bool direct = dx.dtype == DType::F32;
  const bool scratch_out = !direct && !(w != nullptr && r == 0);  // nf4 only: straight into dx
  int64_t kt = (w != nullptr && w->nf4) ? Clamp(kNf4TileElems / n, 16, k) : k;
  if (scratch_out || drop) kt = std::min(kt, Clamp(kOutPanelElems / m, 64, k));  // bounds t too
  const DType tile_dt = TileType(dy.dtype);
  const float inv = drop ? DropScale(ad.dropout) : 1.0f;
  for (int64_t k0 = 0; k0 < k; k0 += kt) {
    const int64_t kk = std::min(kt, k - k0);
    void* c;
    DType c_dt;
    int64_t ldc;
    if (scratch_out) {
      c = Scratch<float>(kPanel, m * kk);
      c_dt = DType::F32;
      ldc = kk;
    } else {
      c = static_cast<uint8_t*>(dx.data) + k0 * static_cast<int64_t>(ElemSize(dx.dtype));
      c_dt = dx.dtype;
      ldc = k;
    }
    if (w != nullptr)
      LORA_RETURN_IF_ERROR(Gemm(false, false, m, kk, n, 1.0f, Mat(dy, 0, n),
                                WeightCols(*w, k0, k0 + kk, tile_dt, T), 0.0f, c, c_dt, ldc, T));
    if (r > 0 && !drop)
      LORA_RETURN_IF_ERROR(Gemm(false, false, m, kk, r, ad.scaling, Mat(g, DType::F32, r),
                                Mat(*a, k0, k), w != nullptr ? 1.0f : 0.0f, c, c_dt, ldc, T));
    if (drop) {  // c (+)= mask · scaling·(g·A) / (1 - p)
      float* t = Scratch<float>(kPanel2, m * kk);
      LORA_RETURN_IF_ERROR(Gemm(false, false, m, kk, r, ad.scaling * inv, Mat(g, DType::F32, r),
                                Mat(*a, k0, k), 0.0f, t, DType::F32, kk, T));
      float* cf = static_cast<float*>(c);
      const bool add = w != nullptr;
#pragma omp parallel for num_threads(T) schedule(static) if (m * kk >= (1 << 14))
      for (int64_t i = 0; i < m; ++i) {
        const uint8_t* row_keep = keep ? keep + i * k + k0 : nullptr;
        if (!row_keep) {  // not drawn by the caller: draw this row's part
          uint8_t* drawn = Scratch<uint8_t>(kKeep, kk);
          DropoutKeepMask(ctx.step_seed, ad.stream, static_cast<uint64_t>(i * k + k0), kk,
                          ad.dropout, drawn);
          row_keep = drawn;
        }
        // Unaliased pointers and the branch-free select: the loop vectorizes.
        const uint8_t* __restrict kp = row_keep;
        const float* __restrict trow = t + i * kk;
        float* __restrict crow = cf + i * ldc;
        for (int64_t j = 0; j < kk; ++j) {
          const float v = KeptOrZero(trow[j], kp[j]);
          crow[j] = add ? crow[j] + v : v;
        }
      }
    }
    if (scratch_out) StorePanel(ctx, static_cast<const float*>(c), kk, m, kk, nullptr, dx, k0, k);
  }
  return OkStatus();
}

// The adapter's gradients (and dx through the optional frozen weight):
// u = drop(x)·Aᵀ, g = dy·B, dB = s·dyᵀ·u, dA = s·gᵀ·drop(x),
// dx = dy·deq(W) + s·drop'(g·A). `dx` null: no input gradient (no_dx).
inline Status AdapterBackward(const KernelContext& ctx, const TensorView& dy, const TensorView& x,
                              const Weight* w, const TensorView& a, const TensorView& b,
                              const Adapter& ad, const TensorView* dx, const TensorView& da,
                              const TensorView& db, int64_t m, int64_t n, int64_t k) {
  const int T = Threads(ctx);
  const int64_t r = ad.rank;
  // With dropout the mask is drawn once, for drop(x) and again for dx.
  uint8_t* keep = ad.dropout > 0.0 && dx != nullptr ? Scratch<uint8_t>(kKeepAll, m * k) : nullptr;
  const void* xd = DropInput(ctx, ad, x, m * k, keep);
  float* u = Scratch<float>(kU, m * r);
  float* g = Scratch<float>(kG, m * r);
  LORA_RETURN_IF_ERROR(Gemm(false, true, m, r, k, 1.0f, Mat(xd, x.dtype, k), Mat(a, 0, k), 0.0f, u,
                            DType::F32, r, T));
  LORA_RETURN_IF_ERROR(
      Gemm(false, false, m, r, n, 1.0f, Mat(dy, 0, n), Mat(b, 0, r), 0.0f, g, DType::F32, r, T));
  LORA_RETURN_IF_ERROR(Gemm(true, false, n, r, m, ad.scaling, Mat(dy, 0, n), Mat(u, DType::F32, r),
                            0.0f, db.data, db.dtype, r, T));
  LORA_RETURN_IF_ERROR(Gemm(true, false, r, k, m, ad.scaling, Mat(g, DType::F32, r),
                            Mat(xd, x.dtype, k), 0.0f, da.data, da.dtype, k, T));
  if (dx == nullptr) return OkStatus();
  return InputGradient(ctx, dy, w, g, &a, ad, *dx, m, n, k, keep);
}

// ----------------------------------------------------------------------------
// Softmax cross-entropy over float32 rows.

// Rows of `logits` as f32 (a pointer into it when it is f32).
inline const float* RowF32(const TensorView& logits, int64_t row, int64_t vocab, Slot slot) {
  if (logits.dtype == DType::F32) return logits.as<const float>() + row * vocab;
  float* buf = Scratch<float>(slot, vocab);
  ToFloat(logits, row * vocab, vocab, buf);
  return buf;
}

// Every masked-in target is in [0, vocab); counts the masked-in positions.
inline Status CheckTargets(const KernelParams& p, const TensorView& targets, const TensorView& mask,
                           int64_t tokens, int64_t vocab, int64_t* count) {
  const uint8_t* mk = mask.as<const uint8_t>();
  *count = 0;
  for (int64_t i = 0; i < tokens; ++i) {
    if (!mk[i]) continue;
    ++*count;
    const int64_t t = LoadIndex(targets, i);
    if (t < 0 || t >= vocab)
      return InvalidArgumentError(StrFormat(
          "kernel '%s': target %lld at position %lld is outside [0, %lld)", p.kind().c_str(),
          static_cast<long long>(t), static_cast<long long>(i), static_cast<long long>(vocab)));
  }
  return OkStatus();
}

inline Status CheckLossOperands(const KernelParams& p, const TensorView& targets,
                                const TensorView& mask, int64_t tokens) {
  LORA_RETURN_IF_ERROR(ExpectIndex(p, targets, tokens, "the targets"));
  return ExpectTyped(p, mask, DType::BOOL, tokens, "the mask");
}

}  // namespace lorart::cpu::matmul

#endif  // LORART_CPU_MATMUL_H_
