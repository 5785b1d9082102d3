// Fuzz target: the safetensors header parser (io/safetensors.h), the first
// thing lorart reads of a base model or an adapter. The input is the start of
// a file; it is parsed as a whole file and as the head of a longer one (the
// last input byte scales the extra length). A header that parses must keep
// every promise the loaders rely on: tensors sorted, inside the data section,
// byte sizes equal to dtype x shape, no overlap.
#include <string>
#include <string_view>

#include "fuzz_target.h"
#include "lorart/io/safetensors.h"

namespace {

void CheckHeader(const lorart::SafetensorsHeader& h, uint64_t file_size) {
  FUZZ_CHECK(h.file_size == file_size);
  FUZZ_CHECK(h.DataOffset() <= file_size);
  uint64_t prev_end = 0;
  for (const lorart::TensorInfo& t : h.tensors) {
    FUZZ_CHECK(t.begin <= t.end);
    FUZZ_CHECK(t.begin >= prev_end);
    FUZZ_CHECK(t.end <= h.DataSize());
    FUZZ_CHECK(static_cast<uint64_t>(t.NumElements()) * lorart::DTypeSize(t.dtype) == t.ByteSize());
    FUZZ_CHECK(h.Find(t.name) == &t);
    prev_end = t.end;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const uint64_t extra[] = {0, size ? uint64_t{data[size - 1]} << 12 : 1, uint64_t{1} << 40};
  for (uint64_t more : extra) {
    lorart::SafetensorsHeader h;
    lorart::Status s = lorart::ParseSafetensorsHeader(in, size + more, "fuzz.safetensors", &h);
    lorac_fuzz::Note("header", s.ok() ? "parsed" : s.message());
    if (s.ok()) {
      CheckHeader(h, size + more);
    } else {
      FUZZ_CHECK(std::string(s.message()).find("fuzz.safetensors") != std::string::npos);
    }
  }
  return 0;
}
