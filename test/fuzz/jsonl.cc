// Fuzz target: the JSONL record parsers (data/jsonl.h): the whole input as a
// JSONL text (SFT records), and its first line as one SFT record and as one
// DPO preference record. What parses must be a record the renderer accepts:
// chat turns with known roles, the format's promises kept.
#include <string>
#include <string_view>

#include "fuzz_target.h"
#include "lorart/data/jsonl.h"

namespace {

void CheckRecord(const lorart::data::Record& r) {
  using lorart::data::RecordFormat;
  if (r.format == RecordFormat::kText) {
    FUZZ_CHECK(r.messages.empty());
  } else {
    FUZZ_CHECK(!r.messages.empty());
  }
}

void CheckError(const lorart::Status& s, const char* where) {
  FUZZ_CHECK(!s.message().empty());
  FUZZ_CHECK(std::string(s.message()).rfind(where, 0) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto all = lorart::data::ParseJsonl(in, "fuzz.jsonl");
  lorac_fuzz::Note("jsonl", all.ok() ? "parsed" : all.status().message());
  if (all.ok()) {
    FUZZ_CHECK(!all->empty());
    int64_t prev_line = 0;
    for (const auto& r : *all) {
      CheckRecord(r);
      FUZZ_CHECK(r.line > prev_line);
      prev_line = r.line;
    }
  } else {
    CheckError(all.status(), "fuzz.jsonl");
  }
  std::string_view line = in.substr(0, in.find('\n'));
  lorart::data::Record record;
  lorart::Status s = lorart::data::ParseRecord(line, "fuzz.jsonl:1", &record);
  if (s.ok()) {
    CheckRecord(record);
  } else {
    CheckError(s, "fuzz.jsonl:1");
  }
  lorart::data::PreferenceRecord pair;
  s = lorart::data::ParsePreferenceRecord(line, "fuzz.jsonl:1", &pair);
  lorac_fuzz::Note("preference", s.ok() ? "parsed" : s.message());
  if (s.ok()) {
    CheckRecord(pair.chosen);
    CheckRecord(pair.rejected);
    FUZZ_CHECK(pair.chosen.format == lorart::data::RecordFormat::kChat);
    FUZZ_CHECK(pair.rejected.format == lorart::data::RecordFormat::kChat);
  } else {
    CheckError(s, "fuzz.jsonl:1");
  }
  return 0;
}
