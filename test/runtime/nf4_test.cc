// NF4 quantization: the codebook and the dynamic 8-bit map against the values
// bitsandbytes uses, the packed layout against the compiler's NF4Type sizes,
// round trips within their error bounds, exact codes of known inputs, nibble
// order, bf16 output, and every rejected size.
//
// bitsandbytes itself is not installed here (it needs torch), so exactness is
// checked against values bitsandbytes publishes or produces: the codebook and
// midpoint literals of csrc/kernels.cu, and a hash of the 256 bit patterns that
// `create_dynamic_map(signed=True)` returns.
#include "lorart/quant/nf4.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace lorart {
namespace {

// Half the widest gap between consecutive NF4 values (-1 .. -0.696).
constexpr float kNf4HalfMaxGap = 0.5f * (-0.6961928009986877f - -1.0f);

std::vector<uint8_t> Quantize(const std::vector<float>& w, const Nf4Layout& layout) {
  std::vector<uint8_t> packed(static_cast<size_t>(layout.total_bytes()), 0xAB);
  Status s = QuantizeNf4(w.data(), static_cast<int64_t>(w.size()), layout, packed.data(),
                         static_cast<int64_t>(packed.size()));
  EXPECT_TRUE(s.ok()) << s.ToString();
  return packed;
}

std::vector<float> Dequantize(const std::vector<uint8_t>& packed, const Nf4Layout& layout) {
  std::vector<float> out(static_cast<size_t>(layout.num_elements), NAN);
  Status s = DequantizeNf4(packed.data(), static_cast<int64_t>(packed.size()), layout,
                           out.data(), static_cast<int64_t>(out.size()));
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

std::vector<float> Absmax(const std::vector<uint8_t>& packed, const Nf4Layout& layout) {
  std::vector<float> out(static_cast<size_t>(layout.num_blocks), NAN);
  Status s = DequantizeNf4Absmax(packed.data(), static_cast<int64_t>(packed.size()), layout,
                                 out.data(), static_cast<int64_t>(out.size()));
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

uint8_t CodeAt(const std::vector<uint8_t>& packed, int64_t i) {
  const uint8_t byte = packed[static_cast<size_t>(i / 2)];
  return i % 2 == 0 ? byte >> 4 : byte & 0x0f;
}

Nf4Layout MakeLayout(int64_t n, int64_t block, int64_t dq) {
  StatusOr<Nf4Layout> layout = Nf4Layout::Make(n, block, dq);
  EXPECT_TRUE(layout.ok()) << layout.status().ToString();
  return *layout;
}

// Weights like a linear layer's: normal with std 0.02, a few outliers, and
// one block per 16 scaled down 1000x (so absmax values span a wide range and
// the double quantization has something to do). Never all zeros.
std::vector<float> RandomWeights(int64_t n, int64_t block, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::uniform_int_distribution<int> pick(0, 999);
  std::vector<float> w(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    float v = normal(rng);
    if (pick(rng) == 0) v *= 40.0f;
    if ((i / block) % 16 == 5) v *= 1e-3f;
    w[static_cast<size_t>(i)] = v;
  }
  return w;
}

float Bf16ToFloat(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

// Reference float -> bf16 rounding to nearest even, computed through double.
uint16_t FloatToBf16Reference(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  const uint16_t down = static_cast<uint16_t>(bits >> 16);
  const uint16_t up = static_cast<uint16_t>(down + 1);
  const double d = f, lo = Bf16ToFloat(down), hi = Bf16ToFloat(up);
  const double dlo = std::fabs(d - lo), dhi = std::fabs(hi - d);
  if (dlo < dhi) return down;
  if (dhi < dlo) return up;
  return (down & 1) ? up : down;
}

// FNV-1a over the little-endian bytes of floats.
uint64_t HashFloats(const float* v, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; ++i) {
    uint8_t bytes[4];
    std::memcpy(bytes, &v[i], 4);
    for (uint8_t b : bytes) {
      h ^= b;
      h *= 0x100000001b3ull;
    }
  }
  return h;
}

TEST(Nf4CodebookTest, ValuesAndMidpointThresholds) {
  // bitsandbytes get_4bit_type("nf4").
  const double expected[16] = {-1.0,
                               -0.6961928009986877,
                               -0.5250730514526367,
                               -0.39491748809814453,
                               -0.28444138169288635,
                               -0.18477343022823334,
                               -0.09105003625154495,
                               0.0,
                               0.07958029955625534,
                               0.16093020141124725,
                               0.24611230194568634,
                               0.33791524171829224,
                               0.44070982933044434,
                               0.5626170039176941,
                               0.7229568362236023,
                               1.0};
  for (int k = 0; k < 16; ++k) {
    // Every value is an exact float32.
    EXPECT_EQ(static_cast<double>(kNf4Codebook[k]), expected[k]) << k;
    if (k > 0) {
      EXPECT_LT(kNf4Codebook[k - 1], kNf4Codebook[k]);
    }
  }
  for (int k = 0; k < 15; ++k) {
    // bitsandbytes' dQuantizeNF4 compares with float literals written as the
    // shortest decimal of the double midpoint; the midpoint of two floats is
    // often an exact tie between two floats, and the literal may land on
    // either one. So: within half an ulp of the exact midpoint.
    const double mid = (expected[k] + expected[k + 1]) / 2.0;  // exact
    const double t = kNf4Thresholds[k];
    const double ulp = std::nextafter(kNf4Thresholds[k], 2.0f) - kNf4Thresholds[k];
    EXPECT_LE(std::fabs(t - mid), 0.5 * ulp) << k;
  }
  // Where the literal rounded to the float just above the tie (k = 1, 3, 4,
  // 8), that one float still takes the lower code, as in bitsandbytes.
  EXPECT_GT(static_cast<double>(kNf4Thresholds[1]), (expected[1] + expected[2]) / 2.0);
  EXPECT_EQ(Nf4Encode(kNf4Thresholds[1]), 1);
}

TEST(Nf4CodebookTest, EncodeIsNearestWithTiesDown) {
  for (int k = 0; k < 16; ++k) EXPECT_EQ(Nf4Encode(kNf4Codebook[k]), k);
  for (int k = 0; k < 15; ++k) {
    // Exactly on a midpoint: the lower code (`x > t` fails); just above: upper.
    EXPECT_EQ(Nf4Encode(kNf4Thresholds[k]), k);
    EXPECT_EQ(Nf4Encode(std::nextafter(kNf4Thresholds[k], 2.0f)), k + 1);
  }
  EXPECT_EQ(Nf4Encode(-1.5f), 0);
  EXPECT_EQ(Nf4Encode(1.5f), 15);
  EXPECT_EQ(Nf4Encode(-0.0f), 7);
  EXPECT_EQ(Nf4Encode(std::numeric_limits<float>::quiet_NaN()), 0);  // as the CUDA tree
  // Against a brute-force nearest search on a fine grid.
  for (int i = -11000; i <= 11000; ++i) {
    const float x = static_cast<float>(i) / 10000.0f;
    int best = 0;
    for (int k = 1; k < 16; ++k)
      if (std::fabs(x - kNf4Codebook[k]) < std::fabs(x - kNf4Codebook[best])) best = k;
    EXPECT_EQ(Nf4Encode(x), best) << x;
  }
}

TEST(DynamicMapTest, MatchesBitsandbytesCreateDynamicMap) {
  const float* map = DynamicMap8();
  // 256 sorted distinct values in [-1, 1].
  for (int i = 1; i < 256; ++i) EXPECT_LT(map[i - 1], map[i]) << i;
  EXPECT_GE(map[0], -1.0f);
  EXPECT_LE(map[255], 1.0f);
  // 0 and +1 are in the map; -1 is not: bitsandbytes appends 0 and 1.0 to 127
  // positive and 127 negative means, so the most negative value is
  // -(0.99296875 in float32).
  EXPECT_EQ(map[127], 0.0f);
  EXPECT_EQ(map[255], 1.0f);
  EXPECT_EQ(map[0], -0.992968738079071f);
  EXPECT_EQ(std::count(map, map + 256, -1.0f), 0);
  // Spot values as `create_dynamic_map().tolist()` prints them, including
  // entries that only the FMA-contracted torch.linspace reproduces.
  EXPECT_EQ(map[1], -0.9789062738418579f);
  EXPECT_EQ(map[20], -0.7117187976837158f);
  EXPECT_EQ(map[36], -0.48671871423721313f);
  EXPECT_EQ(map[126], -5.500000384017767e-07f);
  EXPECT_EQ(map[128], 5.500000384017767e-07f);
  EXPECT_EQ(map[170], 0.04234374687075615f);
  EXPECT_EQ(map[229], 0.6414062976837158f);
  EXPECT_EQ(map[254], 0.992968738079071f);
  // Symmetric around index 127 except for the extra +1.
  for (int i = 0; i < 127; ++i) EXPECT_EQ(map[i], -map[254 - i]) << i;
  // All 256 bit patterns at once (FNV-1a of the little-endian bytes of the
  // bitsandbytes map).
  EXPECT_EQ(HashFloats(map, 256), 0xd677f22a96665bc4ull);
}

TEST(DynamicMapTest, EncodeMapsEveryValueToItselfAndRoundsToNearest) {
  const float* map = DynamicMap8();
  for (int k = 0; k < 256; ++k) EXPECT_EQ(Dynamic8Encode(map, map[k]), k) << k;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> mag(-7.0f, 0.0f);
  std::uniform_int_distribution<int> sign(0, 1);
  for (int i = 0; i < 20000; ++i) {
    const float x = (sign(rng) ? -1.0f : 1.0f) * std::pow(10.0f, mag(rng));
    const int got = Dynamic8Encode(map, x);
    int best = 0;
    for (int k = 1; k < 256; ++k)
      if (std::fabs(x - map[k]) < std::fabs(x - map[best])) best = k;
    EXPECT_EQ(std::fabs(x - map[got]), std::fabs(x - map[best])) << x;
  }
  EXPECT_EQ(Dynamic8Encode(map, -1.0f), 0);
  EXPECT_EQ(Dynamic8Encode(map, 1.0f), 255);
  EXPECT_EQ(Dynamic8Encode(map, 0.0f), 127);
}

TEST(Nf4LayoutTest, SizesAgreeWithTheCompilerFormula) {
  struct Case {
    int64_t n, block, dq;
  };
  const Case cases[] = {
      {64 * 64, 64, 256},      {64 * 64, 64, 0},          {4096 * 4096, 64, 256},
      {11008 * 4096, 64, 256}, {11008 * 4096, 128, 256},  {300 * 64, 64, 256},
      {300 * 64, 64, 0},       {64, 64, 256},             {2, 2, 1},
      {4096 * 3, 4096, 4096},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::to_string(c.n) + "/" + std::to_string(c.block) + "/" +
                 std::to_string(c.dq));
    Nf4Layout l = MakeLayout(c.n, c.block, c.dq);
    const int64_t blocks = c.n / c.block;
    EXPECT_EQ(l.num_blocks, blocks);
    EXPECT_EQ(l.code_bytes, c.n / 2);
    EXPECT_EQ(l.double_quant(), c.dq > 0);
    // NF4Type::getScaleBytes: blocks*4, or blocks*1 + groups*4 + 4.
    if (c.dq == 0) {
      EXPECT_EQ(l.num_groups, 0);
      EXPECT_EQ(l.absmax_bytes, blocks * 4);
      EXPECT_EQ(l.absmax_offset() + 4 * blocks, l.total_bytes());
    } else {
      const int64_t groups = (blocks + c.dq - 1) / c.dq;
      EXPECT_EQ(l.num_groups, groups);
      EXPECT_EQ(l.absmax_bytes, blocks + groups * 4 + 4);
      EXPECT_EQ(l.absmax2_offset(), l.code_bytes);
      EXPECT_EQ(l.mean_offset(), l.code_bytes + 4 * groups);
      EXPECT_EQ(l.qabsmax_offset() + blocks, l.total_bytes());
    }
    EXPECT_EQ(l.total_bytes(), l.code_bytes + l.absmax_bytes);
    EXPECT_EQ(Nf4Layout::AbsmaxBytes(blocks, c.dq), l.absmax_bytes);
  }
  // Llama-2-7B's q_proj, as `lorac compile --report` will count it:
  // 8 MiB of codes, 262144 one-byte scales, 1024 float32 group scales, the mean.
  Nf4Layout q = MakeLayout(4096 * 4096, 64, 256);
  EXPECT_EQ(q.code_bytes, 8388608);
  EXPECT_EQ(q.absmax_bytes, 262144 + 4096 + 4);
  EXPECT_EQ(MakeLayout(4096 * 4096, 64, 0).absmax_bytes, 262144 * 4);
  // The floats of the double-quantized layout are 4-byte aligned.
  EXPECT_EQ(q.absmax2_offset() % 4, 0);
  EXPECT_EQ(q.mean_offset() % 4, 0);
}

TEST(Nf4LayoutTest, RejectsBadParameters) {
  struct Case {
    int64_t n, block, dq;
    const char* message;
  };
  const Case cases[] = {
      {100, 64, 256, "element count 100 is not a multiple of block_size 64"},
      {4096 + 32, 64, 0, "is not a multiple of block_size 64"},
      {0, 64, 256, "element count must be positive, got 0"},
      {-64, 64, 256, "element count must be positive, got -64"},
      {96, 48, 256, "block_size must be a power of two in [2, 4096], got 48"},
      {64, 1, 256, "block_size must be a power of two in [2, 4096], got 1"},
      {8192, 8192, 256, "block_size must be a power of two in [2, 4096], got 8192"},
      {64, 0, 256, "got 0"},
      {64, 64, 3, "double_quant_block must be 0 (none) or a power of two in [1, 4096], got 3"},
      {64, 64, -1, "double_quant_block must be 0 (none) or a power of two"},
      {64, 64, 8192, "double_quant_block must be 0 (none) or a power of two"},
  };
  for (const Case& c : cases) {
    StatusOr<Nf4Layout> l = Nf4Layout::Make(c.n, c.block, c.dq);
    ASSERT_FALSE(l.ok()) << c.message;
    EXPECT_EQ(l.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(l.status().message().find(c.message), std::string::npos)
        << l.status().message();
  }
}

// A block holding exactly the 16 codebook values times 3 (each 4 times, in a
// scrambled order) has absmax 3: every code is exact and so is every value on
// the way back, with and without double quantization (all blocks share the
// absmax, so the centred absmax is 0 and the mean alone restores it).
TEST(Nf4Test, CodebookTimesThreeIsExact) {
  std::vector<float> w;
  std::vector<int> codes;
  for (int rep = 0; rep < 4; ++rep)
    for (int j = 0; j < 16; ++j) {
      const int k = (j * 7 + rep * 3) % 16;  // 7 is coprime with 16
      codes.push_back(k);
      w.push_back(kNf4Codebook[k] * 3.0f);
    }
  // Three blocks.
  std::vector<float> w3;
  std::vector<int> codes3;
  for (int b = 0; b < 3; ++b) {
    w3.insert(w3.end(), w.begin(), w.end());
    codes3.insert(codes3.end(), codes.begin(), codes.end());
  }
  for (int64_t dq : {int64_t{0}, int64_t{256}, int64_t{2}}) {
    SCOPED_TRACE("double_quant_block=" + std::to_string(dq));
    Nf4Layout layout = MakeLayout(static_cast<int64_t>(w3.size()), 64, dq);
    std::vector<uint8_t> packed = Quantize(w3, layout);
    for (size_t i = 0; i < w3.size(); ++i) EXPECT_EQ(CodeAt(packed, i), codes3[i]) << i;
    std::vector<float> absmax = Absmax(packed, layout);
    for (float a : absmax) EXPECT_EQ(a, 3.0f);
    std::vector<float> back = Dequantize(packed, layout);
    for (size_t i = 0; i < w3.size(); ++i) EXPECT_EQ(back[i], w3[i]) << i;
  }
}

TEST(Nf4Test, FirstElementOfEachPairIsTheHighNibble) {
  std::vector<float> w(64, 0.0f);
  w[0] = -2.0f;  // code 0
  w[1] = 2.0f;   // code 15
  w[2] = 2.0f * 0.5626170039176941f;   // code 13
  w[3] = 2.0f * -0.28444138169288635f;  // code 4
  Nf4Layout layout = MakeLayout(64, 64, 0);
  std::vector<uint8_t> packed = Quantize(w, layout);
  EXPECT_EQ(packed[0], 0x0F);
  EXPECT_EQ(packed[1], 0xD4);
  for (int i = 2; i < 32; ++i) EXPECT_EQ(packed[i], 0x77) << i;  // zeros: code 7
  float absmax;
  std::memcpy(&absmax, packed.data() + layout.absmax_offset(), 4);
  EXPECT_EQ(absmax, 2.0f);
  EXPECT_EQ(Dequantize(packed, layout), w);
}

TEST(Nf4Test, RoundTripErrorWithinHalfTheCodebookGap) {
  for (int64_t block : {int64_t{64}, int64_t{128}}) {
    const int64_t n = 96 * 128;
    SCOPED_TRACE("block_size=" + std::to_string(block));
    std::vector<float> w = RandomWeights(n, block, 1234u + static_cast<uint32_t>(block));
    Nf4Layout layout = MakeLayout(n, block, 0);
    std::vector<uint8_t> packed = Quantize(w, layout);
    std::vector<float> absmax = Absmax(packed, layout);
    std::vector<float> back = Dequantize(packed, layout);
    for (int64_t b = 0; b < layout.num_blocks; ++b) {
      float expected = 0.0f;
      for (int64_t i = b * block; i < (b + 1) * block; ++i)
        expected = std::max(expected, std::fabs(w[i]));
      ASSERT_EQ(absmax[b], expected) << b;  // stored exactly without double quant
      ASSERT_GT(expected, 0.0f);
    }
    for (int64_t i = 0; i < n; ++i) {
      const float a = absmax[i / block];
      // Bound: half the widest codebook gap times the block's absmax (plus a
      // few ulps of the normalization and the product).
      ASSERT_LE(std::fabs(back[i] - w[i]), kNf4HalfMaxGap * a * (1 + 1e-6f)) << i;
      // And the code is the nearest codebook value of w / absmax.
      const float x = w[i] / a;
      const int code = CodeAt(packed, i);
      for (int k = 0; k < 16; ++k)
        ASSERT_LE(std::fabs(x - kNf4Codebook[code]), std::fabs(x - kNf4Codebook[k]) + 1e-6f)
            << i;
      EXPECT_EQ(back[i], kNf4Codebook[code] * a);
    }
  }
}

TEST(Nf4Test, DoubleQuantRoundTripWithinBounds) {
  // 300 blocks: one full group of 256 and a partial one of 44.
  const int64_t block = 64, n = 300 * block;
  std::vector<float> w = RandomWeights(n, block, 42u);
  Nf4Layout plain = MakeLayout(n, block, 0);
  Nf4Layout dq = MakeLayout(n, block, 256);
  ASSERT_EQ(dq.num_groups, 2);
  std::vector<uint8_t> p0 = Quantize(w, plain);
  std::vector<uint8_t> p1 = Quantize(w, dq);
  // The 4-bit codes are computed with the exact absmax: identical.
  EXPECT_TRUE(std::equal(p0.begin(), p0.begin() + plain.code_bytes, p1.begin()));

  std::vector<float> exact = Absmax(p0, plain);
  std::vector<float> approx = Absmax(p1, dq);
  float mean;
  std::memcpy(&mean, p1.data() + dq.mean_offset(), 4);
  double sum = 0;
  for (float a : exact) sum += a;
  EXPECT_NEAR(mean, sum / exact.size(), 1e-6 * std::fabs(mean));

  // Second level: |absmax' - absmax| <= half the widest gap of the dynamic map
  // (0.0140625 / 2) times the group's scale absmax2 = max |absmax - mean|.
  const float* map = DynamicMap8();
  float max_gap = 0;
  for (int k = 1; k < 256; ++k) max_gap = std::max(max_gap, map[k] - map[k - 1]);
  EXPECT_NEAR(max_gap, 0.0140625f, 1e-7f);
  for (int64_t g = 0; g < dq.num_groups; ++g) {
    float absmax2;
    std::memcpy(&absmax2, p1.data() + dq.absmax2_offset() + 4 * g, 4);
    float expected2 = 0;
    for (int64_t b = g * 256; b < std::min<int64_t>(dq.num_blocks, (g + 1) * 256); ++b)
      expected2 = std::max(expected2, std::fabs(exact[b] - mean));
    EXPECT_EQ(absmax2, expected2) << g;
    for (int64_t b = g * 256; b < std::min<int64_t>(dq.num_blocks, (g + 1) * 256); ++b)
      ASSERT_LE(std::fabs(approx[b] - exact[b]), 0.5f * max_gap * absmax2 * (1 + 1e-5f) + 1e-7f)
          << b;
  }
  // Weights: the first-level bound with the exact absmax, plus the absmax
  // error (|codebook| <= 1).
  std::vector<float> back = Dequantize(p1, dq);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t b = i / block;
    const float bound = kNf4HalfMaxGap * exact[b] + std::fabs(approx[b] - exact[b]);
    ASSERT_LE(std::fabs(back[i] - w[i]), bound * (1 + 1e-5f) + 1e-9f) << i;
    EXPECT_EQ(back[i], kNf4Codebook[CodeAt(p1, i)] * approx[b]);
  }
}

TEST(Nf4Test, ZeroBlockDequantizesToZero) {
  std::vector<float> w = RandomWeights(4 * 64, 64, 3u);
  std::fill(w.begin() + 64, w.begin() + 128, 0.0f);
  for (int64_t dq : {int64_t{0}, int64_t{256}}) {
    Nf4Layout layout = MakeLayout(4 * 64, 64, dq);
    std::vector<uint8_t> packed = Quantize(w, layout);
    // bitsandbytes' codes for an all-zero block: 0 (its kernel computes NaN).
    for (int i = 32; i < 64; ++i) EXPECT_EQ(packed[i], 0x00) << i;
    if (dq == 0) {
      std::vector<float> back = Dequantize(packed, layout);
      for (int i = 64; i < 128; ++i) EXPECT_EQ(back[i], 0.0f) << i;
    }
  }
}

TEST(Nf4Test, Bf16InputAndOutput) {
  const int64_t n = 16 * 64;
  std::vector<float> w = RandomWeights(n, 64, 99u);
  // bf16 input: the same result as quantizing the widened floats.
  std::vector<uint16_t> bf(n);
  std::vector<float> widened(n);
  for (int64_t i = 0; i < n; ++i) {
    bf[i] = FloatToBf16Reference(w[i]);
    widened[i] = Bf16ToFloat(bf[i]);
  }
  Nf4Layout layout = MakeLayout(n, 64, 256);
  std::vector<uint8_t> from_float = Quantize(widened, layout);
  std::vector<uint8_t> from_bf16(layout.total_bytes());
  ASSERT_TRUE(QuantizeNf4FromBf16(bf.data(), n, layout, from_bf16.data(),
                                  static_cast<int64_t>(from_bf16.size()))
                  .ok());
  EXPECT_EQ(from_bf16, from_float);
  // bf16 output: the float32 result rounded to nearest even.
  std::vector<float> back = Dequantize(from_float, layout);
  std::vector<uint16_t> back16(n);
  ASSERT_TRUE(DequantizeNf4ToBf16(from_float.data(), static_cast<int64_t>(from_float.size()),
                                  layout, back16.data(), n)
                  .ok());
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(back16[i], FloatToBf16Reference(back[i])) << i;
}

TEST(Nf4Test, RejectsBadSizesAndValues) {
  Nf4Layout layout = MakeLayout(128, 64, 256);
  std::vector<float> w = RandomWeights(128, 64, 5u);
  std::vector<uint8_t> packed(layout.total_bytes());
  std::vector<float> out(128);

  Status s = QuantizeNf4(w.data(), 127, layout, packed.data(), packed.size());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("127 elements given, the layout has 128"), std::string::npos)
      << s.message();
  s = QuantizeNf4(w.data(), 128, layout, packed.data(), packed.size() - 1);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("packed buffer has 73 bytes, the layout needs 74"),
            std::string::npos)
      << s.message();
  s = DequantizeNf4(packed.data(), packed.size(), layout, out.data(), 64);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  s = DequantizeNf4(packed.data(), packed.size() + 1, layout, out.data(), 128);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  s = DequantizeNf4Absmax(packed.data(), packed.size(), layout, out.data(), 3);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);

  // A hand-built layout that disagrees with its own parameters.
  Nf4Layout forged = layout;
  forged.absmax_bytes = 8;
  s = QuantizeNf4(w.data(), 128, forged, packed.data(), forged.total_bytes());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  Nf4Layout bad_block = layout;
  bad_block.block_size = 48;
  s = QuantizeNf4(w.data(), 128, bad_block, packed.data(), packed.size());
  EXPECT_NE(s.message().find("block_size must be a power of two"), std::string::npos);

  // Non-finite weights are named.
  w[77] = std::numeric_limits<float>::infinity();
  s = QuantizeNf4(w.data(), 128, layout, packed.data(), packed.size());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("element 77 of 128 is not finite (inf)"), std::string::npos)
      << s.message();
  w[77] = 0.0f;
  w[3] = std::numeric_limits<float>::quiet_NaN();
  s = QuantizeNf4(w.data(), 128, layout, packed.data(), packed.size());
  EXPECT_NE(s.message().find("element 3 of 128 is not finite"), std::string::npos)
      << s.message();
}

TEST(Blockwise8Test, RoundTripAndPartialLastBlock) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t n = 1000, block = 256;  // 3 full blocks and one of 232
  std::vector<float> x(n);
  for (float& v : x) v = normal(rng);
  std::vector<uint8_t> codes(n);
  std::vector<float> absmax(4), back(n);
  ASSERT_TRUE(QuantizeBlockwise8(x.data(), n, block, codes.data(), absmax.data()).ok());
  ASSERT_TRUE(DequantizeBlockwise8(codes.data(), absmax.data(), n, block, back.data()).ok());
  const float* map = DynamicMap8();
  float max_gap = 1.0f + map[0];
  for (int k = 1; k < 256; ++k) max_gap = std::max(max_gap, map[k] - map[k - 1]);
  for (int64_t i = 0; i < n; ++i) {
    // Half the widest gap of the map (0.0140625 / 2; also the distance from
    // -1 to its smallest value) times the block absmax.
    ASSERT_LE(std::fabs(back[i] - x[i]), 0.5f * max_gap * absmax[i / block] * (1 + 1e-5f)) << i;
  }
  EXPECT_EQ(QuantizeBlockwise8(x.data(), n, 0, codes.data(), absmax.data()).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(DequantizeBlockwise8(codes.data(), absmax.data(), -1, block, back.data()).code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lorart
