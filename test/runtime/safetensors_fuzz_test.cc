// Mutation fuzzing of the safetensors header parser with a fixed seed: every
// mutated input must either parse into a layout that is inside the data
// section, contiguous and non-overlapping, or be rejected with a status. A
// crash, a sanitizer report or a thrown exception fails the test.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lorart/io/json.h"
#include "lorart/io/safetensors.h"
#include "test_util.h"

namespace lorart {
namespace {

using testing::BuildSafetensors;
using testing::MakeSafetensorsWithLength;

struct Sample {
  std::string header;
  std::string data;
};

Sample Split(const std::string& file) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(file[i]);
  return {file.substr(8, n), file.substr(8 + n)};
}

std::vector<Sample> Seeds() {
  std::vector<Sample> seeds;
  seeds.push_back(Split(BuildSafetensors({{"w", "F32", {2, 2}, 4}})));
  seeds.push_back(Split(BuildSafetensors(
      {{"model.embed_tokens.weight", "BF16", {8, 4}, 2},
       {"model.layers.0.self_attn.q_proj.weight", "BF16", {4, 4}, 2},
       {"model.layers.0.mlp.gate_proj.weight", "F16", {6, 4}, 2},
       {"model.norm.weight", "F32", {4}, 4},
       {"lm_head.weight", "BF16", {8, 4}, 2}},
      {{"format", "pt"}, {"note", "a \"quoted\" value"}})));
  seeds.push_back(Split(BuildSafetensors(
      {{"scalar", "I64", {}, 8}, {"empty", "U8", {0, 3}, 1}, {"mask", "BOOL", {5}, 1},
       {"fp8", "F8_E4M3", {3, 1, 2}, 1}, {"u16", "U16", {2}, 2}})));
  seeds.push_back(Split(BuildSafetensors({{"a", "F64", {1}, 8}, {"b", "I8", {7}, 1},
                                          {"c", "I16", {3}, 2}, {"d", "I32", {1, 1, 1, 1}, 4}})));
  seeds.push_back({R"({"__metadata__":{},"x":{"dtype":"U32","shape":[1],"data_offsets":[0,4]}})",
                   std::string(4, '\x7f')});
  return seeds;
}

const char* const kTokens[] = {
    "[", "]", "{", "}", "\"", ",", ":", "0", "1", "-1", "-0", "1e400", "-1e400", "2.5", "1e3",
    "18446744073709551615", "18446744073709551616", "9223372036854775807",
    "9223372036854775808", "4294967296", "99999999999999999999999999", "null", "true",
    "\"F32\"", "\"Q4\"", "\"F4\"", "\"__metadata__\"", "\"dtype\"", "\"shape\"",
    "\"data_offsets\"", "\\", "\\u0000", "\\ud800", "\xff", "\xc3", " ", "\n", "[0,0]",
    "[0,18446744073709551615]", "{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,1]}",
};

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}

  size_t Below(size_t n) { return n == 0 ? 0 : std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  bool Chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

  void MutateText(std::string* s) {
    switch (Below(9)) {
      case 0:  // flip a bit
        if (!s->empty()) (*s)[Below(s->size())] ^= static_cast<char>(1u << Below(8));
        break;
      case 1:  // set a byte
        if (!s->empty()) (*s)[Below(s->size())] = static_cast<char>(Below(256));
        break;
      case 2:  // insert a token
      case 3: {
        const char* token = kTokens[Below(sizeof(kTokens) / sizeof(kTokens[0]))];
        s->insert(Below(s->size() + 1), token);
        break;
      }
      case 4: {  // insert deep nesting around the depth limit, or far beyond it
        size_t depth = Chance(0.5) ? 60 + Below(10) : 100 + Below(2000);
        std::string deep = std::string(depth, Chance(0.5) ? '[' : '{');
        if (Chance(0.7)) deep += std::string(depth, ']');
        s->insert(Below(s->size() + 1), deep);
        break;
      }
      case 5: {  // delete a range
        if (s->empty()) break;
        size_t at = Below(s->size());
        s->erase(at, 1 + Below(16));
        break;
      }
      case 6: {  // duplicate a range
        if (s->empty()) break;
        size_t at = Below(s->size());
        std::string piece = s->substr(at, 1 + Below(40));
        s->insert(Below(s->size() + 1), piece);
        break;
      }
      case 7: {  // replace a run of digits by another number
        std::vector<size_t> starts;
        for (size_t i = 0; i < s->size(); ++i) {
          bool digit = (*s)[i] >= '0' && (*s)[i] <= '9';
          bool prev = i > 0 && (*s)[i - 1] >= '0' && (*s)[i - 1] <= '9';
          if (digit && !prev) starts.push_back(i);
        }
        if (starts.empty()) break;
        size_t at = starts[Below(starts.size())];
        size_t end = at;
        while (end < s->size() && (*s)[end] >= '0' && (*s)[end] <= '9') ++end;
        static const char* const kNumbers[] = {
            "0", "1", "3", "8", "16", "4294967296", "9223372036854775807",
            "9223372036854775808", "18446744073709551615", "18446744073709551616", "1e400",
            "2.0", "-8", "123456789012345678901234567890"};
        s->replace(at, end - at, kNumbers[Below(sizeof(kNumbers) / sizeof(kNumbers[0]))]);
        break;
      }
      case 8:  // truncate
        s->resize(Below(s->size() + 1));
        break;
    }
  }

  // Edits that keep the JSON valid and change what it says: offsets, shapes,
  // dtypes, field sets, names. They reach the field and layout checks.
  void MutateStructure(std::string* header) {
    nlohmann::ordered_json j = nlohmann::ordered_json::parse(*header, nullptr, false);
    if (!j.is_object() || j.empty()) return;
    std::vector<std::string> names;
    for (const auto& item : j.items()) {
      if (item.key() != "__metadata__") names.push_back(item.key());
    }
    if (names.empty()) return;
    nlohmann::ordered_json& t = j[names[Below(names.size())]];
    if (!t.is_object()) return;
    static const char* const kDTypes[] = {"F64", "F32", "F16",    "BF16", "I64", "I32",
                                          "I16", "I8",  "U8",     "BOOL", "U16", "F8_E5M2",
                                          "F4",  "Q4",  "C64",    ""};
    static const int64_t kDeltas[] = {-16, -8, -4, -2, -1, 1, 2, 4, 8, 16};
    auto tweak = [&](uint64_t v) -> uint64_t {
      int64_t next = static_cast<int64_t>(v) + kDeltas[Below(sizeof(kDeltas) / sizeof(kDeltas[0]))];
      return next < 0 ? 0 : static_cast<uint64_t>(next);
    };
    switch (Below(9)) {
      case 0:
      case 1: {  // move one offset
        auto& o = t["data_offsets"];
        if (o.is_array() && o.size() == 2 && o[0].is_number_unsigned() && o[1].is_number_unsigned()) {
          size_t k = Below(2);
          o[k] = tweak(o[k].get<uint64_t>());
        }
        break;
      }
      case 2: {  // shift a tensor
        auto& o = t["data_offsets"];
        if (o.is_array() && o.size() == 2 && o[0].is_number_unsigned() && o[1].is_number_unsigned()) {
          int64_t d = kDeltas[Below(sizeof(kDeltas) / sizeof(kDeltas[0]))];
          uint64_t b = o[0].get<uint64_t>(), e = o[1].get<uint64_t>();
          if (d < 0 && b < static_cast<uint64_t>(-d)) break;
          o = {b + d, e + d};
        }
        break;
      }
      case 3: {  // another tensor's offsets
        const auto& other = j[names[Below(names.size())]];
        if (other.is_object() && other.contains("data_offsets")) t["data_offsets"] = other["data_offsets"];
        break;
      }
      case 4: {  // change a dimension
        auto& shape = t["shape"];
        if (shape.is_array() && !shape.empty()) {
          shape[Below(shape.size())] = Below(6);
        } else if (shape.is_array()) {
          shape.push_back(Below(3));
        }
        break;
      }
      case 5:  // change the dtype
        t["dtype"] = kDTypes[Below(sizeof(kDTypes) / sizeof(kDTypes[0]))];
        break;
      case 6: {  // drop or add a field
        static const char* const kFields[] = {"dtype", "shape", "data_offsets"};
        if (Chance(0.5)) {
          t.erase(kFields[Below(3)]);
        } else {
          t["extra"] = 1;
        }
        break;
      }
      case 7:  // add or drop a dimension
        if (t["shape"].is_array()) {
          if (Chance(0.5) && !t["shape"].empty()) {
            t["shape"].erase(t["shape"].size() - 1);
          } else {
            t["shape"].push_back(1 + Below(2));
          }
        }
        break;
      case 8:  // metadata of the wrong kind
        j["__metadata__"] = Chance(0.5) ? nlohmann::ordered_json({{"k", 1}})
                                        : nlohmann::ordered_json({{"k", "v"}});
        break;
    }
    *header = j.dump();
  }

  uint64_t Length(const Sample& sample) {
    if (Chance(0.7)) return sample.header.size();
    switch (Below(6)) {
      case 0: return rng_();
      case 1: return sample.header.size() + Below(9) - 4;  // may wrap below 0: huge
      case 2: return 0;
      case 3: return UINT64_MAX;
      case 4: return kMaxSafetensorsHeaderSize + Below(3) - 1;
      default: return sample.header.size() + sample.data.size() + Below(3);
    }
  }

 private:
  std::mt19937_64 rng_;
};

// What a successful parse guarantees.
void CheckLayout(const SafetensorsHeader& h, const std::string& input) {
  ASSERT_LE(h.header_size, kMaxSafetensorsHeaderSize);
  ASSERT_LE(8 + h.header_size, h.file_size);
  const uint64_t data_size = h.DataSize();
  uint64_t covered = 0;
  for (const TensorInfo& t : h.tensors) {
    ASSERT_LE(t.begin, t.end) << input;
    ASSERT_LE(t.end, data_size) << input;
    ASSERT_EQ(t.begin, covered) << "hole or overlap at " << t.name << " in " << input;
    ASSERT_GE(t.NumElements(), 0);
    ASSERT_EQ(static_cast<uint64_t>(t.NumElements()) * DTypeSize(t.dtype), t.ByteSize());
    for (int64_t d : t.shape) ASSERT_GE(d, 0);
    if (t.end > covered) covered = t.end;
  }
  ASSERT_EQ(covered, data_size) << input;
}

TEST(SafetensorsFuzzTest, MutatedHeadersParseOrFailCleanly) {
  const std::vector<Sample> seeds = Seeds();
  constexpr int kMutantsPerSeed = 4000;  // 5 seeds: 20000 inputs
  Mutator m(0x5afe7e45u);
  int parsed = 0, rejected = 0;
  // Rejections by the stage that caught them: the mutations must reach the
  // field and layout checks, not only the JSON parser.
  std::map<std::string, int> stages;
  const char* const kStages[] = {"ends past",     "overlaps",      "not covered",
                                 "needs",         "not supported", "lists no tensors",
                                 "twice",         "nests deeper",  "not valid JSON",
                                 "larger than",   "truncated",     "does not start",
                                 "must be an object", "field"};
  for (const Sample& seed : seeds) {
    {  // the seed itself is valid
      std::string file = MakeSafetensorsWithLength(seed.header.size(), seed.header, seed.data);
      SafetensorsHeader h;
      Status s = ParseSafetensorsHeader(file, file.size(), "seed.safetensors", &h);
      ASSERT_TRUE(s.ok()) << s.ToString();
      CheckLayout(h, seed.header);
    }
    for (int i = 0; i < kMutantsPerSeed; ++i) {
      Sample sample = seed;
      if (m.Chance(0.5)) {
        // Meaningful edits, sometimes followed by a byte-level one.
        const size_t rounds = 1 + m.Below(2);
        for (size_t r = 0; r < rounds; ++r) m.MutateStructure(&sample.header);
        if (m.Chance(0.2)) m.MutateText(&sample.header);
      } else {
        const size_t rounds = 1 + m.Below(4);
        for (size_t r = 0; r < rounds; ++r) m.MutateText(&sample.header);
      }
      if (m.Chance(0.15)) {  // grow or shrink the data section
        if (m.Chance(0.5)) {
          sample.data.resize(m.Below(sample.data.size() + 1));
        } else {
          sample.data.append(1 + m.Below(32), '\0');
        }
      }
      const std::string file = MakeSafetensorsWithLength(m.Length(sample), sample.header,
                                                         sample.data);
      std::string_view prefix = file;
      if (m.Chance(0.1)) prefix = prefix.substr(0, m.Below(file.size() + 1));
      SafetensorsHeader h;
      Status s = ParseSafetensorsHeader(prefix, file.size(), "fuzz.safetensors", &h);
      if (s.ok()) {
        ++parsed;
        CheckLayout(h, sample.header);
        if (::testing::Test::HasFatalFailure()) return;
      } else {
        ++rejected;
        std::string stage = "other";
        for (const char* k : kStages) {
          if (s.message().find(k) != std::string::npos) {
            stage = k;
            break;
          }
        }
        ++stages[stage];
        ASSERT_EQ(s.message().rfind("fuzz.safetensors: ", 0), 0u) << s.message();
        ASSERT_EQ(s.message().find('\n'), std::string::npos) << s.message();
      }
    }
  }
  EXPECT_EQ(parsed + rejected, 5 * kMutantsPerSeed);
  // Both outcomes happen: the mutations reach past the JSON parser.
  EXPECT_GT(parsed, 100);
  EXPECT_GT(rejected, 1000);
  std::printf("fuzz: %d inputs parsed, %d rejected:", parsed, rejected);
  for (const auto& [stage, count] : stages) std::printf(" [%s] %d", stage.c_str(), count);
  std::printf("\n");
  for (const char* k : {"field", "overlaps", "not covered", "needs", "ends past"}) {
    EXPECT_GT(stages[k], 10) << k;
  }
}

TEST(SafetensorsFuzzTest, DeepNestingIsRejectedWithoutRecursion) {
  for (size_t depth : {65u, 1000u, 1000000u}) {
    for (char open : {'[', '{'}) {
      std::string header = "{\"a\":" + std::string(depth, open);
      std::string file = MakeSafetensorsWithLength(header.size(), header, "");
      SafetensorsHeader h;
      Status s = ParseSafetensorsHeader(file, file.size(), "deep.safetensors", &h);
      EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
      EXPECT_NE(s.message().find("deep.safetensors: header nests deeper than 64 levels"),
                std::string::npos)
          << s.message();
    }
  }
  // 64 levels is allowed by the JSON check (and then fails as a tensor).
  std::string header = "{\"a\":" + std::string(63, '[') + std::string(63, ']') + "}";
  SafetensorsHeader h;
  std::string file = MakeSafetensorsWithLength(header.size(), header, "");
  Status s = ParseSafetensorsHeader(file, file.size(), "deep.safetensors", &h);
  EXPECT_NE(s.message().find("tensor 'a'"), std::string::npos) << s.message();
}

TEST(SafetensorsFuzzTest, MutatedIndexJsonNeverThrows) {
  const std::string seed =
      R"({"metadata": {"total_size": 36}, "weight_map": {"a": "model-00001-of-00002.safetensors",)"
      R"( "b": "model-00002-of-00002.safetensors"}})";
  Mutator m(42);
  int ok = 0;
  for (int i = 0; i < 2000; ++i) {
    std::string text = seed;
    for (size_t r = 0, n = 1 + m.Below(3); r < n; ++r) m.MutateText(&text);
    Json j;
    Status s = ParseJson(text, "model.safetensors.index.json", "index", &j);
    if (s.ok()) ++ok;
    else
      ASSERT_EQ(s.message().rfind("model.safetensors.index.json: index ", 0), 0u) << s.message();
  }
  EXPECT_GT(ok, 0);
}

}  // namespace
}  // namespace lorart
