// Tokenizer throughput: encodes every line of a text file with a
// tokenizer.json tokenizer, single-threaded, and prints tokens/s.
//
//   lorart_tokenizer_bench TOKENIZER_JSON TEXT_FILE [RUNS]
//
// Prints one line per run and a final "median_tokens_per_s N tokens M".
// LORART_TOKBENCH_SPANS=1 also asks for each token's byte span (what the
// trainer asks for to build loss masks; HF tokenizers always computes
// offsets).
// See bench/tokenizer/bench_tokenizer.py and docs/benchmarks.md.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "lorart/data/hf/hf_tokenizer.h"
#include "lorart/io/files.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s TOKENIZER_JSON TEXT_FILE [RUNS]\n", argv[0]);
    return 2;
  }
  int runs = argc > 3 ? std::atoi(argv[3]) : 3;
  auto tok = lorart::data::LoadHfTokenizer(argv[1], "");
  if (!tok.ok()) {
    std::fprintf(stderr, "%s\n", tok.status().ToString().c_str());
    return 1;
  }
  auto text = lorart::ReadWholeFile(argv[2]);
  if (!text.ok()) {
    std::fprintf(stderr, "%s\n", text.status().ToString().c_str());
    return 1;
  }
  std::vector<std::string_view> lines;
  std::string_view all = *text;
  for (size_t pos = 0; pos < all.size();) {
    size_t nl = all.find('\n', pos);
    size_t end = nl == std::string_view::npos ? all.size() : nl + 1;  // keep the newline
    lines.push_back(all.substr(pos, end - pos));
    pos = end;
  }
  // LORART_TOKBENCH_DUMP=1: write each line's ids to stdout (to compare
  // with HF), no timing.
  if (std::getenv("LORART_TOKBENCH_DUMP") != nullptr) {
    std::vector<int32_t> ids;
    for (std::string_view line : lines) {
      if (!(*tok)->Encode(line, &ids).ok()) return 1;
      for (size_t i = 0; i < ids.size(); ++i) std::printf(i ? " %d" : "%d", ids[i]);
      std::printf("\n");
    }
    return 0;
  }
  const bool with_spans = std::getenv("LORART_TOKBENCH_SPANS") != nullptr;
  std::vector<double> rates;
  size_t tokens = 0;
  std::vector<int32_t> ids;
  std::vector<lorart::data::TokenSpan> spans;
  for (int r = 0; r < runs; ++r) {
    tokens = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (std::string_view line : lines) {
      lorart::Status s = with_spans ? (*tok)->Encode(line, &ids, &spans) : (*tok)->Encode(line, &ids);
      if (!s.ok()) {
        std::fprintf(stderr, "%s\n", s.ToString().c_str());
        return 1;
      }
      tokens += ids.size();
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rates.push_back(static_cast<double>(tokens) / secs);
    std::printf("run %d: %zu tokens in %.3f s = %.0f tokens/s\n", r, tokens, secs, rates.back());
  }
  std::sort(rates.begin(), rates.end());
  std::printf("median_tokens_per_s %.0f tokens %zu lines %zu bytes %zu\n", rates[rates.size() / 2],
              tokens, lines.size(), all.size());
  return 0;
}
