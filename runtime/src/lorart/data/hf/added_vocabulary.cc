#include "lorart/data/hf/added_vocabulary.h"

#include <algorithm>

#include "lorart/data/hf/unicode.h"

namespace lorart {
namespace data {
namespace hf {

void StringMatcher::Add(std::string_view pattern, int32_t value) {
  if (pattern.empty()) return;
  first_byte_[static_cast<unsigned char>(pattern[0])] = true;
  int32_t node = 0;
  for (unsigned char c : pattern) {
    int32_t next = Child(node, c);
    if (next < 0) {
      next = static_cast<int32_t>(nodes_.size());
      nodes_.emplace_back();
      auto& ch = nodes_[node].children;
      ch.insert(std::lower_bound(ch.begin(), ch.end(), std::make_pair(c, int32_t{-1})),
                std::make_pair(c, next));
    }
    node = next;
  }
  if (nodes_[node].value < 0) nodes_[node].value = value;  // the first of equal patterns wins
}

int32_t StringMatcher::Child(int32_t node, unsigned char byte) const {
  const auto& ch = nodes_[node].children;
  auto it = std::lower_bound(ch.begin(), ch.end(), std::make_pair(byte, int32_t{-1}));
  return it != ch.end() && it->first == byte ? it->second : -1;
}

bool StringMatcher::FindNext(std::string_view text, size_t from, size_t* b, size_t* e,
                             int32_t* value) const {
  if (empty()) return false;
  for (size_t i = from; i < text.size(); ++i) {
    if (!first_byte_[static_cast<unsigned char>(text[i])]) continue;
    int32_t node = 0;
    int32_t best = -1;
    size_t best_end = 0;
    for (size_t k = i; k < text.size(); ++k) {
      node = Child(node, static_cast<unsigned char>(text[k]));
      if (node < 0) break;
      if (nodes_[node].value >= 0) {
        best = nodes_[node].value;
        best_end = k + 1;
      }
    }
    if (best >= 0) {
      *b = i;
      *e = best_end;
      *value = best;
      return true;
    }
  }
  return false;
}

Status AddedVocabulary::Build(std::vector<AddedToken> tokens,
                              const std::function<Status(std::string*)>& normalize) {
  tokens_ = std::move(tokens);
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const AddedToken& t = tokens_[i];
    by_id_[t.id] = i;
    by_content_[t.content] = t.id;  // a repeated content takes the last id, as in HF
    if (t.special) special_contents_.insert(t.content);
  }
  // HF builds its tries from special tokens first, then the others.
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i = 0; i < tokens_.size(); ++i) {
      const AddedToken& t = tokens_[i];
      if (t.special != (pass == 0) || t.content.empty()) continue;
      if (!t.normalized) {
        raw_.Add(t.content, static_cast<int32_t>(i));
      } else {
        std::string content = t.content;
        LORA_RETURN_IF_ERROR(normalize(&content));
        normalized_.Add(content, static_cast<int32_t>(i));
        if (t.special) normalized_special_ = true;
      }
    }
  }
  return OkStatus();
}

void AddedVocabulary::FindMatches(const NormalizedString& s, bool normalized,
                                  const SpecialAllowed& allowed, std::vector<Piece>* out) const {
  out->clear();
  const std::string& text = s.get();
  const StringMatcher& m = normalized ? normalized_ : raw_;
  if (text.empty()) {
    out->push_back({0, 0, -1});
    return;
  }
  size_t start_offset = 0;
  size_t from = 0, mb = 0, me = 0;
  int32_t index = -1;
  while (m.FindNext(text, from, &mb, &me, &index)) {
    from = me;
    const AddedToken& t = tokens_[index];
    // The id HF uses is the one its content maps to.
    int32_t token = static_cast<int32_t>(by_id_.at(by_content_.at(t.content)));
    if (t.special && !allowed(s, mb, me)) continue;
    size_t start = mb, stop = me;
    if (t.single_word) {
      bool start_space = true, stop_space = true;
      if (start > 0) {
        size_t p = start;
        do {
          --p;
        } while (p > 0 && (static_cast<unsigned char>(text[p]) & 0xC0) == 0x80);
        size_t len;
        start_space = !IsWordChar(DecodeUtf8(text, p, &len));
      }
      if (stop < text.size()) {
        size_t len;
        stop_space = !IsWordChar(DecodeUtf8(text, stop, &len));
      }
      if (!start_space || !stop_space) continue;
    }
    if (t.lstrip) {
      size_t p = start;
      while (p > 0) {
        size_t q = p;
        do {
          --q;
        } while (q > 0 && (static_cast<unsigned char>(text[q]) & 0xC0) == 0x80);
        size_t len;
        if (!IsWhitespace(DecodeUtf8(text, q, &len))) break;
        p = q;
      }
      start = std::max(p, start_offset);
    }
    if (t.rstrip) {
      size_t len;
      while (stop < text.size() && IsWhitespace(DecodeUtf8(text, stop, &len))) stop += len;
    }
    if (start_offset < start) out->push_back({start_offset, start, -1});
    out->push_back({start, stop, token});
    start_offset = stop;
  }
  if (start_offset != text.size()) out->push_back({start_offset, text.size(), -1});
}

}  // namespace hf
}  // namespace data
}  // namespace lorart
