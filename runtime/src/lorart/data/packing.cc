#include "lorart/data/packing.h"

#include <algorithm>
#include <set>

namespace lorart {
namespace data {

std::vector<PackedRow> PackBestFitDecreasing(const std::vector<int32_t>& order,
                                             const std::vector<int64_t>& lengths,
                                             int64_t seq_len) {
  std::vector<int32_t> sorted = order;
  std::stable_sort(sorted.begin(), sorted.end(),
                   [&](int32_t a, int32_t b) { return lengths[a] > lengths[b]; });
  std::vector<PackedRow> rows;
  // Open rows by (free space, row index): lower_bound finds the tightest fit,
  // the earliest row among equally tight ones. Full rows leave the set.
  std::set<std::pair<int64_t, size_t>> open;
  for (int32_t doc : sorted) {
    int64_t length = lengths[doc];
    auto it = open.lower_bound({length, 0});
    size_t row;
    if (it == open.end()) {
      row = rows.size();
      rows.emplace_back();
    } else {
      row = it->second;
      open.erase(it);
    }
    rows[row].docs.push_back(doc);
    rows[row].used += length;
    int64_t free = seq_len - rows[row].used;
    if (free > 0) open.insert({free, row});
  }
  return rows;
}

std::vector<PackedRow> PackOnePerRow(const std::vector<int32_t>& order,
                                     const std::vector<int64_t>& lengths) {
  std::vector<PackedRow> rows(order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    rows[i].docs.push_back(order[i]);
    rows[i].used = lengths[order[i]];
  }
  return rows;
}

int64_t FillRow(const std::vector<Example>& docs, const PackedRow& row, int64_t seq_len,
                int32_t pad_id, const RowView& out) {
  int64_t t = 0;
  int64_t targets = 0;
  int32_t segment = 0;
  for (int32_t d : row.docs) {
    const Example& doc = docs[d];
    int64_t n = static_cast<int64_t>(doc.tokens.size());
    if (n > seq_len - t) n = seq_len - t;  // callers truncate; never overflow the row
    for (int64_t i = 0; i < n; ++i, ++t) {
      out.tokens[t] = doc.tokens[i];
      out.positions[t] = static_cast<int32_t>(i);
      out.segment_ids[t] = segment;
      if (i + 1 < n) {
        out.targets[t] = doc.tokens[i + 1];
        out.loss_mask[t] = doc.is_target[i + 1] ? 1 : 0;
        targets += out.loss_mask[t];
      } else {
        out.targets[t] = pad_id;
        out.loss_mask[t] = 0;
      }
    }
    ++segment;
  }
  for (; t < seq_len; ++t) {
    out.tokens[t] = pad_id;
    out.positions[t] = 0;
    out.segment_ids[t] = -1;
    out.targets[t] = pad_id;
    out.loss_mask[t] = 0;
  }
  return targets;
}

Rng::Rng(uint64_t seed) : state_(seed) {}

uint64_t Rng::Next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t Rng::Below(uint64_t n) {
  // Rejection of the top partial range keeps every value equally likely.
  uint64_t limit = ~uint64_t{0} - (~uint64_t{0} % n);
  uint64_t x;
  do {
    x = Next();
  } while (x >= limit);
  return x % n;
}

uint64_t MixSeed(uint64_t seed, uint64_t epoch, uint64_t stream) {
  Rng a(seed);
  uint64_t x = a.Next();
  Rng b(x ^ (epoch * 0xD1B54A32D192ED03ull));
  x = b.Next();
  Rng c(x ^ (stream * 0x8CB92BA72F3D8DD7ull + 1));
  return c.Next();
}

}  // namespace data
}  // namespace lorart
