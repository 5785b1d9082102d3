// NF4 against the real bitsandbytes (0.50.2, CPU, from PyPI): the same bf16
// weights quantized by both with block 64 and double quantization (QLoRA's
// settings). test/runtime/nf4/make_bnb_reference.py writes bitsandbytes'
// result; skipped when bitsandbytes cannot be imported.
//
// Measured (docs/runtime.md, "NF4"): the 4-bit codes, the second-level
// scales and the offset agree exactly; a few absmax codes differ by one
// step of the 8-bit dynamic map, always where the value lies within ~1e-5 of
// the midpoint between two map entries: our encoder follows the CUDA kernel
// (dQuantize<0>), which picks the nearer entry, while bitsandbytes' CPU
// quantizer (a bin lookup) picks the farther one there. Every such block is
// checked to be one where our code is the nearer.
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "lorart/base/strings.h"
#include "lorart/io/mapped_file.h"
#include "lorart/io/safetensors.h"
#include "lorart/quant/nf4.h"
#include "test_util.h"

namespace lorart {
namespace {

TEST(Nf4Bitsandbytes, MatchesTheRealLibrary) {
  testing::TempDir dir;
  const std::string ref = dir.Join("bnb.safetensors");
  const std::string cmd =
      StrFormat("PYTHONPATH='%s' '%s' '%s/test/runtime/nf4/make_bnb_reference.py' '%s' 2>'%s.log'",
                LORAC_BNB_DIR, LORAC_PYTHON, LORAC_SOURCE_DIR, ref.c_str(), ref.c_str());
  const int rc = std::system(cmd.c_str());
  const int status = WIFEXITED(rc) ? WEXITSTATUS(rc) : 255;
  if (status == 3) GTEST_SKIP() << "bitsandbytes is not importable from " << LORAC_BNB_DIR;
  ASSERT_EQ(status, 0) << "make_bnb_reference.py failed";

  SafetensorsHeader header;
  ASSERT_TRUE(ReadSafetensorsHeader(ref, &header).ok());
  MappedFile file;
  ASSERT_TRUE(file.Open(ref).ok());
  auto bytes = [&](const char* name) {
    const TensorInfo* t = header.Find(name);
    EXPECT_NE(t, nullptr) << name;
    return file.data() + header.DataOffset() + t->begin;
  };
  auto count = [&](const char* name) { return header.Find(name)->NumElements(); };
  const int64_t n = count("weight");
  std::vector<uint16_t> w(static_cast<size_t>(n));
  std::memcpy(w.data(), bytes("weight"), sizeof(uint16_t) * w.size());

  StatusOr<Nf4Layout> layout = Nf4Layout::Make(n, 64, 256);
  ASSERT_TRUE(layout.ok());
  std::vector<uint8_t> ours(static_cast<size_t>(layout->total_bytes()));
  ASSERT_TRUE(QuantizeNf4FromBf16(w.data(), n, *layout, ours.data(),
                                  static_cast<int64_t>(ours.size()))
                  .ok());

  // The 4-bit codes: identical.
  ASSERT_EQ(count("codes"), layout->code_bytes);
  EXPECT_EQ(std::memcmp(ours.data(), bytes("codes"), static_cast<size_t>(layout->code_bytes)), 0);
  // The second level's scales: identical; the offset (the mean of the
  // absmax, which we accumulate in double) within one float ulp.
  ASSERT_EQ(count("absmax2"), layout->num_groups);
  EXPECT_EQ(std::memcmp(ours.data() + layout->absmax2_offset(), bytes("absmax2"),
                        static_cast<size_t>(4 * layout->num_groups)),
            0);
  float our_offset, bnb_offset;
  std::memcpy(&our_offset, ours.data() + layout->mean_offset(), 4);
  std::memcpy(&bnb_offset, bytes("offset"), 4);
  EXPECT_LE(std::fabs(our_offset - bnb_offset), std::nextafter(bnb_offset, 1.0f) - bnb_offset);
  // The dynamic map: the same 256 values.
  EXPECT_EQ(std::memcmp(DynamicMap8(), bytes("code8"), 4 * 256), 0);

  // The 8-bit absmax codes: where they differ, ours is the entry nearer to
  // the value encoded, (absmax - offset) / absmax2.
  ASSERT_EQ(count("qabsmax"), layout->num_blocks);
  const uint8_t* q_ours = ours.data() + layout->qabsmax_offset();
  const uint8_t* q_bnb = bytes("qabsmax");
  std::vector<float> absmax(static_cast<size_t>(layout->num_blocks));
  for (int64_t b = 0; b < layout->num_blocks; ++b) {
    float m = 0;
    for (int64_t i = 0; i < 64; ++i) {
      uint32_t bits = static_cast<uint32_t>(w[static_cast<size_t>(b * 64 + i)]) << 16;
      float v;
      std::memcpy(&v, &bits, 4);
      m = std::max(m, std::fabs(v));
    }
    absmax[static_cast<size_t>(b)] = m;
  }
  const float* map = DynamicMap8();
  int64_t differ = 0;
  double worst = 0;  // largest relative difference of a dequantized absmax
  for (int64_t b = 0; b < layout->num_blocks; ++b) {
    if (q_ours[b] == q_bnb[b]) continue;
    ++differ;
    float scale2;
    std::memcpy(&scale2, ours.data() + layout->absmax2_offset() + 4 * (b / 256), 4);
    const double x = (double(absmax[static_cast<size_t>(b)]) - our_offset) / scale2;
    EXPECT_LE(std::fabs(map[q_ours[b]] - x), std::fabs(map[q_bnb[b]] - x) + 1e-7)
        << "block " << b << ": ours " << int(q_ours[b]) << ", bitsandbytes " << int(q_bnb[b]);
    EXPECT_EQ(std::abs(int(q_ours[b]) - int(q_bnb[b])), 1) << "block " << b;
    const double a_ours = double(map[q_ours[b]]) * scale2 + our_offset;
    const double a_bnb = double(map[q_bnb[b]]) * scale2 + our_offset;
    worst = std::max(worst, std::fabs(a_ours - a_bnb) / std::fabs(a_bnb));
  }
  std::printf("nf4 vs bitsandbytes %s: %lld blocks, %lld absmax codes one step apart (max %.3g%% "
              "of the block's scale)\n",
              header.metadata.count("bitsandbytes") ? header.metadata["bitsandbytes"].c_str() : "?",
              static_cast<long long>(layout->num_blocks), static_cast<long long>(differ),
              100 * worst);
  EXPECT_LE(differ, layout->num_blocks / 200);  // at most 0.5% of the blocks

  // Dequantized bf16: bit-identical in every block whose absmax code agrees.
  std::vector<uint16_t> deq(static_cast<size_t>(n));
  ASSERT_TRUE(DequantizeNf4ToBf16(ours.data(), static_cast<int64_t>(ours.size()), *layout,
                                  deq.data(), n)
                  .ok());
  const uint16_t* deq_bnb = reinterpret_cast<const uint16_t*>(bytes("dequant"));
  int64_t mismatched = 0;
  for (int64_t b = 0; b < layout->num_blocks; ++b) {
    if (q_ours[b] != q_bnb[b]) continue;
    for (int64_t i = b * 64; i < (b + 1) * 64; ++i) mismatched += deq[i] != deq_bnb[i];
  }
  EXPECT_EQ(mismatched, 0);
}

}  // namespace
}  // namespace lorart
