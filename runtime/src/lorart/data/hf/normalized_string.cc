#include "lorart/data/hf/normalized_string.h"

#include <algorithm>
#include <array>

namespace lorart {
namespace data {
namespace hf {
namespace {

struct ByteLevelTables {
  std::array<std::string, 256> chars;
  std::array<char32_t, 256> codes;
  ByteLevelTables() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool self = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      codes[b] = self ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
      AppendUtf8(codes[b], &chars[b]);
    }
  }
};

const ByteLevelTables& Tables() {
  static const ByteLevelTables* tables = new ByteLevelTables();
  return *tables;
}

}  // namespace

const std::string& ByteLevelChar(unsigned char byte) { return Tables().chars[byte]; }

int ByteLevelByte(char32_t c) {
  if ((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF)) {
    return static_cast<int>(c);
  }
  if (c < 256 || c > 256 + 68) return -1;
  // The 68 remapped bytes, in increasing order, are 256 + n.
  const auto& codes = Tables().codes;
  for (int b = 0; b < 256; ++b) {
    if (codes[b] == c) return b;
  }
  return -1;
}

NormalizedString::NormalizedString(std::string_view text, uint32_t base, bool track)
    : normalized_(text), track_(track) {
  orig_ = {base, base + static_cast<uint32_t>(text.size())};
  if (track_) {
    align_.resize(text.size());
    for (size_t i = 0, len = 0; i < text.size(); i += len) {
      len = Utf8Len(static_cast<unsigned char>(text[i]));
      Offsets a{base + static_cast<uint32_t>(i), base + static_cast<uint32_t>(i + len)};
      for (size_t k = 0; k < len && i + k < text.size(); ++k) align_[i + k] = a;
    }
  }
}

Offsets NormalizedString::OriginalRange(size_t b, size_t e) const {
  if (!track_ || b >= e || e > align_.size()) return orig_;
  return {align_[b].b, align_[e - 1].e};
}

void NormalizedString::TransformRange(size_t nb, size_t ne, const std::vector<CharChange>& dest,
                                      size_t initial_offset) {
  std::string repl;
  repl.reserve(dest.size() + 4);
  if (!track_) {
    for (const auto& d : dest) AppendUtf8(d.first, &repl);
    normalized_.replace(nb, ne - nb, repl);
    return;
  }
  std::vector<Offsets> new_align;
  new_align.reserve(dest.size() + 4);
  size_t p = nb;
  for (size_t k = 0; k < initial_offset && p < ne; ++k) {
    p += Utf8Len(static_cast<unsigned char>(normalized_[p]));
  }
  const Offsets none{orig_.b, orig_.b};
  for (const auto& d : dest) {
    size_t idx = p;
    Offsets a;
    if (d.second > 0) {
      a = idx < 1 ? none : align_[idx - 1];
    } else if (idx < align_.size()) {
      a = align_[idx];
    } else {
      a = align_.empty() ? none : align_.back();
    }
    if (d.second <= 0 && p < ne) p += Utf8Len(static_cast<unsigned char>(normalized_[p]));
    for (int k = 0; d.second < 0 && k < -d.second && p < ne; ++k) {
      p += Utf8Len(static_cast<unsigned char>(normalized_[p]));
    }
    AppendUtf8(d.first, &repl);
    new_align.insert(new_align.end(), Utf8Size(d.first), a);
  }
  normalized_.replace(nb, ne - nb, repl);
  align_.erase(align_.begin() + static_cast<std::ptrdiff_t>(nb),
               align_.begin() + static_cast<std::ptrdiff_t>(ne));
  align_.insert(align_.begin() + static_cast<std::ptrdiff_t>(nb), new_align.begin(),
                new_align.end());
}

NormalizedString NormalizedString::Slice(size_t nb, size_t ne) const {
  NormalizedString s;
  s.normalized_.assign(normalized_, nb, ne - nb);
  s.track_ = track_;
  if (track_) {
    s.align_.assign(align_.begin() + static_cast<std::ptrdiff_t>(nb),
                    align_.begin() + static_cast<std::ptrdiff_t>(ne));
    s.orig_ = OriginalRange(nb, ne);
  }
  return s;
}

void NormalizedString::Prepend(std::string_view s) {
  if (normalized_.empty() || s.empty()) return;
  size_t len = 0;
  char32_t next = DecodeUtf8(normalized_, 0, &len);
  if (!track_) {
    normalized_.insert(0, s);
    return;
  }
  std::vector<CharChange> dest;
  bool first = true;
  for (char32_t c : DecodeAll(s)) {
    dest.emplace_back(c, first ? 0 : 1);
    first = false;
  }
  dest.emplace_back(next, 1);
  TransformRange(0, len, dest, 0);
}

void NormalizedString::ReplaceMatches(const std::vector<Match>& matches, std::string_view content) {
  bool any = false;
  for (const auto& m : matches) any |= m.is_match;
  if (!any) return;
  if (!track_) {
    std::string out;
    out.reserve(normalized_.size() + content.size());
    for (const auto& m : matches) {
      if (m.is_match) {
        out.append(content);
      } else {
        out.append(normalized_, m.b, m.e - m.b);
      }
    }
    normalized_ = std::move(out);
    return;
  }
  // One pass (a TransformRange per match would move the tail of the string
  // for every match: quadratic in the text). Each match is HF's
  // transform_range(match, content's characters all inserted, removed =
  // the match's characters): the new bytes align with the match's last
  // byte, or for an empty match with the byte before it (none at the start).
  std::string repl;
  for (char32_t c : DecodeAll(content)) AppendUtf8(c, &repl);
  std::string out;
  std::vector<Offsets> out_align;
  out.reserve(normalized_.size() + repl.size());
  out_align.reserve(normalized_.size() + repl.size());
  const Offsets none{orig_.b, orig_.b};
  for (const auto& m : matches) {
    if (!m.is_match) {
      out.append(normalized_, m.b, m.e - m.b);
      out_align.insert(out_align.end(), align_.begin() + static_cast<std::ptrdiff_t>(m.b),
                       align_.begin() + static_cast<std::ptrdiff_t>(m.e));
      continue;
    }
    Offsets a = m.e > m.b ? align_[m.e - 1] : out_align.empty() ? none : out_align.back();
    out += repl;
    out_align.insert(out_align.end(), repl.size(), a);
  }
  normalized_ = std::move(out);
  align_ = std::move(out_align);
}

void NormalizedString::Lowercase() {
  bool ascii_lower = true;
  for (unsigned char b : normalized_) {
    if (b >= 0x80 || (b >= 'A' && b <= 'Z')) {
      ascii_lower = false;
      break;
    }
  }
  if (ascii_lower) return;
  std::vector<CharChange> dest;
  dest.reserve(normalized_.size());
  std::vector<char32_t> lower;
  for (size_t i = 0, len = 0; i < normalized_.size(); i += len) {
    char32_t c = DecodeUtf8(normalized_, i, &len);
    lower.clear();
    ToLowerFull(c, &lower);
    for (size_t k = 0; k < lower.size(); ++k) dest.emplace_back(lower[k], k > 0 ? 1 : 0);
  }
  Transform(dest, 0);
}

void NormalizedString::Strip(bool left, bool right) {
  std::vector<char32_t> chars = DecodeAll(normalized_);
  size_t n = chars.size();
  size_t leading = 0, trailing = 0;
  if (left) {
    while (leading < n && IsWhitespace(chars[leading])) ++leading;
  }
  if (right) {
    while (trailing < n - leading && IsWhitespace(chars[n - 1 - trailing])) ++trailing;
  }
  if (leading == 0 && trailing == 0) return;
  std::vector<CharChange> dest;
  for (size_t i = leading; i + trailing < n; ++i) {
    dest.emplace_back(chars[i], i + trailing + 1 == n ? -static_cast<int>(trailing) : 0);
  }
  Transform(dest, leading);
}

bool NormalizedString::ApplyNormalForm(NormalForm form) {
  std::string out;
  if (!track_) {
    if (!Normalize(normalized_, form, &out, nullptr)) return false;
    normalized_ = std::move(out);
    return true;
  }
  std::vector<CharChange> changes;
  if (!Normalize(normalized_, form, &out, &changes)) return false;
  Transform(changes, 0);
  return true;
}

void NormalizedString::ByteLevelMap() {
  const auto& t = Tables();
  if (!track_) {
    std::string out;
    out.reserve(normalized_.size() * 2);
    for (unsigned char b : normalized_) out += t.chars[b];
    normalized_ = std::move(out);
    return;
  }
  std::vector<CharChange> dest;
  dest.reserve(normalized_.size());
  for (size_t i = 0, len = 0; i < normalized_.size(); i += len) {
    len = Utf8Len(static_cast<unsigned char>(normalized_[i]));
    for (size_t k = 0; k < len; ++k) {
      dest.emplace_back(t.codes[static_cast<unsigned char>(normalized_[i + k])], k > 0 ? 1 : 0);
    }
  }
  Transform(dest, 0);
}

void NormalizedString::Split(const std::vector<Match>& matches, SplitBehavior behavior,
                             std::vector<NormalizedString>* out) const {
  struct Piece {
    size_t b, e;
    bool remove;
  };
  std::vector<Piece> pieces;
  pieces.reserve(matches.size());
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const auto& m : matches) pieces.push_back({m.b, m.e, false});
      break;
    case SplitBehavior::kRemoved:
      for (const auto& m : matches) pieces.push_back({m.b, m.e, m.is_match});
      break;
    case SplitBehavior::kContiguous: {
      bool prev = false;
      for (const auto& m : matches) {
        if (m.is_match == prev && !pieces.empty()) {
          pieces.back().e = m.e;
        } else {
          pieces.push_back({m.b, m.e, false});
        }
        prev = m.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      bool prev = false;
      for (const auto& m : matches) {
        if (m.is_match && !prev && !pieces.empty()) {
          pieces.back().e = m.e;
        } else {
          pieces.push_back({m.b, m.e, false});
        }
        prev = m.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool prev = false;
      for (size_t k = matches.size(); k-- > 0;) {
        const auto& m = matches[k];
        if (m.is_match && !prev && !pieces.empty()) {
          pieces.back().b = m.b;
        } else {
          pieces.push_back({m.b, m.e, false});
        }
        prev = m.is_match;
      }
      std::reverse(pieces.begin(), pieces.end());
      break;
    }
  }
  for (const auto& p : pieces) {
    if (p.remove || p.b >= p.e) continue;
    out->push_back(Slice(p.b, p.e));
  }
}

}  // namespace hf
}  // namespace data
}  // namespace lorart
