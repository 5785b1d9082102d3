// The BPE model of tokenizer.json ("model": {"type": "BPE", ...}): vocab,
// merges (as "a b" strings or ["a", "b"] pairs), byte_fallback,
// ignore_merges, fuse_unk, unk_token, continuing_subword_prefix,
// end_of_word_suffix. Merging is `tokenizers`' Word::merge_all: a heap of
// adjacent pairs by rank over a linked list of symbols; results are cached
// per pre-token.
#ifndef LORART_DATA_HF_BPE_MODEL_H_
#define LORART_DATA_HF_BPE_MODEL_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lorart/base/status.h"
#include "lorart/data/hf/json_fields.h"
#include "lorart/io/json.h"

namespace lorart {
namespace data {
namespace hf {

// A token of one pre-token: its id and its bytes [b, e) in the pre-token.
struct ModelToken {
  int32_t id;
  uint32_t b, e;
};

class BpeModel {
 public:
  // From the "model" object at `path`. Model types other than BPE are
  // INVALID_ARGUMENT "...: model type X is not supported (lorart reads BPE
  // tokenizers)".
  static StatusOr<std::unique_ptr<BpeModel>> FromJson(const JsonFields& f, const Json& json,
                                                      const std::string& path);

  // Tokens of one pre-token, appended to `out` (offsets relative to `word`).
  Status Tokenize(std::string_view word, std::vector<ModelToken>* out) const;

  // The vocabulary piece of `id`, null if none.
  const std::string* IdToPiece(int32_t id) const {
    return id >= 0 && static_cast<size_t>(id) < pieces_.size() && has_piece_[id] ? &pieces_[id]
                                                                                  : nullptr;
  }
  int32_t PieceToId(std::string_view piece) const {
    auto it = vocab_.find(piece);
    return it == vocab_.end() ? -1 : it->second;
  }
  int32_t max_id() const { return static_cast<int32_t>(pieces_.size()) - 1; }
  // The id of unk_token, -1 without one (or when it is not in the vocabulary).
  int32_t unk_id() const { return unk_id_; }
  const std::string& unk_token() const { return unk_token_; }

 private:
  BpeModel() = default;
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    uint32_t len;
  };
  Status MergeWord(std::string_view word, std::vector<Symbol>* symbols) const;
  void MergeAll(std::vector<Symbol>* symbols) const;
  static uint64_t PairKey(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  std::vector<std::string> pieces_;  // by id
  std::vector<bool> has_piece_;
  std::unordered_map<std::string_view, int32_t> vocab_;  // views into pieces_ / extra_pieces_
  std::vector<std::unique_ptr<std::string>> extra_pieces_;  // pieces sharing an id with another
  struct MergeValue {
    uint32_t rank;
    int32_t new_id;
  };
  std::unordered_map<uint64_t, MergeValue> merges_;
  std::string unk_token_;
  int32_t unk_id_ = -1;
  bool has_unk_ = false;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::string prefix_;  // continuing_subword_prefix
  std::string suffix_;  // end_of_word_suffix
  bool has_prefix_ = false, has_suffix_ = false;
  int32_t byte_ids_[256];  // <0xXX> ids, -1 if absent

  // Pre-token -> (id, len) pairs; bounded, shared by threads.
  static constexpr size_t kCacheCapacity = 1 << 16;
  static constexpr size_t kCacheMaxWord = 256;
  mutable std::shared_mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<uint32_t>> cache_;
};

}  // namespace hf
}  // namespace data
}  // namespace lorart

#endif  // LORART_DATA_HF_BPE_MODEL_H_
