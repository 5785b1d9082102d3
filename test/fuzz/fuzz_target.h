// The one entry point every fuzz target defines (libFuzzer's), and what the
// targets share. Each target is built twice (test/fuzz/CMakeLists.txt):
// with clang's -fsanitize=fuzzer,address,undefined for coverage-guided runs,
// and with the project's compiler against replay_main.cc, which feeds it the
// seed corpus and every regression input, so that the ordinary `make test`
// replays them even where clang is missing.
//
// A target returns 0 for every input. It may reject an input only through the
// code under test's Status; a crash, a sanitizer report, an escaping
// exception or a broken promise (FUZZ_CHECK) is a finding.
#ifndef LORAC_TEST_FUZZ_FUZZ_TARGET_H_
#define LORAC_TEST_FUZZ_FUZZ_TARGET_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <string_view>
#include <utility>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace lorac_fuzz {

// A promise of the code under test that the input broke: report and abort
// (libFuzzer saves the input as a crash).
#define FUZZ_CHECK(cond)                                                                 \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

// With LORAC_FUZZ_VERBOSE set (replays by hand), says what became of an
// input: a seed that no longer parses fuzzes nothing past the first check.
inline void Note(const char* what, std::string_view message) {
  static const bool verbose = std::getenv("LORAC_FUZZ_VERBOSE") != nullptr;
  if (verbose) {
    std::fprintf(stderr, "  %s: %.*s\n", what,
                 static_cast<int>(std::min<size_t>(message.size(), 300)), message.data());
  }
}

// Splits an input at its first NUL byte: the targets that take two texts
// (a template and its context, a tokenizer.json and a text) read them so.
inline std::pair<std::string_view, std::string_view> SplitAtNul(std::string_view in) {
  size_t nul = in.find('\0');
  if (nul == std::string_view::npos) return {in, std::string_view()};
  return {in.substr(0, nul), in.substr(nul + 1)};
}

}  // namespace lorac_fuzz

#endif  // LORAC_TEST_FUZZ_FUZZ_TARGET_H_
