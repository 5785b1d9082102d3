// NF4 (4-bit NormalFloat) quantization of frozen base weights, as QLoRA
// (Dettmers et al. 2023) and bitsandbytes compute it, including QLoRA's double
// quantization of the absmax scales.
//
// Every value here is bit-identical to bitsandbytes' CUDA path
// (bitsandbytes/functional.py `quantize_4bit` / `dequantize_4bit` with
// quant_type="nf4", which call csrc/kernels.cu `kQuantizeBlockwise` /
// `kDequantizeBlockwise`), except that the mean of the absmax values is
// accumulated in double (torch's float32 reduction order is not reproducible;
// the stored mean may differ from torch's in the last ulp):
//
// * First level: the tensor, taken in row-major order, is cut into blocks of
//   `block_size` elements; each block stores absmax = max |x| (float32) and one
//   4-bit code per element: code = the NF4 value nearest to x * (1 / absmax),
//   decided by comparing with the midpoints between consecutive codebook values
//   (`dQuantizeNF4`; a value exactly on a midpoint takes the lower code). Two
//   codes share a byte, the FIRST element of each pair in the HIGH nibble.
// * Second level (double quantization, `compress_statistics=True`): offset =
//   mean(absmax); the values absmax - offset are quantized blockwise, in groups
//   of `double_quant_block` (bitsandbytes: 256), to 8-bit codes of the signed
//   dynamic map (`create_dynamic_map(signed=True)`) with one float32 absmax per
//   group (`quantize_blockwise`, kernel `dQuantize<0>`).
// * Dequantization: absmax' = dynamic[q] * absmax2 + offset (two float32
//   roundings, never fused), then w = nf4[code] * absmax' in float32, rounded
//   to nearest-even for bf16.
//
// Packed buffer (one allocation of Nf4Layout::total_bytes(), little-endian):
//
//   without double quantization:
//     [0, n/2)                   codes, 2 per byte, element 2i in bits 7..4
//     [n/2, n/2 + 4*blocks)      float32 absmax[blocks]
//   with double quantization:
//     [0, n/2)                   codes
//     [n/2, +4*groups)           float32 absmax2[groups]   (second-level scales)
//     [.., +4)                   float32 offset            (mean of the absmax)
//     [.., +blocks)              uint8 qabsmax[blocks]     (dynamic-map codes)
//
// The floats come first so that they are 4-byte aligned whenever block_size >= 8
// (n/2 is then a multiple of 4); the accessors never assume alignment. The
// sizes equal the compiler's `!lora.nf4` type (NF4Type::getCodeBytes and
// getScaleBytes in dialects/lib/LoraTypes.cpp).
#ifndef LORART_QUANT_NF4_H_
#define LORART_QUANT_NF4_H_

#include <cstdint>

#include "lorart/base/status.h"

namespace lorart {

// The 16 NF4 values (bitsandbytes `get_4bit_type("nf4")`, also the literals of
// `dDequantizeNF4`); all are exact float32 values. Code k dequantizes to
// kNf4Codebook[k]; code 7 is 0, code 0 is -1, code 15 is 1.
inline constexpr float kNf4Codebook[16] = {
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.24611230194568634f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f,
};

// The literals of bitsandbytes' `dQuantizeNF4` decision tree: kNf4Thresholds[k]
// is the midpoint of kNf4Codebook[k] and kNf4Codebook[k+1], written as the
// shortest decimal of the double midpoint and rounded to float by the compiler
// (so within half an ulp of the exact midpoint; where that midpoint is a tie
// between two floats the literal decides which, exactly as in bitsandbytes).
inline constexpr float kNf4Thresholds[15] = {
    -0.8480964004993439f,  -0.6106329262256622f, -0.4599952697753906f,
    -0.33967943489551544f, -0.23460740596055984f, -0.13791173323988914f,
    -0.045525018125772476f, 0.03979014977812767f, 0.1202552504837513f,
    0.2035212516784668f,   0.2920137718319893f,  0.3893125355243683f,
    0.5016634166240692f,   0.6427869200706482f,  0.8614784181118011f,
};

// The NF4 code of a normalized value x (x = weight / absmax, nominally in
// [-1, 1]): the number of thresholds strictly below x. Equal to bitsandbytes'
// `dQuantizeNF4` for every float, NaN included (code 0).
inline uint8_t Nf4Encode(float x) {
  uint8_t code = 0;
  for (float t : kNf4Thresholds) code += static_cast<uint8_t>(x > t);
  return code;
}

// bitsandbytes' signed dynamic 8-bit map (`create_dynamic_map(signed=True,
// max_exponent_bits=7, total_bits=8)`), 256 sorted distinct float32 values:
// index 0 is -0.99296875 (the map has +1 but no -1), index 127 is 0, index 255
// is 1. See nf4.cc for how the values are reproduced bit for bit.
const float* DynamicMap8();

// The 8-bit code of a normalized value x in `code` (256 sorted values): the
// binary search with midpoint rounding of bitsandbytes' `dQuantize<0>`
// (csrc/kernels.cu), reproduced step for step.
uint8_t Dynamic8Encode(const float* code, float x);

inline constexpr int64_t kNf4DefaultBlockSize = 64;
inline constexpr int64_t kNf4DefaultDoubleQuantBlock = 256;

// Byte sizes and offsets of a packed NF4 tensor. Build with Nf4Layout::Make,
// which checks the parameters exactly as the compiler's NF4Type verifier does.
struct Nf4Layout {
  int64_t num_elements = 0;
  int64_t block_size = 0;
  int64_t double_quant_block = 0;  // 0: no double quantization
  int64_t num_blocks = 0;          // num_elements / block_size
  int64_t num_groups = 0;          // ceil(num_blocks / double_quant_block); 0 without
  int64_t code_bytes = 0;          // num_elements / 2
  int64_t absmax_bytes = 0;        // 4*blocks, or blocks + 4*groups + 4 with double quant

  bool double_quant() const { return double_quant_block > 0; }
  int64_t total_bytes() const { return code_bytes + absmax_bytes; }
  // Without double quantization: float32 absmax[num_blocks].
  int64_t absmax_offset() const { return code_bytes; }
  // With double quantization: float32 absmax2[num_groups], float32 offset,
  // uint8 qabsmax[num_blocks].
  int64_t absmax2_offset() const { return code_bytes; }
  int64_t mean_offset() const { return code_bytes + 4 * num_groups; }
  int64_t qabsmax_offset() const { return code_bytes + 4 * num_groups + 4; }

  // Scale bytes of `num_blocks` blocks (NF4Type::getScaleBytes).
  static int64_t AbsmaxBytes(int64_t num_blocks, int64_t double_quant_block);

  // `num_elements` > 0 and a multiple of `block_size`; `block_size` a power of
  // two in [2, 4096]; `double_quant_block` 0 or a power of two in [1, 4096].
  // INVALID_ARGUMENT otherwise, naming the parameter.
  static StatusOr<Nf4Layout> Make(int64_t num_elements,
                                  int64_t block_size = kNf4DefaultBlockSize,
                                  int64_t double_quant_block = kNf4DefaultDoubleQuantBlock);
};

// Quantizes `count` row-major values into `dst` (`dst_bytes` bytes). `count`
// must equal layout.num_elements and `dst_bytes` layout.total_bytes(); every
// value must be finite (INVALID_ARGUMENT naming the first bad element; `dst`
// is then partly written). Allocates only the per-block absmax scratch.
Status QuantizeNf4(const float* src, int64_t count, const Nf4Layout& layout, uint8_t* dst,
                   int64_t dst_bytes);
// The same from bfloat16 bit patterns (the usual dtype of base weights).
Status QuantizeNf4FromBf16(const uint16_t* src, int64_t count, const Nf4Layout& layout,
                           uint8_t* dst, int64_t dst_bytes);

// Expands a packed buffer to `count` (= layout.num_elements) values.
Status DequantizeNf4(const uint8_t* src, int64_t src_bytes, const Nf4Layout& layout,
                     float* dst, int64_t count);
// The same rounded to bfloat16 (round to nearest even), as bit patterns.
Status DequantizeNf4ToBf16(const uint8_t* src, int64_t src_bytes, const Nf4Layout& layout,
                           uint16_t* dst, int64_t count);
// The float32 absmax of every block (`count` = layout.num_blocks), undoing the
// double quantization if any.
Status DequantizeNf4Absmax(const uint8_t* src, int64_t src_bytes, const Nf4Layout& layout,
                           float* absmax, int64_t count);

// bitsandbytes `quantize_blockwise` with the dynamic map: `n` values in blocks
// of `block_size` (the last block may be partial), one code per value and one
// float32 absmax per block (ceil(n / block_size) of them). Values must be
// finite; `block_size` > 0.
Status QuantizeBlockwise8(const float* src, int64_t n, int64_t block_size, uint8_t* codes,
                          float* absmax);
// `dequantize_blockwise`: out[i] = DynamicMap8()[codes[i]] * absmax[i / block_size].
Status DequantizeBlockwise8(const uint8_t* codes, const float* absmax, int64_t n,
                            int64_t block_size, float* out);

}  // namespace lorart

#endif  // LORART_QUANT_NF4_H_
