// The added tokens of tokenizer.json ("added_tokens"): found in the text
// before normalization (normalized: false) or in each normalized piece
// (normalized: true), leftmost-longest, with the lstrip / rstrip /
// single_word rules of `tokenizers`' AddedVocabulary — plus lorart's rule
// that a special token counts only inside the byte ranges a chat template
// wrote.
#ifndef LORART_DATA_HF_ADDED_VOCABULARY_H_
#define LORART_DATA_HF_ADDED_VOCABULARY_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "lorart/base/status.h"
#include "lorart/data/hf/normalized_string.h"

namespace lorart {
namespace data {
namespace hf {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

// Leftmost-longest matching of many strings (aho-corasick's
// MatchKind::LeftmostLongest, non-overlapping find_iter).
class StringMatcher {
 public:
  void Add(std::string_view pattern, int32_t value);
  bool empty() const { return nodes_.size() <= 1; }
  // The leftmost match starting at or after `from`, longest there.
  bool FindNext(std::string_view text, size_t from, size_t* b, size_t* e, int32_t* value) const;

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> children;  // sorted by byte
    int32_t value = -1;
  };
  int32_t Child(int32_t node, unsigned char byte) const;
  std::vector<Node> nodes_{Node()};
  bool first_byte_[256] = {};
};

class AddedVocabulary {
 public:
  // One piece of a split: [b, e) of the string, and the added token there
  // (index into tokens(), or -1).
  struct Piece {
    size_t b, e;
    int32_t token;
  };
  // Whether a special token found at normalized bytes [b, e) of `s` may be
  // used.
  using SpecialAllowed = std::function<bool(const NormalizedString& s, size_t b, size_t e)>;

  // `normalize` turns a token's content into its normalized form (for the
  // normalized: true tokens).
  Status Build(std::vector<AddedToken> tokens,
               const std::function<Status(std::string*)>& normalize);

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  const AddedToken* ById(int32_t id) const {
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : &tokens_[it->second];
  }
  int32_t IdOf(std::string_view content) const {
    auto it = by_content_.find(std::string(content));
    return it == by_content_.end() ? -1 : it->second;
  }
  bool IsSpecialContent(const std::string& content) const {
    return special_contents_.count(content) > 0;
  }
  bool has_raw() const { return !raw_.empty(); }
  bool has_normalized() const { return !normalized_.empty(); }
  // Whether a normalized: true token is special (its original bytes are
  // then needed to apply the special-range rule).
  bool normalized_special() const { return normalized_special_; }

  // HF find_matches over `s` with the raw (before normalization) or the
  // normalized tokens.
  void FindMatches(const NormalizedString& s, bool normalized, const SpecialAllowed& allowed,
                   std::vector<Piece>* out) const;

 private:
  std::vector<AddedToken> tokens_;
  std::unordered_map<int32_t, size_t> by_id_;
  std::unordered_map<std::string, int32_t> by_content_;
  std::unordered_set<std::string> special_contents_;
  StringMatcher raw_, normalized_;
  bool normalized_special_ = false;
};

}  // namespace hf
}  // namespace data
}  // namespace lorart

#endif  // LORART_DATA_HF_ADDED_VOCABULARY_H_
