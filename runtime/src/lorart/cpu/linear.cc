// The linear family of CPU kernels: dense and NF4 matmuls with optional bias
// and LoRA adapter (forward and backward), the LM head with cross-entropy
// (plain and chunked over tokens), embeddings and NF4 dequantization.
// docs/kernels.md ("Linear family") describes every kind; the parameters are
// the ones lora-lower-to-kernels writes (passes/lib/LowerToKernels.cpp).
//
// Matrix products go through Gemm (gemm.h). Elementwise work (dropout masks,
// bias, epilogues, softmax) runs on OpenMP threads, ctx.num_threads of them.
// NF4 weights are dequantized a tile at a time into a per-thread scratch, in
// the compute type of the other operand (bf16 for bf16 activations, f32
// otherwise) — bit for bit what nf4.h's DequantizeNf4(ToBf16) give — and
// multiplied tile by tile: the dequantized matrix never exists whole.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "lorart/cpu/gemm.h"
#include "lorart/cpu/kernel.h"
#include "lorart/quant/nf4.h"

namespace lorart::cpu {
namespace {

// ----------------------------------------------------------------------------
// Sizes of the per-thread scratch tiles.

// Elements of one dequantized NF4 tile (1 Mi: 2 MiB in bf16, 4 MiB in f32).
constexpr int64_t kNf4TileElems = int64_t{1} << 20;
// Elements of one f32 output panel when the result needs an epilogue before
// it is rounded into the output (16 MiB).
constexpr int64_t kOutPanelElems = int64_t{1} << 22;

int64_t Clamp(int64_t v, int64_t lo, int64_t hi) { return std::max(lo, std::min(v, hi)); }

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

size_t ElemSize(DType t) {
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
const char* Name(DType t) { return schema::EnumNameDType(t); }

// The operand `t` starting `offset` elements in, with row stride `ld`.
GemmMatrix Mat(const TensorView& t, int64_t offset, int64_t ld) {
  return {static_cast<const uint8_t*>(t.data) + offset * static_cast<int64_t>(ElemSize(t.dtype)),
          t.dtype, ld};
}
GemmMatrix Mat(const void* p, DType t, int64_t ld) { return {p, t, ld}; }
TensorView View(const void* p, DType t) {
  TensorView v;
  v.data = const_cast<void*>(p);
  v.dtype = t;
  return v;
}

// ----------------------------------------------------------------------------
// Parameter and operand checks (errors name the kernel kind).

Status SizeParam(const KernelParams& p, const char* key, int64_t* out) {
  LORA_RETURN_IF_ERROR(p.Int(key, out));
  if (*out < 1)
    return InvalidArgumentError(StrFormat("kernel '%s': parameter '%s' must be positive, got %lld",
                                          p.kind().c_str(), key, static_cast<long long>(*out)));
  return OkStatus();
}

// The product sizes m, n, k of the matmul kinds (each positive).
Status MatmulSizes(const KernelParams& p, int64_t* m, int64_t* n, int64_t* k) {
  LORA_RETURN_IF_ERROR(SizeParam(p, "m", m));
  LORA_RETURN_IF_ERROR(SizeParam(p, "n", n));
  return SizeParam(p, "k", k);
}

Status ExpectFloatN(const KernelParams& p, const TensorView& t, int64_t n, const char* what) {
  LORA_RETURN_IF_ERROR(ExpectFloat(p, t, what));
  LORA_RETURN_IF_ERROR(ExpectElements(p, t, n, what));
  if (t.data == nullptr)
    return InvalidArgumentError(StrFormat("kernel '%s': %s has no data", p.kind().c_str(), what));
  return OkStatus();
}

Status ExpectTyped(const KernelParams& p, const TensorView& t, DType want, int64_t n,
                   const char* what) {
  if (t.dtype != want)
    return InvalidArgumentError(StrFormat("kernel '%s': %s must be %s, got %s", p.kind().c_str(),
                                          what, Name(want), Name(t.dtype)));
  LORA_RETURN_IF_ERROR(ExpectElements(p, t, n, what));
  if (t.data == nullptr)
    return InvalidArgumentError(StrFormat("kernel '%s': %s has no data", p.kind().c_str(), what));
  return OkStatus();
}

Status ExpectIndex(const KernelParams& p, const TensorView& t, int64_t n, const char* what) {
  if (t.dtype != DType::I32 && t.dtype != DType::I64)
    return InvalidArgumentError(StrFormat("kernel '%s': %s must be I32 or I64, got %s",
                                          p.kind().c_str(), what, Name(t.dtype)));
  LORA_RETURN_IF_ERROR(ExpectElements(p, t, n, what));
  if (t.data == nullptr)
    return InvalidArgumentError(StrFormat("kernel '%s': %s has no data", p.kind().c_str(), what));
  return OkStatus();
}

int64_t LoadIndex(const TensorView& t, int64_t i) {
  return t.dtype == DType::I64 ? t.as<const int64_t>()[i] : t.as<const int32_t>()[i];
}

int Threads(const KernelContext& ctx) { return std::max(1, ctx.num_threads); }

// ----------------------------------------------------------------------------
// Weights: dense, or NF4 dequantized tile by tile.

struct Weight {
  const TensorView* t = nullptr;
  int64_t n = 0, k = 0;  // logical [n, k]
  bool nf4 = false;
  Nf4Layout layout;
  const float* absmax = nullptr;  // per block, double quantization undone
};

Status BindWeight(const KernelParams& p, const TensorView& w, int64_t n, int64_t k, Weight* out) {
  out->t = &w;
  out->n = n;
  out->k = k;
  const std::string format = p.StringOr("weight_format", "dense");
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
  int64_t bs, dqb;
  LORA_RETURN_IF_ERROR(p.Int("block_size", &bs));
  LORA_RETURN_IF_ERROR(p.Int("double_quant_block", &dqb));
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
const Nf4Pairs& Pairs() {
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

void DequantRect(const Weight& w, int64_t r0, int64_t r1, int64_t c0, int64_t c1, void* dst,
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
DType TileType(DType other) { return other == DType::BF16 ? DType::BF16 : DType::F32; }

// Rows [n0, n1) of the weight (all k columns) as a Gemm operand.
GemmMatrix WeightRows(const Weight& w, int64_t n0, int64_t n1, DType tile_dt, int threads) {
  if (!w.nf4) return Mat(*w.t, n0 * w.k, w.k);
  void* tile = Scratch<uint8_t>(kTile, (n1 - n0) * w.k * static_cast<int64_t>(ElemSize(tile_dt)));
  DequantRect(w, n0, n1, 0, w.k, tile, tile_dt, w.k, threads);
  return Mat(tile, tile_dt, w.k);
}

// Columns [k0, k1) of the weight (all n rows) as a Gemm operand.
GemmMatrix WeightCols(const Weight& w, int64_t k0, int64_t k1, DType tile_dt, int threads) {
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

Status ReadAdapter(const KernelParams& p, bool required, Adapter* ad) {
  ad->rank = p.IntOr("rank", 0);
  if (ad->rank < 0 || (required && ad->rank == 0))
    return InvalidArgumentError(StrFormat("kernel '%s': parameter 'rank' must be %s, got %lld",
                                          p.kind().c_str(), required ? "positive" : ">= 0",
                                          static_cast<long long>(ad->rank)));
  if (ad->rank == 0) return OkStatus();
  double scaling;
  LORA_RETURN_IF_ERROR(p.Float("scaling", &scaling));
  ad->scaling = static_cast<float>(scaling);
  ad->dropout = p.FloatOr("dropout", 0.0);
  if (!(ad->dropout >= 0.0 && ad->dropout < 1.0))
    return InvalidArgumentError(
        StrFormat("kernel '%s': parameter 'dropout' must be in [0, 1), got %g", p.kind().c_str(),
                  ad->dropout));
  ad->stream = static_cast<uint64_t>(p.IntOr("rng_stream", 0));
  return OkStatus();
}

float DropScale(double p) { return static_cast<float>(1.0 / (1.0 - p)); }

// drop(x) into a per-thread scratch of x's type (x itself when p = 0):
// element e kept (scaled by 1 / (1 - p)) when KeepDropout(seed, stream, e, p).
const void* DropInput(const KernelContext& ctx, const Adapter& ad, const TensorView& x,
                      int64_t count) {
  if (ad.dropout <= 0.0) return x.data;
  void* out = Scratch<uint8_t>(kDrop, count * static_cast<int64_t>(ElemSize(x.dtype)));
  TensorView o = View(out, x.dtype);
  const float inv = DropScale(ad.dropout);
  constexpr int64_t kBlock = 4096;
  const int64_t blocks = (count + kBlock - 1) / kBlock;
#pragma omp parallel for num_threads(Threads(ctx)) schedule(static) if (count >= (1 << 15))
  for (int64_t blk = 0; blk < blocks; ++blk) {
    float buf[kBlock];
    const int64_t e0 = blk * kBlock, len = std::min(kBlock, count - e0);
    ToFloat(x, e0, len, buf);
    for (int64_t i = 0; i < len; ++i)
      buf[i] = KeepDropout(ctx.step_seed, ad.stream, static_cast<uint64_t>(e0 + i), ad.dropout)
                   ? buf[i] * inv
                   : 0.0f;
    FromFloat(buf, len, o, e0);
  }
  return out;
}

// Stores rows x cols f32 values of `src` (row stride lds) into `dst` at
// element `offset` with row stride ldd, adding bias[j] when given.
void StorePanel(const KernelContext& ctx, const float* src, int64_t lds, int64_t rows, int64_t cols,
                const float* bias, const TensorView& dst, int64_t offset, int64_t ldd) {
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
Status LinearForward(const KernelContext& ctx, const TensorView& x, const Weight* w,
                     const TensorView* bias, const TensorView* a, const TensorView* b,
                     const Adapter& ad, const TensorView& y, int64_t m, int64_t n, int64_t k) {
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
Status InputGradient(const KernelContext& ctx, const TensorView& dy, const Weight* w,
                     const float* g, const TensorView* a, const Adapter& ad, const TensorView& dx,
                     int64_t m, int64_t n, int64_t k) {
  const int T = Threads(ctx);
  const int64_t r = g ? ad.rank : 0;
  const bool drop = r > 0 && ad.dropout > 0.0;
  // A single product into dx when nothing has to be combined before rounding.
  if (w == nullptr && !drop)
    return Gemm(false, false, m, k, r, ad.scaling, Mat(g, DType::F32, r), Mat(*a, 0, k), 0.0f,
                dx.data, dx.dtype, k, T);
  if (w != nullptr && r == 0 && !w->nf4)
    return Gemm(false, false, m, k, n, 1.0f, Mat(dy, 0, n), Mat(*w->t, 0, k), 0.0f, dx.data,
                dx.dtype, k, T);
  const bool direct = dx.dtype == DType::F32 && !drop;
  const bool scratch_out = !direct && !(w != nullptr && r == 0);  // nf4 only: straight into dx
  int64_t kt = (w != nullptr && w->nf4) ? Clamp(kNf4TileElems / n, 16, k) : k;
  if (scratch_out) kt = std::min(kt, Clamp(kOutPanelElems / m, 64, k));
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
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < kk; ++j) {
          const uint64_t e = static_cast<uint64_t>(i * k + k0 + j);
          const float v =
              KeepDropout(ctx.step_seed, ad.stream, e, ad.dropout) ? t[i * kk + j] : 0.0f;
          cf[i * ldc + j] = add ? cf[i * ldc + j] + v : v;
        }
    }
    if (scratch_out) StorePanel(ctx, static_cast<const float*>(c), kk, m, kk, nullptr, dx, k0, k);
  }
  return OkStatus();
}

// The adapter's gradients (and dx through the optional frozen weight):
// u = drop(x)·Aᵀ, g = dy·B, dB = s·dyᵀ·u, dA = s·gᵀ·drop(x),
// dx = dy·deq(W) + s·drop'(g·A).
Status AdapterBackward(const KernelContext& ctx, const TensorView& dy, const TensorView& x,
                       const Weight* w, const TensorView& a, const TensorView& b, const Adapter& ad,
                       const TensorView& dx, const TensorView& da, const TensorView& db, int64_t m,
                       int64_t n, int64_t k) {
  const int T = Threads(ctx);
  const int64_t r = ad.rank;
  const void* xd = DropInput(ctx, ad, x, m * k);
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
  return InputGradient(ctx, dy, w, g, &a, ad, dx, m, n, k);
}

// ----------------------------------------------------------------------------
// Softmax cross-entropy over float32 rows.

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

constexpr int kLanes = 16;

float RowMax(const float* x, int64_t n) {
  float lanes[kLanes];
  for (int l = 0; l < kLanes; ++l) lanes[l] = -INFINITY;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) lanes[l] = lanes[l] > x[i + l] ? lanes[l] : x[i + l];
  float m = -INFINITY;
  for (int l = 0; l < kLanes; ++l) m = std::max(m, lanes[l]);
  for (; i < n; ++i) m = std::max(m, x[i]);
  int nan = 0;
  for (int64_t j = 0; j < n; ++j) nan |= x[j] != x[j];
  return nan ? std::numeric_limits<float>::quiet_NaN() : m;
}

// log Σ exp(x).
float LogSumExp(const float* x, int64_t n) {
  const float m = RowMax(x, n);
  if (!std::isfinite(m)) return m;
  float lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) lanes[l] += ExpF(x[i + l] - m);
  double s = 0.0;
  for (int l = 0; l < kLanes; ++l) s += lanes[l];
  for (; i < n; ++i) s += ExpF(x[i] - m);
  return m + static_cast<float>(std::log(s));
}

// g[j] = scale·(softmax(x)[j] - [j == target]) given lse = log Σ exp(x).
void SoftmaxGrad(const float* x, int64_t n, float lse, int64_t target, float scale, float* g) {
  if (!std::isfinite(lse)) {  // a NaN or infinite logit: the row's gradient is NaN
    std::fill(g, g + n, std::numeric_limits<float>::quiet_NaN());
    return;
  }
  for (int64_t j = 0; j < n; ++j) g[j] = scale * ExpF(x[j] - lse);
  g[target] -= scale;
}

// Rows of `logits` as f32 (a pointer into it when it is f32).
const float* RowF32(const TensorView& logits, int64_t row, int64_t vocab, Slot slot) {
  if (logits.dtype == DType::F32) return logits.as<const float>() + row * vocab;
  float* buf = Scratch<float>(slot, vocab);
  ToFloat(logits, row * vocab, vocab, buf);
  return buf;
}

// Every masked-in target is in [0, vocab); counts the masked-in positions.
Status CheckTargets(const KernelParams& p, const TensorView& targets, const TensorView& mask,
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

Status CheckLossOperands(const KernelParams& p, const TensorView& targets, const TensorView& mask,
                         int64_t tokens) {
  LORA_RETURN_IF_ERROR(ExpectIndex(p, targets, tokens, "the targets"));
  return ExpectTyped(p, mask, DType::BOOL, tokens, "the mask");
}

// ----------------------------------------------------------------------------
// Kernels.

Status LinearFwd(const KernelContext& ctx, const KernelParams& p, const std::vector<TensorView>& in,
                 const std::vector<TensorView>& out) {
  int64_t m, n, k;
  LORA_RETURN_IF_ERROR(MatmulSizes(p, &m, &n, &k));
  const int64_t has_bias = p.IntOr("bias", 0);
  if (has_bias != 0 && has_bias != 1)
    return InvalidArgumentError(StrFormat("kernel '%s': parameter 'bias' must be 0 or 1, got %lld",
                                          p.kind().c_str(), static_cast<long long>(has_bias)));
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 2 + has_bias, out, 1));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[0], m * k, "x"));
  Weight w;
  LORA_RETURN_IF_ERROR(BindWeight(p, in[1], n, k, &w));
  if (has_bias) LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[2], n, "the bias"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, out[0], m * n, "the output"));
  return LinearForward(ctx, in[0], &w, has_bias ? &in[2] : nullptr, nullptr, nullptr, Adapter(),
                       out[0], m, n, k);
}

Status FusedLinearFwd(const KernelContext& ctx, const KernelParams& p,
                      const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  int64_t m, n, k;
  LORA_RETURN_IF_ERROR(MatmulSizes(p, &m, &n, &k));
  const int64_t has_bias = p.IntOr("bias", 0);
  if (has_bias != 0 && has_bias != 1)
    return InvalidArgumentError(StrFormat("kernel '%s': parameter 'bias' must be 0 or 1, got %lld",
                                          p.kind().c_str(), static_cast<long long>(has_bias)));
  Adapter ad;
  LORA_RETURN_IF_ERROR(ReadAdapter(p, false, &ad));
  const size_t ia = 2 + static_cast<size_t>(has_bias);
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, ia + (ad.rank > 0 ? 2 : 0), out, 1));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[0], m * k, "x"));
  Weight w;
  LORA_RETURN_IF_ERROR(BindWeight(p, in[1], n, k, &w));
  if (has_bias) LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[2], n, "the bias"));
  if (ad.rank > 0) {
    LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[ia], ad.rank * k, "the adapter's A"));
    LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[ia + 1], n * ad.rank, "the adapter's B"));
  }
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, out[0], m * n, "the output"));
  return LinearForward(ctx, in[0], &w, has_bias ? &in[2] : nullptr, ad.rank > 0 ? &in[ia] : nullptr,
                       ad.rank > 0 ? &in[ia + 1] : nullptr, ad, out[0], m, n, k);
}

Status LoraFwd(const KernelContext& ctx, const KernelParams& p, const std::vector<TensorView>& in,
               const std::vector<TensorView>& out) {
  int64_t m, n, k;
  LORA_RETURN_IF_ERROR(MatmulSizes(p, &m, &n, &k));
  Adapter ad;
  LORA_RETURN_IF_ERROR(ReadAdapter(p, true, &ad));
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 3, out, 1));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[0], m * k, "x"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[1], ad.rank * k, "the adapter's A"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[2], n * ad.rank, "the adapter's B"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, out[0], m * n, "the output"));
  return LinearForward(ctx, in[0], nullptr, nullptr, &in[1], &in[2], ad, out[0], m, n, k);
}

Status LinearBwdX(const KernelContext& ctx, const KernelParams& p,
                  const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  int64_t m, n, k;
  LORA_RETURN_IF_ERROR(MatmulSizes(p, &m, &n, &k));
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 2, out, 1));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[0], m * n, "dy"));
  Weight w;
  LORA_RETURN_IF_ERROR(BindWeight(p, in[1], n, k, &w));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, out[0], m * k, "dx"));
  return InputGradient(ctx, in[0], &w, nullptr, nullptr, Adapter(), out[0], m, n, k);
}

Status LinearBwdW(const KernelContext& ctx, const KernelParams& p,
                  const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  int64_t m, n, k;
  LORA_RETURN_IF_ERROR(MatmulSizes(p, &m, &n, &k));
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 2, out, 1));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[0], m * n, "dy"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[1], m * k, "x"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, out[0], n * k, "dw"));
  return Gemm(true, false, n, k, m, 1.0f, Mat(in[0], 0, n), Mat(in[1], 0, k), 0.0f, out[0].data,
              out[0].dtype, k, Threads(ctx));
}

Status BiasBwd(const KernelContext& ctx, const KernelParams& p, const std::vector<TensorView>& in,
               const std::vector<TensorView>& out) {
  int64_t rows, n;
  LORA_RETURN_IF_ERROR(SizeParam(p, "rows", &rows));
  LORA_RETURN_IF_ERROR(SizeParam(p, "n", &n));
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 1, out, 1));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[0], rows * n, "dy"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, out[0], n, "the bias gradient"));
  // Column blocks in parallel; rows summed in order (deterministic).
  constexpr int64_t kCols = 256;
  const int64_t blocks = (n + kCols - 1) / kCols;
  const TensorView& dy = in[0];
#pragma omp parallel for num_threads(Threads(ctx)) schedule(static) if (rows * n >= (1 << 15))
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t j0 = blk * kCols, len = std::min(kCols, n - j0);
    float acc[kCols] = {}, row[kCols];
    for (int64_t i = 0; i < rows; ++i) {
      ToFloat(dy, i * n + j0, len, row);
      for (int64_t j = 0; j < len; ++j) acc[j] += row[j];
    }
    FromFloat(acc, len, out[0], j0);
  }
  return OkStatus();
}

// The adapter operands (A [r, k], B [n, r]) and the three gradients (dx, dA,
// dB) of lora_bwd and fused_linear_bwd.
Status ExpectAdapterBackward(const KernelParams& p, const TensorView& a, const TensorView& b,
                             const std::vector<TensorView>& out, int64_t m, int64_t n, int64_t k,
                             int64_t r) {
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, a, r * k, "the adapter's A"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, b, n * r, "the adapter's B"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, out[0], m * k, "dx"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, out[1], r * k, "dA"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, out[2], n * r, "dB"));
  return OkStatus();
}

// lora_bwd ([dy, x, a, b]) and fused_linear_bwd ([dy, x, w, a, b]) ->
// [dx, da, db].
Status AdapterBwdKernel(const KernelContext& ctx, const KernelParams& p,
                        const std::vector<TensorView>& in, const std::vector<TensorView>& out,
                        bool with_weight) {
  int64_t m, n, k;
  LORA_RETURN_IF_ERROR(MatmulSizes(p, &m, &n, &k));
  Adapter ad;
  LORA_RETURN_IF_ERROR(ReadAdapter(p, true, &ad));
  const size_t ia = with_weight ? 3 : 2;
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, ia + 2, out, 3));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[0], m * n, "dy"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[1], m * k, "x"));
  Weight w;
  if (with_weight) LORA_RETURN_IF_ERROR(BindWeight(p, in[2], n, k, &w));
  LORA_RETURN_IF_ERROR(ExpectAdapterBackward(p, in[ia], in[ia + 1], out, m, n, k, ad.rank));
  return AdapterBackward(ctx, in[0], in[1], with_weight ? &w : nullptr, in[ia], in[ia + 1], ad,
                         out[0], out[1], out[2], m, n, k);
}

Status LoraBwd(const KernelContext& ctx, const KernelParams& p, const std::vector<TensorView>& in,
               const std::vector<TensorView>& out) {
  return AdapterBwdKernel(ctx, p, in, out, false);
}

Status FusedLinearBwd(const KernelContext& ctx, const KernelParams& p,
                      const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  return AdapterBwdKernel(ctx, p, in, out, true);
}

Status LmHeadFwd(const KernelContext& ctx, const KernelParams& p, const std::vector<TensorView>& in,
                 const std::vector<TensorView>& out) {
  int64_t m, n, k;
  LORA_RETURN_IF_ERROR(MatmulSizes(p, &m, &n, &k));
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 2, out, 1));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[0], m * k, "x"));
  Weight w;
  LORA_RETURN_IF_ERROR(BindWeight(p, in[1], n, k, &w));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, out[0], DType::F32, m * n, "the logits"));
  return LinearForward(ctx, in[0], &w, nullptr, nullptr, nullptr, Adapter(), out[0], m, n, k);
}

Status CrossEntropyFwd(const KernelContext& ctx, const KernelParams& p,
                       const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  int64_t t, v;
  LORA_RETURN_IF_ERROR(SizeParam(p, "tokens", &t));
  LORA_RETURN_IF_ERROR(SizeParam(p, "vocab", &v));
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 3, out, 2));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[0], t * v, "the logits"));
  LORA_RETURN_IF_ERROR(CheckLossOperands(p, in[1], in[2], t));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, out[0], DType::F32, 1, "the loss sum"));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, out[1], DType::I64, 1, "the count"));
  int64_t count;
  LORA_RETURN_IF_ERROR(CheckTargets(p, in[1], in[2], t, v, &count));
  const uint8_t* mk = in[2].as<const uint8_t>();
  double* loss = Scratch<double>(kRows, t);
#pragma omp parallel for num_threads(Threads(ctx)) schedule(dynamic, 4) if (t * v >= (1 << 15))
  for (int64_t i = 0; i < t; ++i) {
    if (!mk[i]) {
      loss[i] = 0.0;
      continue;
    }
    const float* row = RowF32(in[0], i, v, kLogits);
    loss[i] = double(LogSumExp(row, v)) - double(row[LoadIndex(in[1], i)]);
  }
  double sum = 0.0;
  for (int64_t i = 0; i < t; ++i) sum += loss[i];
  out[0].as<float>()[0] = static_cast<float>(sum);
  out[1].as<int64_t>()[0] = count;
  return OkStatus();
}

Status CrossEntropyBwd(const KernelContext& ctx, const KernelParams& p,
                       const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  int64_t t, v;
  LORA_RETURN_IF_ERROR(SizeParam(p, "tokens", &t));
  LORA_RETURN_IF_ERROR(SizeParam(p, "vocab", &v));
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 4, out, 1));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[0], t * v, "the logits"));
  LORA_RETURN_IF_ERROR(CheckLossOperands(p, in[1], in[2], t));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, in[3], DType::F32, 1, "dloss"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, out[0], t * v, "the logits gradient"));
  int64_t count;
  LORA_RETURN_IF_ERROR(CheckTargets(p, in[1], in[2], t, v, &count));
  const uint8_t* mk = in[2].as<const uint8_t>();
  const float dloss = in[3].as<const float>()[0];
  const TensorView& dl = out[0];
#pragma omp parallel for num_threads(Threads(ctx)) schedule(dynamic, 4) if (t * v >= (1 << 15))
  for (int64_t i = 0; i < t; ++i) {
    float* g = dl.dtype == DType::F32 ? dl.as<float>() + i * v : Scratch<float>(kRows, v);
    if (!mk[i]) {
      std::fill(g, g + v, 0.0f);
    } else {
      const float* row = RowF32(in[0], i, v, kLogits);
      SoftmaxGrad(row, v, LogSumExp(row, v), LoadIndex(in[1], i), dloss, g);
    }
    if (dl.dtype != DType::F32) FromFloat(g, v, dl, i * v);
  }
  return OkStatus();
}

// ----------------------------------------------------------------------------
// Preference objectives: per-sequence log-probabilities and the DPO/IPO loss.
// Inputs: logits [tokens, vocab], targets, mask, sequence ids [tokens]
// (a masked-in token's id must lie in [0, sequences)).

Status CheckSequenceIds(const KernelParams& p, const TensorView& ids, const TensorView& mask,
                        int64_t tokens, int64_t sequences) {
  LORA_RETURN_IF_ERROR(ExpectIndex(p, ids, tokens, "the sequence ids"));
  const uint8_t* mk = mask.as<const uint8_t>();
  for (int64_t i = 0; i < tokens; ++i) {
    int64_t s = LoadIndex(ids, i);
    if (mk[i] && (s < 0 || s >= sequences))
      return InvalidArgumentError(StrFormat(
          "kernel '%s': token %lld is in the loss but its sequence id %lld is outside [0, %lld)",
          p.kind().c_str(), static_cast<long long>(i), static_cast<long long>(s),
          static_cast<long long>(sequences)));
  }
  return OkStatus();
}

// The sizes and the shared operands (logits, targets, mask, sequence ids) of
// both sequence_logprobs kernels, checked.
Status SequenceLogProbsOperands(const KernelParams& p, const std::vector<TensorView>& in,
                                int64_t* t, int64_t* v, int64_t* n) {
  LORA_RETURN_IF_ERROR(SizeParam(p, "tokens", t));
  LORA_RETURN_IF_ERROR(SizeParam(p, "vocab", v));
  LORA_RETURN_IF_ERROR(SizeParam(p, "sequences", n));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[0], *t * *v, "the logits"));
  LORA_RETURN_IF_ERROR(CheckLossOperands(p, in[1], in[2], *t));
  int64_t count;
  LORA_RETURN_IF_ERROR(CheckTargets(p, in[1], in[2], *t, *v, &count));
  return CheckSequenceIds(p, in[3], in[2], *t, *n);
}

Status SequenceLogProbsFwd(const KernelContext& ctx, const KernelParams& p,
                           const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  int64_t t, v, n;
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 4, out, 1));
  LORA_RETURN_IF_ERROR(SequenceLogProbsOperands(p, in, &t, &v, &n));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, out[0], DType::F32, n, "the log-probabilities"));
  const uint8_t* mk = in[2].as<const uint8_t>();
  double* logp = Scratch<double>(kRows, t);
#pragma omp parallel for num_threads(Threads(ctx)) schedule(dynamic, 4) if (t * v >= (1 << 15))
  for (int64_t i = 0; i < t; ++i) {
    if (!mk[i]) {
      logp[i] = 0.0;
      continue;
    }
    const float* row = RowF32(in[0], i, v, kLogits);
    logp[i] = double(row[LoadIndex(in[1], i)]) - double(LogSumExp(row, v));
  }
  // Summed in token order: the same result on every thread count.
  std::vector<double> sums(static_cast<size_t>(n), 0.0);
  for (int64_t i = 0; i < t; ++i)
    if (mk[i]) sums[LoadIndex(in[3], i)] += logp[i];
  for (int64_t s = 0; s < n; ++s) out[0].as<float>()[s] = static_cast<float>(sums[s]);
  return OkStatus();
}

Status SequenceLogProbsBwd(const KernelContext& ctx, const KernelParams& p,
                           const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  int64_t t, v, n;
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 5, out, 1));
  LORA_RETURN_IF_ERROR(SequenceLogProbsOperands(p, in, &t, &v, &n));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, in[4], DType::F32, n, "the log-probability gradients"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, out[0], t * v, "the logits gradient"));
  const uint8_t* mk = in[2].as<const uint8_t>();
  const float* dlogp = in[4].as<const float>();
  const TensorView& dl = out[0];
#pragma omp parallel for num_threads(Threads(ctx)) schedule(dynamic, 4) if (t * v >= (1 << 15))
  for (int64_t i = 0; i < t; ++i) {
    float* g = dl.dtype == DType::F32 ? dl.as<float>() + i * v : Scratch<float>(kRows, v);
    if (!mk[i]) {
      std::fill(g, g + v, 0.0f);
    } else {
      // d log p[target] / d logits = onehot - softmax: the cross-entropy
      // gradient with the opposite sign.
      const float* row = RowF32(in[0], i, v, kLogits);
      SoftmaxGrad(row, v, LogSumExp(row, v), LoadIndex(in[1], i), -dlogp[LoadIndex(in[3], i)], g);
    }
    if (dl.dtype != DType::F32) FromFloat(g, v, dl, i * v);
  }
  return OkStatus();
}

// Replay in DPO: out = weight · pairs present / max(lm_count, 1) · value,
// linear in value — the forward (value = the replay tokens' summed loss) and
// the backward (value = dloss) are the same product.
Status ReplayScaled(const KernelParams& p, const TensorView& value, const TensorView& count,
                    const TensorView& pair_mask, const TensorView& out, const char* what) {
  int64_t pairs;
  double weight;
  LORA_RETURN_IF_ERROR(SizeParam(p, "pairs", &pairs));
  LORA_RETURN_IF_ERROR(p.Float("weight", &weight));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, value, DType::F32, 1, what));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, count, DType::I64, 1, "the replay token count"));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, pair_mask, DType::BOOL, pairs, "the pair mask"));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, out, DType::F32, 1, "the result"));
  int64_t present = 0;
  for (int64_t q = 0; q < pairs; ++q) present += pair_mask.as<const uint8_t>()[q] ? 1 : 0;
  double scale = weight * double(present) / double(std::max<int64_t>(1, count.as<const int64_t>()[0]));
  out.as<float>()[0] = static_cast<float>(scale * double(value.as<const float>()[0]));
  return OkStatus();
}

// lm_sum, lm_count, pair_mask -> the weighted replay loss.
Status ReplayLossFwd(const KernelContext&, const KernelParams& p,
                     const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 3, out, 1));
  return ReplayScaled(p, in[0], in[1], in[2], out[0], "the replay loss sum");
}

// lm_count, pair_mask, dloss -> d lm_sum.
Status ReplayLossBwd(const KernelContext&, const KernelParams& p,
                     const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 3, out, 1));
  return ReplayScaled(p, in[2], in[0], in[1], out[0], "dloss");
}

// EWC: the penalty λ·Σ F ⊙ ΔW² on an adapter's update ΔW = s·B·A (B [n, r],
// A [r, k], F [n, k]), and its gradients with respect to A and B.

struct EwcSizes {
  int64_t n, k, r;
  double scaling, lambda;
};

Status EwcParams(const KernelParams& p, const std::vector<TensorView>& in, EwcSizes* z) {
  LORA_RETURN_IF_ERROR(SizeParam(p, "n", &z->n));
  LORA_RETURN_IF_ERROR(SizeParam(p, "k", &z->k));
  LORA_RETURN_IF_ERROR(SizeParam(p, "rank", &z->r));
  LORA_RETURN_IF_ERROR(p.Float("scaling", &z->scaling));
  LORA_RETURN_IF_ERROR(p.Float("lambda", &z->lambda));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[0], z->r * z->k, "lora_A"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[1], z->n * z->r, "lora_B"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[2], z->n * z->k, "the Fisher"));
  return ExpectTyped(p, in[3], DType::I64, 1, "the count");
}

// Row `o` of ΔW = s·B·A in double.
void EwcDeltaRow(const EwcSizes& z, const std::vector<float>& a, const std::vector<float>& b,
                 int64_t o, double* row) {
  std::fill(row, row + z.k, 0.0);
  for (int64_t q = 0; q < z.r; ++q) {
    double bq = z.scaling * b[o * z.r + q];
    const float* aq = a.data() + q * z.k;
    for (int64_t c = 0; c < z.k; ++c) row[c] += bq * aq[c];
  }
}

std::vector<float> AsFloats(const TensorView& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  ToFloat(t, 0, t.numel(), v.data());
  return v;
}

Status EwcPenaltyFwd(const KernelContext& ctx, const KernelParams& p,
                     const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 4, out, 2));
  EwcSizes z;
  LORA_RETURN_IF_ERROR(EwcParams(p, in, &z));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, out[0], DType::F32, 1, "the weighted penalty"));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, out[1], DType::F32, 1, "the penalty"));
  std::vector<float> a = AsFloats(in[0]), b = AsFloats(in[1]), f = AsFloats(in[2]);
  std::vector<double> rows(static_cast<size_t>(z.n), 0.0);
#pragma omp parallel num_threads(Threads(ctx)) if (z.n * z.k * z.r >= (1 << 16))
  {
    std::vector<double> delta(static_cast<size_t>(z.k));
#pragma omp for schedule(static)
    for (int64_t o = 0; o < z.n; ++o) {
      EwcDeltaRow(z, a, b, o, delta.data());
      double sum = 0;
      for (int64_t c = 0; c < z.k; ++c) sum += double(f[o * z.k + c]) * delta[c] * delta[c];
      rows[o] = sum;
    }
  }
  double penalty = 0;
  for (double r : rows) penalty += r;  // in row order: the same on any thread count
  penalty *= z.lambda;
  out[0].as<float>()[0] = static_cast<float>(penalty * double(in[3].as<const int64_t>()[0]));
  out[1].as<float>()[0] = static_cast<float>(penalty);
  return OkStatus();
}

Status EwcPenaltyBwd(const KernelContext& ctx, const KernelParams& p,
                     const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 5, out, 2));
  EwcSizes z;
  LORA_RETURN_IF_ERROR(EwcParams(p, in, &z));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, in[4], DType::F32, 1, "dloss"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, out[0], z.r * z.k, "the lora_A gradient"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, out[1], z.n * z.r, "the lora_B gradient"));
  std::vector<float> a = AsFloats(in[0]), b = AsFloats(in[1]), f = AsFloats(in[2]);
  const double c = 2.0 * double(in[4].as<const float>()[0]) *
                   double(in[3].as<const int64_t>()[0]) * z.lambda;
  // G = c·F ⊙ ΔW, row by row; dB = s·G·Aᵀ per row; dA = s·Bᵀ·G summed over
  // the rows in order (per thread, then the threads' sums in order).
  std::vector<double> db(static_cast<size_t>(z.n * z.r), 0.0);
  int threads = Threads(ctx);
  if (z.n * z.k * z.r < (1 << 16)) threads = 1;
  std::vector<std::vector<double>> da(static_cast<size_t>(threads),
                                      std::vector<double>(static_cast<size_t>(z.r * z.k), 0.0));
#pragma omp parallel num_threads(threads)
  {
    std::vector<double> g(static_cast<size_t>(z.k));
    int t = 0;
#ifdef _OPENMP
    t = omp_get_thread_num();
#endif
    std::vector<double>& mine = da[static_cast<size_t>(t)];
#pragma omp for schedule(static)
    for (int64_t o = 0; o < z.n; ++o) {
      EwcDeltaRow(z, a, b, o, g.data());
      for (int64_t col = 0; col < z.k; ++col) g[col] *= c * double(f[o * z.k + col]);
      for (int64_t q = 0; q < z.r; ++q) {
        const float* aq = a.data() + q * z.k;
        double s = 0;
        for (int64_t col = 0; col < z.k; ++col) s += g[col] * aq[col];
        db[o * z.r + q] = z.scaling * s;
        double bq = z.scaling * b[o * z.r + q];
        double* dq = mine.data() + q * z.k;
        for (int64_t col = 0; col < z.k; ++col) dq[col] += bq * g[col];
      }
    }
  }
  std::vector<float> da_out(static_cast<size_t>(z.r * z.k), 0.0f), db_out(db.begin(), db.end());
  for (size_t i = 0; i < da_out.size(); ++i) {
    double s = 0;
    for (const std::vector<double>& part : da) s += part[i];
    da_out[i] = static_cast<float>(s);
  }
  FromFloat(da_out.data(), z.r * z.k, out[0], 0);
  FromFloat(db_out.data(), z.n * z.r, out[1], 0);
  return OkStatus();
}

// The DPO loss of one pair from h = (π_c − r_c) − (π_r − r_r), and its
// derivative with respect to h.
struct PairLoss {
  double loss, dloss_dh;
};
PairLoss DpoPairLoss(double h, double beta, bool ipo) {
  if (ipo) {
    double d = h - 1.0 / (2.0 * beta);
    return {d * d, 2.0 * d};
  }
  // −log σ(βh) = softplus(−βh), computed without overflow.
  double z = -beta * h;
  double softplus = z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z));
  double sig = 1.0 / (1.0 + std::exp(-z));  // σ(−βh)
  return {softplus, -beta * sig};
}

Status CheckDpoOperands(const KernelParams& p, const std::vector<TensorView>& in, int64_t pairs) {
  LORA_RETURN_IF_ERROR(ExpectTyped(p, in[0], DType::F32, 2 * pairs, "the policy log-probabilities"));
  LORA_RETURN_IF_ERROR(
      ExpectTyped(p, in[1], DType::F32, 2 * pairs, "the reference log-probabilities"));
  return ExpectTyped(p, in[2], DType::BOOL, pairs, "the pair mask");
}

Status DpoLossFwd(const KernelContext&, const KernelParams& p, const std::vector<TensorView>& in,
                  const std::vector<TensorView>& out) {
  int64_t pairs;
  double beta;
  LORA_RETURN_IF_ERROR(SizeParam(p, "pairs", &pairs));
  LORA_RETURN_IF_ERROR(p.Float("beta", &beta));
  bool ipo = p.IntOr("ipo", 0) != 0;
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 3, out, 6));
  LORA_RETURN_IF_ERROR(CheckDpoOperands(p, in, pairs));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, out[0], DType::F32, 1, "the loss sum"));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, out[1], DType::I64, 1, "the pair count"));
  for (int k = 2; k < 6; ++k) LORA_RETURN_IF_ERROR(ExpectTyped(p, out[k], DType::F32, 1, "a metric"));
  const float* pol = in[0].as<const float>();
  const float* ref = in[1].as<const float>();
  const uint8_t* present = in[2].as<const uint8_t>();
  double loss = 0, chosen = 0, rejected = 0, correct = 0, margin = 0;
  int64_t count = 0;
  for (int64_t q = 0; q < pairs; ++q) {
    if (!present[q]) continue;
    double rc = double(pol[2 * q]) - ref[2 * q], rr = double(pol[2 * q + 1]) - ref[2 * q + 1];
    loss += DpoPairLoss(rc - rr, beta, ipo).loss;
    chosen += beta * rc;
    rejected += beta * rr;
    correct += rc > rr ? 1.0 : 0.0;
    margin += beta * (rc - rr);
    ++count;
  }
  out[0].as<float>()[0] = static_cast<float>(loss);
  out[1].as<int64_t>()[0] = count;
  out[2].as<float>()[0] = static_cast<float>(chosen);
  out[3].as<float>()[0] = static_cast<float>(rejected);
  out[4].as<float>()[0] = static_cast<float>(correct);
  out[5].as<float>()[0] = static_cast<float>(margin);
  return OkStatus();
}

Status DpoLossBwd(const KernelContext&, const KernelParams& p, const std::vector<TensorView>& in,
                  const std::vector<TensorView>& out) {
  int64_t pairs;
  double beta;
  LORA_RETURN_IF_ERROR(SizeParam(p, "pairs", &pairs));
  LORA_RETURN_IF_ERROR(p.Float("beta", &beta));
  bool ipo = p.IntOr("ipo", 0) != 0;
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 4, out, 1));
  LORA_RETURN_IF_ERROR(CheckDpoOperands(p, in, pairs));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, in[3], DType::F32, 1, "dloss"));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, out[0], DType::F32, 2 * pairs, "the policy gradient"));
  const float* pol = in[0].as<const float>();
  const float* ref = in[1].as<const float>();
  const uint8_t* present = in[2].as<const uint8_t>();
  const double dloss = in[3].as<const float>()[0];
  float* g = out[0].as<float>();
  for (int64_t q = 0; q < pairs; ++q) {
    double d = 0;
    if (present[q]) {
      double h = (double(pol[2 * q]) - ref[2 * q]) - (double(pol[2 * q + 1]) - ref[2 * q + 1]);
      d = dloss * DpoPairLoss(h, beta, ipo).dloss_dh;
    }
    g[2 * q] = static_cast<float>(d);
    g[2 * q + 1] = static_cast<float>(-d);
  }
  return OkStatus();
}

// ----------------------------------------------------------------------------
// LM head + cross-entropy, chunked over the masked-in tokens.

struct LmCe {
  int64_t tokens = 0, hidden = 0, vocab = 0, chunk = 0;
  const TensorView *x = nullptr, *w = nullptr, *targets = nullptr, *mask = nullptr;
  float dloss = 1.0f;
  std::vector<int64_t> active;  // masked-in token positions, in order
};

Status BindLmCe(const KernelParams& p, const std::vector<TensorView>& in,
                const std::vector<TensorView>& out, bool has_dloss, size_t n_out, LmCe* L) {
  LORA_RETURN_IF_ERROR(SizeParam(p, "tokens", &L->tokens));
  LORA_RETURN_IF_ERROR(SizeParam(p, "hidden", &L->hidden));
  LORA_RETURN_IF_ERROR(SizeParam(p, "vocab", &L->vocab));
  LORA_RETURN_IF_ERROR(SizeParam(p, "chunk_size", &L->chunk));
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, has_dloss ? 5 : 4, out, n_out));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[0], L->tokens * L->hidden, "x"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[1], L->vocab * L->hidden, "the weight"));
  LORA_RETURN_IF_ERROR(CheckLossOperands(p, in[2], in[3], L->tokens));
  if (has_dloss) {
    LORA_RETURN_IF_ERROR(ExpectTyped(p, in[4], DType::F32, 1, "dloss"));
    L->dloss = in[4].as<const float>()[0];
  }
  int64_t count;
  LORA_RETURN_IF_ERROR(CheckTargets(p, in[2], in[3], L->tokens, L->vocab, &count));
  L->x = &in[0];
  L->w = &in[1];
  L->targets = &in[2];
  L->mask = &in[3];
  const uint8_t* mk = in[3].as<const uint8_t>();
  L->active.clear();
  L->active.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < L->tokens; ++i)
    if (mk[i]) L->active.push_back(i);
  return OkStatus();
}

// The x rows of active tokens [c0, c1) as a Gemm operand: a pointer into x
// when they are consecutive positions, else gathered into a scratch.
GemmMatrix ChunkRows(const LmCe& L, int64_t c0, int64_t c1, int threads) {
  const int64_t first = L.active[c0], rows = c1 - c0, D = L.hidden;
  if (L.active[c1 - 1] - first == rows - 1) return Mat(*L.x, first * D, D);
  const size_t es = ElemSize(L.x->dtype);
  uint8_t* buf = Scratch<uint8_t>(kGather, rows * D * static_cast<int64_t>(es));
  const uint8_t* src = static_cast<const uint8_t*>(L.x->data);
#pragma omp parallel for num_threads(threads) schedule(static) if (rows * D >= (1 << 16))
  for (int64_t i = 0; i < rows; ++i)
    std::memcpy(buf + i * D * es, src + L.active[c0 + i] * D * es, D * es);
  return Mat(buf, L.x->dtype, D);
}

// logits [rows, V] f32 of active tokens [c0, c1); returns the x rows used.
Status ChunkLogits(const KernelContext& ctx, const LmCe& L, int64_t c0, int64_t c1, float* logits,
                   GemmMatrix* xc) {
  *xc = ChunkRows(L, c0, c1, Threads(ctx));
  return Gemm(false, true, c1 - c0, L.vocab, L.hidden, 1.0f, *xc, Mat(*L.w, 0, L.hidden), 0.0f,
              logits, DType::F32, L.vocab, Threads(ctx));
}

// Turns chunk logits into dlogits = dloss·(softmax - onehot) in place; the
// row's log-sum-exp goes to lse[i] when lse is not null.
void ChunkGrad(const KernelContext& ctx, const LmCe& L, int64_t c0, int64_t c1, float* logits) {
  const int64_t V = L.vocab;
#pragma omp parallel for num_threads(Threads(ctx)) \
    schedule(dynamic, 2) if ((c1 - c0) * V >= (1 << 15))
  for (int64_t i = c0; i < c1; ++i) {
    float* row = logits + (i - c0) * V;
    const float lse = LogSumExp(row, V);
    SoftmaxGrad(row, V, lse, LoadIndex(*L.targets, L.active[i]), L.dloss, row);
  }
}

Status LmHeadCeFwd(const KernelContext& ctx, const KernelParams& p,
                   const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  LmCe L;
  LORA_RETURN_IF_ERROR(BindLmCe(p, in, out, false, 2, &L));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, out[0], DType::F32, 1, "the loss sum"));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, out[1], DType::I64, 1, "the count"));
  const int64_t na = static_cast<int64_t>(L.active.size()), V = L.vocab;
  const int64_t cs = std::min(L.chunk, std::max<int64_t>(na, 1));
  float* logits = Scratch<float>(kLogits, cs * V);
  double* loss = Scratch<double>(kRows, na);
  for (int64_t c0 = 0; c0 < na; c0 += cs) {
    const int64_t c1 = std::min(na, c0 + cs);
    GemmMatrix xc;
    LORA_RETURN_IF_ERROR(ChunkLogits(ctx, L, c0, c1, logits, &xc));
#pragma omp parallel for num_threads(Threads(ctx)) \
    schedule(dynamic, 2) if ((c1 - c0) * V >= (1 << 15))
    for (int64_t i = c0; i < c1; ++i) {
      const float* row = logits + (i - c0) * V;
      loss[i] = double(LogSumExp(row, V)) - double(row[LoadIndex(*L.targets, L.active[i])]);
    }
  }
  double sum = 0.0;  // in token order, whatever the chunk size
  for (int64_t i = 0; i < na; ++i) sum += loss[i];
  out[0].as<float>()[0] = static_cast<float>(sum);
  out[1].as<int64_t>()[0] = na;
  return OkStatus();
}

Status LmHeadCeBwdX(const KernelContext& ctx, const KernelParams& p,
                    const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  LmCe L;
  LORA_RETURN_IF_ERROR(BindLmCe(p, in, out, true, 1, &L));
  const TensorView& dx = out[0];
  const int64_t D = L.hidden, V = L.vocab;
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, dx, L.tokens * D, "dx"));
  const int64_t na = static_cast<int64_t>(L.active.size());
  const size_t es = ElemSize(dx.dtype);
  if (na < L.tokens) std::memset(dx.data, 0, static_cast<size_t>(L.tokens * D) * es);
  const int64_t cs = std::min(L.chunk, std::max<int64_t>(na, 1));
  float* logits = Scratch<float>(kLogits, cs * V);
  for (int64_t c0 = 0; c0 < na; c0 += cs) {
    const int64_t c1 = std::min(na, c0 + cs), rows = c1 - c0;
    GemmMatrix xc;
    LORA_RETURN_IF_ERROR(ChunkLogits(ctx, L, c0, c1, logits, &xc));
    ChunkGrad(ctx, L, c0, c1, logits);
    const bool contiguous = L.active[c1 - 1] - L.active[c0] == rows - 1;
    uint8_t* dst = contiguous ? static_cast<uint8_t*>(dx.data) + L.active[c0] * D * es
                              : Scratch<uint8_t>(kPanel, rows * D * static_cast<int64_t>(es));
    LORA_RETURN_IF_ERROR(Gemm(false, false, rows, D, V, 1.0f, Mat(logits, DType::F32, V),
                              Mat(*L.w, 0, D), 0.0f, dst, dx.dtype, D, Threads(ctx)));
    if (!contiguous)
      for (int64_t i = 0; i < rows; ++i)
        std::memcpy(static_cast<uint8_t*>(dx.data) + L.active[c0 + i] * D * es, dst + i * D * es,
                    D * es);
  }
  return OkStatus();
}

Status LmHeadCeBwdW(const KernelContext& ctx, const KernelParams& p,
                    const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  LmCe L;
  LORA_RETURN_IF_ERROR(BindLmCe(p, in, out, true, 1, &L));
  const TensorView& dw = out[0];
  const int64_t D = L.hidden, V = L.vocab;
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, dw, V * D, "dw"));
  const int T = Threads(ctx);
  const int64_t na = static_cast<int64_t>(L.active.size());
  const size_t es = ElemSize(dw.dtype);
  if (na == 0) {
    std::memset(dw.data, 0, static_cast<size_t>(V * D) * es);
    return OkStatus();
  }
  const int64_t cs = std::min(L.chunk, na);
  if (dw.dtype == DType::F32) {  // accumulate Σ dlogitsᵀ·x straight into dw
    float* logits = Scratch<float>(kLogits, cs * V);
    for (int64_t c0 = 0; c0 < na; c0 += cs) {
      const int64_t c1 = std::min(na, c0 + cs);
      GemmMatrix xc;
      LORA_RETURN_IF_ERROR(ChunkLogits(ctx, L, c0, c1, logits, &xc));
      ChunkGrad(ctx, L, c0, c1, logits);
      LORA_RETURN_IF_ERROR(Gemm(true, false, V, D, c1 - c0, 1.0f, Mat(logits, DType::F32, V), xc,
                                c0 == 0 ? 0.0f : 1.0f, dw.data, DType::F32, D, T));
    }
    return OkStatus();
  }
  // A bf16/f16 dw is accumulated in f32 a tile of vocabulary rows at a time:
  // first every token's log-sum-exp, then per tile the chunks' logits for the
  // tile's rows only.
  float* lse = Scratch<float>(kU, na);
  {
    float* logits = Scratch<float>(kLogits, cs * V);
    for (int64_t c0 = 0; c0 < na; c0 += cs) {
      const int64_t c1 = std::min(na, c0 + cs);
      GemmMatrix xc;
      LORA_RETURN_IF_ERROR(ChunkLogits(ctx, L, c0, c1, logits, &xc));
#pragma omp parallel for num_threads(T) schedule(dynamic, 2) if ((c1 - c0) * V >= (1 << 15))
      for (int64_t i = c0; i < c1; ++i) lse[i] = LogSumExp(logits + (i - c0) * V, V);
    }
  }
  const int64_t vt = Clamp(kOutPanelElems / D, 64, V);
  float* acc = Scratch<float>(kPanel, vt * D);
  float* tile = Scratch<float>(kLogits, cs * vt);
  for (int64_t v0 = 0; v0 < V; v0 += vt) {
    const int64_t vv = std::min(vt, V - v0);
    for (int64_t c0 = 0; c0 < na; c0 += cs) {
      const int64_t c1 = std::min(na, c0 + cs);
      GemmMatrix xc = ChunkRows(L, c0, c1, T);
      LORA_RETURN_IF_ERROR(Gemm(false, true, c1 - c0, vv, D, 1.0f, xc, Mat(*L.w, v0 * D, D), 0.0f,
                                tile, DType::F32, vv, T));
#pragma omp parallel for num_threads(T) schedule(static) if ((c1 - c0) * vv >= (1 << 15))
      for (int64_t i = c0; i < c1; ++i) {
        float* row = tile + (i - c0) * vv;
        const bool finite = std::isfinite(lse[i]);
        const float l = finite ? lse[i] : 0.0f;
        for (int64_t j = 0; j < vv; ++j) row[j] = L.dloss * ExpF(row[j] - l);
        if (!finite) std::fill(row, row + vv, std::numeric_limits<float>::quiet_NaN());
        const int64_t t = LoadIndex(*L.targets, L.active[i]) - v0;
        if (t >= 0 && t < vv) row[t] -= L.dloss;
      }
      LORA_RETURN_IF_ERROR(Gemm(true, false, vv, D, c1 - c0, 1.0f, Mat(tile, DType::F32, vv), xc,
                                c0 == 0 ? 0.0f : 1.0f, acc, DType::F32, D, T));
    }
    StorePanel(ctx, acc, D, vv, D, nullptr, dw, v0 * D, D);
  }
  return OkStatus();
}

// ----------------------------------------------------------------------------
// Embeddings and dequantization.

Status CheckIds(const KernelParams& p, const TensorView& ids, int64_t tokens, int64_t vocab) {
  for (int64_t i = 0; i < tokens; ++i) {
    const int64_t id = LoadIndex(ids, i);
    if (id < 0 || id >= vocab)
      return InvalidArgumentError(StrFormat(
          "kernel '%s': token id %lld at position %lld is outside the vocabulary [0, %lld)",
          p.kind().c_str(), static_cast<long long>(id), static_cast<long long>(i),
          static_cast<long long>(vocab)));
  }
  return OkStatus();
}

// The checks shared by embedding_fwd and embedding_bwd: `rows` (tokens x
// hidden) flows between the token side and the table side (vocab x hidden).
Status EmbeddingDims(const KernelParams& p, const std::vector<TensorView>& in,
                     const TensorView& rows,
                     const char* rows_what, const TensorView& table, const char* table_what,
                     int64_t* t, int64_t* d, int64_t* v) {
  LORA_RETURN_IF_ERROR(SizeParam(p, "tokens", t));
  LORA_RETURN_IF_ERROR(SizeParam(p, "hidden", d));
  LORA_RETURN_IF_ERROR(SizeParam(p, "vocab", v));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, table, *v * *d, table_what));
  LORA_RETURN_IF_ERROR(ExpectIndex(p, in[1], *t, "the ids"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, rows, *t * *d, rows_what));
  return CheckIds(p, in[1], *t, *v);
}

Status EmbeddingFwd(const KernelContext& ctx, const KernelParams& p,
                    const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  int64_t t, d, v;
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 2, out, 1));
  LORA_RETURN_IF_ERROR(
      EmbeddingDims(p, in, out[0], "the output", in[0], "the table", &t, &d, &v));
  const TensorView &table = in[0], &y = out[0];
  const bool same = table.dtype == y.dtype;
  const size_t es = ElemSize(y.dtype);
#pragma omp parallel for num_threads(Threads(ctx)) schedule(static) if (t * d >= (1 << 15))
  for (int64_t i = 0; i < t; ++i) {
    const int64_t id = LoadIndex(in[1], i);
    if (same) {
      std::memcpy(static_cast<uint8_t*>(y.data) + i * d * es,
                  static_cast<const uint8_t*>(table.data) + id * d * es, d * es);
    } else {
      float* row = Scratch<float>(kRows, d);
      ToFloat(table, id * d, d, row);
      FromFloat(row, d, y, i * d);
    }
  }
  return OkStatus();
}

Status EmbeddingBwd(const KernelContext& ctx, const KernelParams& p,
                    const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  int64_t t, d, v;
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 2, out, 1));
  LORA_RETURN_IF_ERROR(
      EmbeddingDims(p, in, in[0], "dy", out[0], "the table gradient", &t, &d, &v));
  const TensorView &dy = in[0], &dt = out[0];
  std::memset(dt.data, 0, static_cast<size_t>(v * d) * ElemSize(dt.dtype));
  // Positions grouped by id (a stable counting sort); each id's rows are
  // summed in f32 in position order by one thread: deterministic.
  std::vector<int64_t> start(static_cast<size_t>(v + 1), 0), order(static_cast<size_t>(t));
  for (int64_t i = 0; i < t; ++i) ++start[static_cast<size_t>(LoadIndex(in[1], i)) + 1];
  for (int64_t j = 0; j < v; ++j) start[j + 1] += start[j];
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t i = 0; i < t; ++i) order[fill[static_cast<size_t>(LoadIndex(in[1], i))]++] = i;
  }
#pragma omp parallel for num_threads(Threads(ctx)) schedule(dynamic, 64) if (t * d >= (1 << 15))
  for (int64_t id = 0; id < v; ++id) {
    const int64_t s0 = start[id], s1 = start[id + 1];
    if (s0 == s1) continue;
    float* acc = Scratch<float>(kRows, 2 * d);
    float* row = acc + d;
    ToFloat(dy, order[s0] * d, d, acc);
    for (int64_t s = s0 + 1; s < s1; ++s) {
      ToFloat(dy, order[s] * d, d, row);
      for (int64_t j = 0; j < d; ++j) acc[j] += row[j];
    }
    FromFloat(acc, d, dt, id * d);
  }
  return OkStatus();
}

Status Dequantize(const KernelContext& ctx, const KernelParams& p,
                  const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  int64_t elements;
  LORA_RETURN_IF_ERROR(SizeParam(p, "elements", &elements));
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 1, out, 1));
  if (p.StringOr("weight_format", "") != "nf4")
    return InvalidArgumentError(StrFormat("kernel '%s': weight_format must be 'nf4', got '%s'",
                                          p.kind().c_str(),
                                          p.StringOr("weight_format", "").c_str()));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, out[0], elements, "the output"));
  // Addressed as [blocks, block_size]: one row per quantization block.
  int64_t bs;
  LORA_RETURN_IF_ERROR(SizeParam(p, "block_size", &bs));
  if (elements % bs != 0)
    return InvalidArgumentError(
        StrFormat("kernel '%s': %lld elements are not a multiple of block_size %lld",
                  p.kind().c_str(), static_cast<long long>(elements), static_cast<long long>(bs)));
  Weight w;
  LORA_RETURN_IF_ERROR(BindWeight(p, in[0], elements / bs, bs, &w));
  DequantRect(w, 0, w.n, 0, w.k, out[0].data, out[0].dtype, w.k, Threads(ctx));
  return OkStatus();
}

}  // namespace

void RegisterLinearKernels() {
  RegisterKernel("linear_fwd", LinearFwd);
  RegisterKernel("fused_linear_fwd", FusedLinearFwd);
  RegisterKernel("linear_bwd_x", LinearBwdX);
  RegisterKernel("linear_bwd_w", LinearBwdW);
  RegisterKernel("bias_bwd", BiasBwd);
  RegisterKernel("lora_fwd", LoraFwd);
  RegisterKernel("lora_bwd", LoraBwd);
  RegisterKernel("fused_linear_bwd", FusedLinearBwd);
  RegisterKernel("lm_head_fwd", LmHeadFwd);
  RegisterKernel("cross_entropy_fwd", CrossEntropyFwd);
  RegisterKernel("cross_entropy_bwd", CrossEntropyBwd);
  RegisterKernel("sequence_logprobs_fwd", SequenceLogProbsFwd);
  RegisterKernel("sequence_logprobs_bwd", SequenceLogProbsBwd);
  RegisterKernel("dpo_loss_fwd", DpoLossFwd);
  RegisterKernel("ewc_penalty_fwd", EwcPenaltyFwd);
  RegisterKernel("replay_loss_fwd", ReplayLossFwd);
  RegisterKernel("replay_loss_bwd", ReplayLossBwd);
  RegisterKernel("ewc_penalty_bwd", EwcPenaltyBwd);
  RegisterKernel("dpo_loss_bwd", DpoLossBwd);
  RegisterKernel("lm_head_ce_fwd", LmHeadCeFwd);
  RegisterKernel("lm_head_ce_bwd_x", LmHeadCeBwdX);
  RegisterKernel("lm_head_ce_bwd_w", LmHeadCeBwdW);
  RegisterKernel("embedding_fwd", EmbeddingFwd);
  RegisterKernel("embedding_bwd", EmbeddingBwd);
  RegisterKernel("dequantize", Dequantize);
}

}  // namespace lorart::cpu
