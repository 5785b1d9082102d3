#include "lorart/data/sentencepiece_model.h"

#include <cstdint>
#include <cstring>
#include <vector>

#include "lorart/base/strings.h"

namespace lorart {
namespace data {
namespace {

// One field of a protobuf message: its number, wire type, and for a
// length-delimited field its bytes.
struct Field {
  uint32_t number = 0;
  uint32_t type = 0;
  std::string_view bytes;
};

bool ReadVarint(std::string_view* in, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64 && !in->empty(); shift += 7) {
    const uint8_t b = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    *v |= static_cast<uint64_t>(b & 0x7F) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

// The fields of a message in order; false where the wire format breaks
// (the library's parser then reports the model).
bool ReadFields(std::string_view in, std::vector<Field>* out) {
  while (!in.empty()) {
    uint64_t key, v;
    if (!ReadVarint(&in, &key)) return false;
    Field f;
    f.number = static_cast<uint32_t>(key >> 3);
    f.type = static_cast<uint32_t>(key & 7);
    switch (f.type) {
      case 0:
        if (!ReadVarint(&in, &v)) return false;
        break;
      case 1:
        if (in.size() < 8) return false;
        in.remove_prefix(8);
        break;
      case 2:
        if (!ReadVarint(&in, &v) || v > in.size()) return false;
        f.bytes = in.substr(0, v);
        in.remove_prefix(v);
        break;
      case 5:
        if (in.size() < 4) return false;
        in.remove_prefix(4);
        break;
      default:  // groups: not in sentencepiece's schema
        return false;
    }
    out->push_back(f);
  }
  return true;
}

// A Darts-clone double-array unit, as the library decodes it.
uint32_t Offset(uint32_t unit) { return (unit >> 10) << ((unit & (1U << 9)) >> 6); }
uint32_t Label(uint32_t unit) { return unit & ((1U << 31) | 0xFF); }
bool HasLeaf(uint32_t unit) { return ((unit >> 8) & 1) == 1; }
uint32_t Value(uint32_t unit) { return unit & ((1U << 31) - 1); }

}  // namespace

Status CheckCharsMap(std::string_view map) {
  // Layout (sentencepiece normalizer.cc): uint32 trie size in bytes, the
  // trie's units, then the replacement strings.
  uint32_t trie_bytes = 0;
  if (map.size() <= sizeof trie_bytes) {
    return InvalidArgumentError("the precompiled character map is too short");
  }
  std::memcpy(&trie_bytes, map.data(), sizeof trie_bytes);
  if (trie_bytes >= map.size() - sizeof trie_bytes || trie_bytes < 4 || trie_bytes % 4 != 0) {
    return InvalidArgumentError(
        StrFormat("the precompiled character map's trie size %u does not fit its %zu bytes",
                  trie_bytes, map.size()));
  }
  std::vector<uint32_t> units(trie_bytes / 4);
  std::memcpy(units.data(), map.data() + sizeof trie_bytes, trie_bytes);
  const std::string_view strings = map.substr(sizeof trie_bytes + trie_bytes);
  if (strings.back() != '\0') {
    return InvalidArgumentError("the precompiled character map's strings do not end with NUL");
  }
  // Every base the lookup can reach (node position after its offset), from
  // the root: for each input byte c the lookup reads units[base ^ c], and on
  // a match with a leaf, units[next base] as the value.
  const size_t n = units.size();
  std::vector<uint8_t> seen(n, 0);
  std::vector<uint32_t> todo = {Offset(units[0])};
  while (!todo.empty()) {
    const uint32_t base = todo.back();
    todo.pop_back();
    if (base >= n) {
      return InvalidArgumentError("the precompiled character map's trie points outside itself");
    }
    if (seen[base]) continue;
    seen[base] = 1;
    for (uint32_t c = 0; c < 256; ++c) {
      const uint32_t pos = base ^ c;
      if (pos >= n) {
        return InvalidArgumentError("the precompiled character map's trie points outside itself");
      }
      const uint32_t unit = units[pos];
      if (Label(unit) != c) continue;
      const uint32_t next = pos ^ Offset(unit);
      if (next >= n) {
        return InvalidArgumentError("the precompiled character map's trie points outside itself");
      }
      if (HasLeaf(unit) && Value(units[next]) >= strings.size()) {
        return InvalidArgumentError(StrFormat(
            "the precompiled character map's trie holds a replacement at %u, past its %zu bytes "
            "of strings",
            Value(units[next]), strings.size()));
      }
      todo.push_back(next);
    }
  }
  return OkStatus();
}

Status CheckNormalizerMaps(std::string_view model, const std::string& name) {
  std::vector<Field> fields;
  if (!ReadFields(model, &fields)) return OkStatus();
  for (const Field& f : fields) {
    // ModelProto.normalizer_spec = 3, denormalizer_spec = 5.
    if ((f.number != 3 && f.number != 5) || f.type != 2) continue;
    std::vector<Field> spec;
    if (!ReadFields(f.bytes, &spec)) continue;
    for (const Field& g : spec) {
      // NormalizerSpec.precompiled_charsmap = 2 (bytes; empty = none).
      if (g.number != 2 || g.type != 2 || g.bytes.empty()) continue;
      Status s = CheckCharsMap(g.bytes);
      if (!s.ok()) {
        return InvalidArgumentError(StrFormat("%s: not a SentencePiece model: %s: %s", name.c_str(),
                                              f.number == 3 ? "normalizer" : "denormalizer",
                                              std::string(s.message()).c_str()));
      }
    }
  }
  return OkStatus();
}

}  // namespace data
}  // namespace lorart
