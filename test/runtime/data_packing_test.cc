// Sequence packing: best-fit-decreasing rows and the row tensors, checked
// over randomized lengths.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <vector>

#include "lorart/data/packing.h"

namespace lorart {
namespace data {
namespace {

// First fit in the given order: the baseline BFD must not lose to.
int64_t FirstFitRows(const std::vector<int64_t>& lengths, int64_t seq_len) {
  std::vector<int64_t> used;
  for (int64_t len : lengths) {
    bool placed = false;
    for (int64_t& u : used) {
      if (u + len <= seq_len) {
        u += len;
        placed = true;
        break;
      }
    }
    if (!placed) used.push_back(len);
  }
  return static_cast<int64_t>(used.size());
}

std::vector<int32_t> Iota(size_t n) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

TEST(DataPackingTest, BestFitDecreasingSmallCase) {
  // Sorted 6, 5, 5, 4, 3 into rows of 10: [6], [5] -> [5, 5] -> [6, 4] -> [3].
  std::vector<int64_t> lengths = {6, 4, 5, 5, 3};
  std::vector<PackedRow> rows = PackBestFitDecreasing(Iota(5), lengths, 10);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].docs, (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(rows[0].used, 10);
  EXPECT_EQ(rows[1].docs, (std::vector<int32_t>{2, 3}));
  EXPECT_EQ(rows[2].docs, (std::vector<int32_t>{4}));
  EXPECT_EQ(rows[2].used, 3);
  // Best fit, not first fit: sorted 8, 6, 3, 1 -> [8] [6, 3]; the 1 goes to
  // the row with 1 free, not the first row (2 free).
  rows = PackBestFitDecreasing(Iota(4), {3, 8, 1, 6}, 10);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].docs, (std::vector<int32_t>{1}));
  EXPECT_EQ(rows[1].docs, (std::vector<int32_t>{3, 0, 2}));
  // Equal lengths keep the order given.
  rows = PackBestFitDecreasing({2, 0, 1}, {4, 4, 4}, 4);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].docs, (std::vector<int32_t>{2}));
  EXPECT_EQ(rows[1].docs, (std::vector<int32_t>{0}));
  EXPECT_EQ(rows[2].docs, (std::vector<int32_t>{1}));
}

TEST(DataPackingTest, RandomizedInvariants) {
  Rng rng(7);
  int64_t bfd_total = 0, ff_total = 0, bfd_wins = 0, bfd_losses = 0;
  for (int trial = 0; trial < 200; ++trial) {
    int64_t seq_len = 2 + static_cast<int64_t>(rng.Below(100));
    size_t n = 1 + rng.Below(300);
    std::vector<int64_t> lengths(n);
    // Mixtures of short and long documents, and sometimes all full rows.
    for (auto& len : lengths) {
      len = trial % 7 == 0 ? seq_len : 1 + static_cast<int64_t>(rng.Below(seq_len));
      if (trial % 3 == 0 && rng.Below(4) == 0) len = 1 + static_cast<int64_t>(rng.Below(4));
    }
    std::vector<int32_t> order = Iota(n);
    rng.Shuffle(&order);
    std::vector<PackedRow> rows = PackBestFitDecreasing(order, lengths, seq_len);

    std::vector<int> seen(n, 0);
    int64_t total = 0;
    for (const PackedRow& row : rows) {
      ASSERT_FALSE(row.docs.empty());
      int64_t used = 0;
      for (int32_t d : row.docs) {
        ASSERT_GE(d, 0);
        ASSERT_LT(static_cast<size_t>(d), n);
        ++seen[d];
        used += lengths[d];
      }
      EXPECT_EQ(used, row.used);
      EXPECT_LE(row.used, seq_len);  // no row overflows
      total += used;
    }
    for (size_t d = 0; d < n; ++d) ASSERT_EQ(seen[d], 1) << "doc " << d;  // each exactly once
    int64_t lower_bound = (total + seq_len - 1) / seq_len;
    EXPECT_GE(static_cast<int64_t>(rows.size()), lower_bound);
    std::vector<int64_t> in_order;
    for (int32_t d : order) in_order.push_back(lengths[d]);
    // BFD is not better than first fit on every instance (trial 63: 142 full
    // rows of 13 plus 7x1, 13x2, 12x3, 12x4 tokens; BFD opens 10 rows for
    // the short ones, a lucky first-fit order 9 = the optimum), but never by
    // more than one row here, and it wins overall.
    int64_t ff = FirstFitRows(in_order, seq_len);
    EXPECT_LE(static_cast<int64_t>(rows.size()), ff + 1) << "trial " << trial;
    bfd_total += static_cast<int64_t>(rows.size());
    ff_total += ff;
    bfd_wins += static_cast<int64_t>(rows.size()) < ff ? 1 : 0;
    bfd_losses += static_cast<int64_t>(rows.size()) > ff ? 1 : 0;
    // A row is only opened when no open row has room: row q's free space then
    // was below the new row's first document, and only shrank afterwards.
    for (size_t r = 1; r < rows.size(); ++r) {
      int64_t first_len = lengths[rows[r].docs[0]];
      for (size_t q = 0; q < r; ++q) EXPECT_GT(rows[q].used + first_len, seq_len);
    }

    std::vector<PackedRow> single = PackOnePerRow(order, lengths);
    ASSERT_EQ(single.size(), n);
    for (size_t i = 0; i < n; ++i) {
      EXPECT_EQ(single[i].docs, std::vector<int32_t>{order[i]});
      EXPECT_EQ(single[i].used, lengths[order[i]]);
    }
  }
  EXPECT_LT(bfd_total, ff_total);
  EXPECT_GT(bfd_wins, 10 * bfd_losses) << bfd_wins << " wins, " << bfd_losses << " losses";
}

TEST(DataPackingTest, RandomizedRowTensors) {
  Rng rng(11);
  const int32_t kPad = 2;
  for (int trial = 0; trial < 100; ++trial) {
    int64_t seq_len = 2 + static_cast<int64_t>(rng.Below(64));
    size_t n = 1 + rng.Below(40);
    std::vector<Example> docs(n);
    std::vector<int64_t> lengths(n);
    for (size_t d = 0; d < n; ++d) {
      int64_t len = 1 + static_cast<int64_t>(rng.Below(seq_len));
      lengths[d] = len;
      for (int64_t i = 0; i < len; ++i) {
        docs[d].tokens.push_back(3 + static_cast<int32_t>(rng.Below(1000)));
        docs[d].is_target.push_back(i > 0 && rng.Below(3) != 0 ? 1 : 0);
      }
    }
    std::vector<PackedRow> rows = PackBestFitDecreasing(Iota(n), lengths, seq_len);
    for (const PackedRow& row : rows) {
      std::vector<int32_t> tokens(seq_len, -7), positions(seq_len, -7), segments(seq_len, -7),
          targets(seq_len, -7);
      std::vector<uint8_t> mask(seq_len, 9);
      int64_t ones = FillRow(docs, row, seq_len, kPad,
                             RowView{tokens.data(), positions.data(), segments.data(),
                                     targets.data(), mask.data()});
      int64_t t = 0, expected_ones = 0;
      for (size_t k = 0; k < row.docs.size(); ++k) {
        const Example& doc = docs[row.docs[k]];
        int64_t len = static_cast<int64_t>(doc.tokens.size());
        for (int64_t i = 0; i < len; ++i, ++t) {
          ASSERT_EQ(tokens[t], doc.tokens[i]);
          ASSERT_EQ(positions[t], i);                       // restart at 0 per document
          ASSERT_EQ(segments[t], static_cast<int32_t>(k));  // 0, 1, 2, ... in the row
          if (i + 1 < len) {
            ASSERT_EQ(targets[t], doc.tokens[i + 1]);  // the next token of the same document
            ASSERT_EQ(mask[t], doc.is_target[i + 1]);
            expected_ones += mask[t];
          } else {
            ASSERT_EQ(targets[t], kPad);  // never the next document's first token
            ASSERT_EQ(mask[t], 0);
          }
        }
      }
      EXPECT_EQ(t, row.used);
      for (; t < seq_len; ++t) {  // padding at the end of the row
        ASSERT_EQ(tokens[t], kPad);
        ASSERT_EQ(positions[t], 0);
        ASSERT_EQ(segments[t], -1);
        ASSERT_EQ(targets[t], kPad);
        ASSERT_EQ(mask[t], 0);
      }
      EXPECT_EQ(ones, expected_ones);
    }
  }
}

TEST(DataPackingTest, RngIsDeterministicAndUnbiasedEnough) {
  Rng a(42), b(42), c(43);
  std::vector<uint64_t> va, vb, vc;
  for (int i = 0; i < 16; ++i) {
    va.push_back(a.Next());
    vb.push_back(b.Next());
    vc.push_back(c.Next());
  }
  EXPECT_EQ(va, vb);
  EXPECT_NE(va, vc);
  // Pinned: splitmix64 from seed 0 (the reference sequence).
  Rng zero(0);
  EXPECT_EQ(zero.Next(), 0xE220A8397B1DCDAFull);
  std::vector<int> counts(7, 0);
  Rng r(1);
  for (int i = 0; i < 70000; ++i) {
    uint64_t x = r.Below(7);
    ASSERT_LT(x, 7u);
    ++counts[x];
  }
  for (int c7 : counts) EXPECT_NEAR(c7, 10000, 500);
  std::vector<int32_t> v = Iota(100);
  Rng s(5);
  s.Shuffle(&v);
  std::vector<int32_t> sorted = v;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, Iota(100));
  EXPECT_NE(v, Iota(100));
  EXPECT_NE(MixSeed(1, 0, 0), MixSeed(1, 1, 0));
  EXPECT_NE(MixSeed(1, 0, 0), MixSeed(1, 0, 1));
  EXPECT_NE(MixSeed(1, 0, 0), MixSeed(2, 0, 0));
  EXPECT_EQ(MixSeed(1, 3, 1), MixSeed(1, 3, 1));
}

}  // namespace
}  // namespace data
}  // namespace lorart
