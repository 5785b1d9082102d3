// NF4 quantization and double quantization, bit-identical to bitsandbytes.
//
// Sources reproduced (bitsandbytes, github.com/bitsandbytes-foundation/bitsandbytes):
//   bitsandbytes/functional.py  get_4bit_type("nf4"), create_dynamic_map,
//                               quantize_4bit / dequantize_4bit (compress_statistics),
//                               quantize_blockwise / dequantize_blockwise
//   csrc/kernels.cu             dQuantizeNF4, dDequantizeNF4, dQuantize<0>,
//                               kQuantizeBlockwise, kDequantizeBlockwise
//
// This file must not be compiled with floating-point contraction (an FMA would
// round `code * absmax2 + offset` once instead of twice and break bit
// equality): runtime/CMakeLists.txt builds it with -ffp-contract=off.
#include "lorart/quant/nf4.h"

#include <algorithm>
#include <array>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <vector>

namespace lorart {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the packed NF4 layout is little-endian");

bool IsPowerOfTwo(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

float LoadF32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

void StoreF32(uint8_t* p, float v) { std::memcpy(p, &v, sizeof(v)); }

float ToFloat(float v) { return v; }

float ToFloat(uint16_t bf16) {
  uint32_t bits = static_cast<uint32_t>(bf16) << 16;
  float v;
  std::memcpy(&v, &bits, sizeof(v));
  return v;
}

// float -> bfloat16, round to nearest even (as torch and CUDA's
// __float2bfloat16); NaN stays a quiet NaN.
uint16_t ToBf16(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

// bitsandbytes create_dynamic_map(signed=True, max_exponent_bits=7,
// total_bits=8). The Python is
//
//   for i in range(7):
//       boundaries = torch.linspace(0.1, 1, 2**i + 1)          # float32
//       means = (boundaries[:-1] + boundaries[1:]) / 2.0
//       data += (10 ** (-6 + i) * means).tolist()
//       data += (-(10 ** (-6 + i)) * means).tolist()
//   data.append(0); data.append(1.0); data.sort()
//
// (additional_items is 2**(7 - 7) - 1 = 0.) Everything is float32 arithmetic;
// the python scale is a double rounded to float32 by torch. The one subtle
// part is torch.linspace: its CPU kernel (aten/src/ATen/native/cpu/
// RangeFactoriesKernel.cpp) computes step = (end - start) / (steps - 1) and
// element i as `start + step * i` for i < steps / 2, `end - step * (steps - 1 -
// i)` above, and the x86 build contracts both to a fused multiply-add. This
// recipe reproduces, with 0 differences in 256, the map that bitsandbytes
// users have dumped from `create_dynamic_map()` (the same table appears in
// several public ports); the variants without FMA, or with torch's vectorized
// arange, differ from it in 16 to 56 entries by one ulp. nf4_test.cc checks a
// hash of the 256 bit patterns and spot values.
std::array<float, 256> BuildDynamicMap() {
  static constexpr double kScale[7] = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0};
  std::array<float, 256> data{};
  size_t k = 0;
  const float start = 0.1f, end = 1.0f;
  float boundaries[65];
  for (int i = 0; i < 7; ++i) {
    const int steps = (1 << i) + 1;
    const float step = (end - start) / static_cast<float>(steps - 1);
    const int halfway = steps / 2;
    for (int j = 0; j < steps; ++j) {
      boundaries[j] = j < halfway ? std::fma(step, static_cast<float>(j), start)
                                  : std::fma(-step, static_cast<float>(steps - 1 - j), end);
    }
    const float scale = static_cast<float>(kScale[i]);
    for (int j = 0; j + 1 < steps; ++j) {
      const float mean = (boundaries[j] + boundaries[j + 1]) / 2.0f;
      data[k++] = scale * mean;
      data[k++] = -scale * mean;
    }
  }
  data[k++] = 0.0f;
  data[k++] = 1.0f;
  std::sort(data.begin(), data.end());
  return data;
}

Status CheckFinite(const char* what, float v, int64_t index, int64_t count) {
  if (std::isfinite(v)) return OkStatus();
  return InvalidArgumentError(StrFormat("%s: element %lld of %lld is not finite (%g)", what,
                                        static_cast<long long>(index),
                                        static_cast<long long>(count), static_cast<double>(v)));
}

// A layout from outside may have been built by hand: rebuild it from its
// parameters and compare.
Status CheckLayout(const Nf4Layout& layout) {
  StatusOr<Nf4Layout> expected =
      Nf4Layout::Make(layout.num_elements, layout.block_size, layout.double_quant_block);
  if (!expected.ok()) return expected.status();
  const Nf4Layout& e = *expected;
  if (e.num_blocks != layout.num_blocks || e.num_groups != layout.num_groups ||
      e.code_bytes != layout.code_bytes || e.absmax_bytes != layout.absmax_bytes)
    return InvalidArgumentError("nf4: inconsistent layout (build it with Nf4Layout::Make)");
  return OkStatus();
}

Status CheckBuffers(const Nf4Layout& layout, const void* values, int64_t count,
                    const void* packed, int64_t packed_bytes) {
  LORA_RETURN_IF_ERROR(CheckLayout(layout));
  if (count != layout.num_elements)
    return InvalidArgumentError(StrFormat("nf4: %lld elements given, the layout has %lld",
                                          static_cast<long long>(count),
                                          static_cast<long long>(layout.num_elements)));
  if (packed_bytes != layout.total_bytes())
    return InvalidArgumentError(
        StrFormat("nf4: packed buffer has %lld bytes, the layout needs %lld",
                  static_cast<long long>(packed_bytes),
                  static_cast<long long>(layout.total_bytes())));
  if (values == nullptr || packed == nullptr) return InvalidArgumentError("nf4: null buffer");
  return OkStatus();
}

// First level: absmax per block and packed NF4 codes (kQuantizeBlockwise with
// DATA_TYPE=NF4).
template <typename T>
Status QuantizeBlocksNf4(const T* src, const Nf4Layout& layout, uint8_t* codes, float* absmax) {
  const int64_t bs = layout.block_size;
  for (int64_t b = 0; b < layout.num_blocks; ++b) {
    const T* x = src + b * bs;
    float amax = 0.0f;
    bool finite = true;
    for (int64_t i = 0; i < bs; ++i) {
      const float a = std::fabs(ToFloat(x[i]));
      finite &= a <= FLT_MAX;  // false for inf and NaN
      amax = std::max(amax, a);
    }
    if (!finite) {
      for (int64_t i = 0; i < bs; ++i)
        LORA_RETURN_IF_ERROR(CheckFinite("nf4", ToFloat(x[i]), b * bs + i, layout.num_elements));
    }
    absmax[b] = amax;
    uint8_t* out = codes + b * (bs / 2);
    if (amax == 0.0f) {
      // bitsandbytes computes 0 * (1 / 0) = NaN here, which fails every
      // comparison of dQuantizeNF4: code 0 (and -1 * 0 = -0 on the way back).
      std::memset(out, 0, static_cast<size_t>(bs / 2));
      continue;
    }
    const float inv = 1.0f / amax;  // the kernel multiplies by the reciprocal
    for (int64_t i = 0; i < bs / 2; ++i) {
      const uint8_t hi = Nf4Encode(ToFloat(x[2 * i]) * inv);
      const uint8_t lo = Nf4Encode(ToFloat(x[2 * i + 1]) * inv);
      out[i] = static_cast<uint8_t>((hi << 4) | lo);
    }
  }
  return OkStatus();
}

template <typename T>
Status QuantizeNf4Impl(const T* src, int64_t count, const Nf4Layout& layout, uint8_t* dst,
                       int64_t dst_bytes) {
  LORA_RETURN_IF_ERROR(CheckBuffers(layout, src, count, dst, dst_bytes));
  std::vector<float> absmax(static_cast<size_t>(layout.num_blocks));
  LORA_RETURN_IF_ERROR(QuantizeBlocksNf4(src, layout, dst, absmax.data()));
  if (!layout.double_quant()) {
    std::memcpy(dst + layout.absmax_offset(), absmax.data(), absmax.size() * sizeof(float));
    return OkStatus();
  }
  // Double quantization: offset = mean(absmax) (torch's float32 mean; here
  // accumulated in double and rounded once, which may differ from torch's
  // reduction order in the last ulp but is what every dequantization reads
  // back), then the centred absmax quantized blockwise to 8 bits.
  double sum = 0.0;
  for (float a : absmax) sum += a;
  const float mean = static_cast<float>(sum / static_cast<double>(layout.num_blocks));
  for (float& a : absmax) a = a - mean;
  std::vector<float> absmax2(static_cast<size_t>(layout.num_groups));
  LORA_RETURN_IF_ERROR(QuantizeBlockwise8(absmax.data(), layout.num_blocks,
                                          layout.double_quant_block,
                                          dst + layout.qabsmax_offset(), absmax2.data()));
  std::memcpy(dst + layout.absmax2_offset(), absmax2.data(), absmax2.size() * sizeof(float));
  StoreF32(dst + layout.mean_offset(), mean);
  return OkStatus();
}

// Calls fn(block, absmax) for every block, undoing the double quantization.
template <typename Fn>
void ForEachBlockAbsmax(const uint8_t* src, const Nf4Layout& layout, Fn fn) {
  if (!layout.double_quant()) {
    const uint8_t* p = src + layout.absmax_offset();
    for (int64_t b = 0; b < layout.num_blocks; ++b) fn(b, LoadF32(p + 4 * b));
    return;
  }
  const float* map = DynamicMap8();
  const uint8_t* absmax2 = src + layout.absmax2_offset();
  const uint8_t* q = src + layout.qabsmax_offset();
  const float mean = LoadF32(src + layout.mean_offset());
  const int64_t dq = layout.double_quant_block;
  for (int64_t g = 0; g < layout.num_groups; ++g) {
    const float scale = LoadF32(absmax2 + 4 * g);
    const int64_t end = std::min(layout.num_blocks, (g + 1) * dq);
    for (int64_t b = g * dq; b < end; ++b) {
      // dequantize_blockwise, then `absmax += offset`: two roundings.
      float a = map[q[b]] * scale;
      a = a + mean;
      fn(b, a);
    }
  }
}

template <typename Out, typename Convert>
Status DequantizeNf4Impl(const uint8_t* src, int64_t src_bytes, const Nf4Layout& layout,
                         Out* dst, int64_t count, Convert convert) {
  LORA_RETURN_IF_ERROR(CheckBuffers(layout, dst, count, src, src_bytes));
  const int64_t half = layout.block_size / 2;
  ForEachBlockAbsmax(src, layout, [&](int64_t b, float amax) {
    const uint8_t* c = src + b * half;
    Out* o = dst + b * layout.block_size;
    for (int64_t i = 0; i < half; ++i) {
      const uint8_t byte = c[i];
      o[2 * i] = convert(kNf4Codebook[byte >> 4] * amax);
      o[2 * i + 1] = convert(kNf4Codebook[byte & 0x0f] * amax);
    }
  });
  return OkStatus();
}

}  // namespace

const float* DynamicMap8() {
  static const std::array<float, 256> map = BuildDynamicMap();
  return map.data();
}

uint8_t Dynamic8Encode(const float* code, float x) {
  // csrc/kernels.cu dQuantize<STOCHASTIC=0>, line for line.
  int pivot = 127;
  int upper_pivot = 255;
  int lower_pivot = 0;
  float lower = -1.0f;
  float upper = 1.0f;
  float val = code[pivot];
  for (int i = 64; i > 0; i >>= 1) {
    if (x > val) {
      lower_pivot = pivot;
      lower = val;
      pivot += i;
    } else {
      upper_pivot = pivot;
      upper = val;
      pivot -= i;
    }
    val = code[pivot];
  }
  if (upper_pivot == 255) upper = code[upper_pivot];
  if (lower_pivot == 0) lower = code[lower_pivot];
  if (x > val) {
    const float midpoint = (upper + val) * 0.5f;
    return static_cast<uint8_t>(x > midpoint ? upper_pivot : pivot);
  }
  const float midpoint = (lower + val) * 0.5f;
  return static_cast<uint8_t>(x < midpoint ? lower_pivot : pivot);
}

int64_t Nf4Layout::AbsmaxBytes(int64_t num_blocks, int64_t double_quant_block) {
  if (double_quant_block <= 0) return num_blocks * 4;
  const int64_t groups = (num_blocks + double_quant_block - 1) / double_quant_block;
  return num_blocks + groups * 4 + 4;
}

StatusOr<Nf4Layout> Nf4Layout::Make(int64_t num_elements, int64_t block_size,
                                    int64_t double_quant_block) {
  if (block_size < 2 || block_size > 4096 || !IsPowerOfTwo(block_size))
    return InvalidArgumentError(StrFormat(
        "nf4: block_size must be a power of two in [2, 4096], got %lld",
        static_cast<long long>(block_size)));
  if (double_quant_block < 0 || double_quant_block > 4096 ||
      (double_quant_block > 0 && !IsPowerOfTwo(double_quant_block)))
    return InvalidArgumentError(StrFormat(
        "nf4: double_quant_block must be 0 (none) or a power of two in [1, 4096], got %lld",
        static_cast<long long>(double_quant_block)));
  if (num_elements <= 0)
    return InvalidArgumentError(StrFormat("nf4: element count must be positive, got %lld",
                                          static_cast<long long>(num_elements)));
  if (num_elements % block_size != 0)
    return InvalidArgumentError(
        StrFormat("nf4: element count %lld is not a multiple of block_size %lld",
                  static_cast<long long>(num_elements), static_cast<long long>(block_size)));
  Nf4Layout layout;
  layout.num_elements = num_elements;
  layout.block_size = block_size;
  layout.double_quant_block = double_quant_block;
  layout.num_blocks = num_elements / block_size;
  layout.num_groups = double_quant_block > 0
                          ? (layout.num_blocks + double_quant_block - 1) / double_quant_block
                          : 0;
  layout.code_bytes = num_elements / 2;
  layout.absmax_bytes = AbsmaxBytes(layout.num_blocks, double_quant_block);
  return layout;
}

Status QuantizeNf4(const float* src, int64_t count, const Nf4Layout& layout, uint8_t* dst,
                   int64_t dst_bytes) {
  return QuantizeNf4Impl(src, count, layout, dst, dst_bytes);
}

Status QuantizeNf4FromBf16(const uint16_t* src, int64_t count, const Nf4Layout& layout,
                           uint8_t* dst, int64_t dst_bytes) {
  return QuantizeNf4Impl(src, count, layout, dst, dst_bytes);
}

Status DequantizeNf4(const uint8_t* src, int64_t src_bytes, const Nf4Layout& layout,
                     float* dst, int64_t count) {
  return DequantizeNf4Impl(src, src_bytes, layout, dst, count, [](float v) { return v; });
}

Status DequantizeNf4ToBf16(const uint8_t* src, int64_t src_bytes, const Nf4Layout& layout,
                           uint16_t* dst, int64_t count) {
  return DequantizeNf4Impl(src, src_bytes, layout, dst, count, ToBf16);
}

Status DequantizeNf4Absmax(const uint8_t* src, int64_t src_bytes, const Nf4Layout& layout,
                           float* absmax, int64_t count) {
  LORA_RETURN_IF_ERROR(CheckLayout(layout));
  if (count != layout.num_blocks)
    return InvalidArgumentError(
        StrFormat("nf4: %lld absmax slots given, the layout has %lld blocks",
                  static_cast<long long>(count), static_cast<long long>(layout.num_blocks)));
  if (src_bytes != layout.total_bytes())
    return InvalidArgumentError(
        StrFormat("nf4: packed buffer has %lld bytes, the layout needs %lld",
                  static_cast<long long>(src_bytes),
                  static_cast<long long>(layout.total_bytes())));
  if (src == nullptr || absmax == nullptr) return InvalidArgumentError("nf4: null buffer");
  ForEachBlockAbsmax(src, layout, [&](int64_t b, float a) { absmax[b] = a; });
  return OkStatus();
}

// The argument checks shared by QuantizeBlockwise8 and DequantizeBlockwise8.
Status CheckBlockwise8Args(int64_t n, int64_t block_size, const void* a, const void* b,
                           const void* c) {
  if (block_size <= 0)
    return InvalidArgumentError(StrFormat("blockwise8: block size must be positive, got %lld",
                                          static_cast<long long>(block_size)));
  if (n < 0)
    return InvalidArgumentError(StrFormat("blockwise8: negative element count %lld",
                                          static_cast<long long>(n)));
  if (n > 0 && (a == nullptr || b == nullptr || c == nullptr))
    return InvalidArgumentError("blockwise8: null buffer");
  return OkStatus();
}

Status QuantizeBlockwise8(const float* src, int64_t n, int64_t block_size, uint8_t* codes,
                          float* absmax) {
  LORA_RETURN_IF_ERROR(CheckBlockwise8Args(n, block_size, src, codes, absmax));
  const float* map = DynamicMap8();
  for (int64_t start = 0, g = 0; start < n; start += block_size, ++g) {
    const int64_t end = std::min(n, start + block_size);
    float amax = 0.0f;
    for (int64_t i = start; i < end; ++i) {
      if (!std::isfinite(src[i])) return CheckFinite("blockwise8", src[i], i, n);
      amax = std::max(amax, std::fabs(src[i]));
    }
    absmax[g] = amax;
    if (amax == 0.0f) {
      // 0 * (1 / 0) = NaN in bitsandbytes: dQuantize walks left to code 0.
      std::memset(codes + start, 0, static_cast<size_t>(end - start));
      continue;
    }
    const float inv = 1.0f / amax;
    for (int64_t i = start; i < end; ++i) codes[i] = Dynamic8Encode(map, src[i] * inv);
  }
  return OkStatus();
}

Status DequantizeBlockwise8(const uint8_t* codes, const float* absmax, int64_t n,
                            int64_t block_size, float* out) {
  LORA_RETURN_IF_ERROR(CheckBlockwise8Args(n, block_size, codes, absmax, out));
  const float* map = DynamicMap8();
  for (int64_t i = 0; i < n; ++i) out[i] = map[codes[i]] * absmax[i / block_size];
  return OkStatus();
}

}  // namespace lorart
