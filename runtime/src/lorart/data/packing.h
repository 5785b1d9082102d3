// Examples and sequence packing: how tokenized documents fill the compiled
// step's static [micro_batch, seq_len] grid.
#ifndef LORART_DATA_PACKING_H_
#define LORART_DATA_PACKING_H_

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace lorart {
namespace data {

// One tokenized document. is_target[i] == 1 when token i is to be predicted
// (a loss term is taken where the model, at position i - 1, predicts it);
// is_target[0] is always 0.
struct Example {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> is_target;
  int64_t line = 0;  // the record's line in its JSONL file (0 if none)
};

// Documents of one row of the grid, in the order they are laid out.
struct PackedRow {
  std::vector<int32_t> docs;  // indices into the document list
  int64_t used = 0;           // tokens taken, <= seq_len
};

// Best-fit-decreasing bin packing. `order` lists document indices, `lengths`
// holds each document's length (every length in [1, seq_len]). Documents are
// taken longest first (a stable sort of `order`, so equal lengths keep their
// order in `order`); each goes into the open row with the least free space
// that still fits it (the earliest such row on ties), else into a new row.
// Within a row, documents are laid out in the order they were placed.
// Rows come back in the order they were opened. O(n log n).
std::vector<PackedRow> PackBestFitDecreasing(const std::vector<int32_t>& order,
                                             const std::vector<int64_t>& lengths,
                                             int64_t seq_len);

// One document per row, in `order`.
std::vector<PackedRow> PackOnePerRow(const std::vector<int32_t>& order,
                                     const std::vector<int64_t>& lengths);

// Views of one row of the step's inputs; each points at seq_len elements.
struct RowView {
  int32_t* tokens;
  int32_t* positions;
  int32_t* segment_ids;
  int32_t* targets;
  uint8_t* loss_mask;
};

// Writes one row. Document k of the row (segment id k, counted from 0) gets
// its tokens, positions 0, 1, ...; targets[t] = tokens[t + 1] and
// loss_mask[t] = is_target[t + 1] while t + 1 is in the same document; at a
// document's last token the target is `pad_id` with mask 0. After the last
// document: token `pad_id`, position 0, segment -1, target `pad_id`, mask 0.
// A row with no documents is all padding. Returns the number of mask ones.
int64_t FillRow(const std::vector<Example>& docs, const PackedRow& row, int64_t seq_len,
                int32_t pad_id, const RowView& out);

// Deterministic pseudo-random numbers that do not depend on the standard
// library (std::shuffle and the std distributions differ between
// implementations; a resumed run on another machine must see the same order).
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t Next();  // splitmix64
  // Uniform in [0, n), n > 0, without modulo bias.
  uint64_t Below(uint64_t n);
  // Fisher-Yates shuffle.
  template <typename T>
  void Shuffle(std::vector<T>* v) {
    for (size_t i = v->size(); i > 1; --i) {
      size_t j = static_cast<size_t>(Below(i));
      std::swap((*v)[i - 1], (*v)[j]);
    }
  }

 private:
  uint64_t state_;
};

// A seed for stream `stream` of epoch `epoch` from the user's seed.
uint64_t MixSeed(uint64_t seed, uint64_t epoch, uint64_t stream);

}  // namespace data
}  // namespace lorart

#endif  // LORART_DATA_PACKING_H_
