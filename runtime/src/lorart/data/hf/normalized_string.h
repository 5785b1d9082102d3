// NormalizedString: a piece of the input as the tokenizer.json pipeline
// rewrites it, with (optionally) the alignment of every byte back to the
// original text — Hugging Face `tokenizers`' NormalizedString, whose
// alignment rules it reproduces so that token spans equal HF offsets.
#ifndef LORART_DATA_HF_NORMALIZED_STRING_H_
#define LORART_DATA_HF_NORMALIZED_STRING_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lorart/base/status.h"
#include "lorart/data/hf/unicode.h"

namespace lorart {
namespace data {
namespace hf {

// A byte range [b, e).
struct Offsets {
  uint32_t b = 0;
  uint32_t e = 0;
};

// A piece of a string a pattern found: matched or in between.
struct Match {
  size_t b;
  size_t e;
  bool is_match;
};

// The split behaviours of `tokenizers` (SplitDelimiterBehavior).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// One transformation step: the new character and its change code (0
// replaces the next old character, 1 inserts, -n replaces one and removes
// the n after it).
using CharChange = std::pair<char32_t, int>;

class NormalizedString {
 public:
  NormalizedString() = default;
  // `text`, which is bytes [base, base + size) of the input. Without
  // `track`, no alignment is kept (ids only: faster).
  NormalizedString(std::string_view text, uint32_t base, bool track);

  const std::string& get() const { return normalized_; }
  bool empty() const { return normalized_.empty(); }
  size_t size() const { return normalized_.size(); }
  bool tracking() const { return track_; }
  // Where the original of this piece starts in the input (HF
  // offsets_original().0). Meaningful only when tracking.
  uint32_t orig_begin() const { return orig_.b; }
  // Input bytes of normalized bytes [b, e) (HF convert_offsets). Tracking only.
  Offsets OriginalRange(size_t b, size_t e) const;

  // HF transform_range over normalized bytes [nb, ne).
  void TransformRange(size_t nb, size_t ne, const std::vector<CharChange>& dest,
                      size_t initial_offset);
  void Transform(const std::vector<CharChange>& dest, size_t initial_offset) {
    TransformRange(0, normalized_.size(), dest, initial_offset);
  }
  // Normalized bytes [nb, ne) as a piece of its own.
  NormalizedString Slice(size_t nb, size_t ne) const;

  void Prepend(std::string_view s);
  // Replaces every matched piece of `matches` with `content`.
  void ReplaceMatches(const std::vector<Match>& matches, std::string_view content);
  void Lowercase();
  void Strip(bool left, bool right);
  // Returns false if utf8proc fails.
  bool ApplyNormalForm(NormalForm form);
  // The ByteLevel pre-tokenizer's byte -> character mapping.
  void ByteLevelMap();

  // Splits along `matches` (which cover the string) with `behavior`; empty
  // pieces are dropped.
  void Split(const std::vector<Match>& matches, SplitBehavior behavior,
             std::vector<NormalizedString>* out) const;

 private:
  std::string normalized_;
  std::vector<Offsets> align_;  // per normalized byte, input offsets; empty without track_
  Offsets orig_;                // input bytes this piece covers (tracking only)
  bool track_ = false;
};

// The GPT-2 byte -> character map of the ByteLevel components, as UTF-8.
const std::string& ByteLevelChar(unsigned char byte);
// The inverse: the byte of a character, or -1.
int ByteLevelByte(char32_t c);

}  // namespace hf
}  // namespace data
}  // namespace lorart

#endif  // LORART_DATA_HF_NORMALIZED_STRING_H_
