// Training throughput of a compiled plan on the CPU backend through the C
// API: random tokens on the plan's [micro_batch, seq_len] grid (one document
// per row), train_step + optimizer_step per iteration; prints one JSON line
// with tokens/s (after warmup) and the process's peak RSS.
//   lorart_step_bench PLAN MODEL_DIR [steps] [warmup] [threads]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "lorart.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s PLAN MODEL_DIR [steps] [warmup] [threads]\n", argv[0]);
    return 2;
  }
  int steps = argc > 3 ? std::atoi(argv[3]) : 10;
  int warmup = argc > 4 ? std::atoi(argv[4]) : 2;
  int threads = argc > 5 ? std::atoi(argv[5]) : 0;
  lorart_session* s = lorart_open(argv[1], threads);
  if (!s || lorart_bind_weights(s, argv[2], 0) != 0) {
    std::fprintf(stderr, "lorart_step_bench: %s\n", lorart_last_error());
    return 1;
  }
  int64_t b = lorart_micro_batch(s), t = lorart_seq_len(s), n = b * t;
  std::vector<int32_t> tokens(n), positions(n), segments(n, 0), targets(n);
  std::vector<uint8_t> mask(n, 1);
  std::mt19937 rng(0);
  for (int64_t i = 0; i < n; ++i) {
    tokens[i] = static_cast<int32_t>(rng() % 1000);
    targets[i] = static_cast<int32_t>(rng() % 1000);
    positions[i] = static_cast<int32_t>(i % t);
  }
  for (int64_t r = 0; r < b; ++r) mask[r * t + t - 1] = 0;
  double seconds = 0;
  for (int step = 1; step <= warmup + steps; ++step) {
    auto t0 = std::chrono::steady_clock::now();
    double loss, count, norm;
    if (lorart_train_step(s, tokens.data(), positions.data(), segments.data(), targets.data(),
                          mask.data(), step, &loss, &count) != 0 ||
        lorart_optimizer_step(s, 1e-4f, step, count, &norm) != 0) {
      std::fprintf(stderr, "lorart_step_bench: %s\n", lorart_last_error());
      return 1;
    }
    if (step > warmup)
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  std::printf("{\"tokens_per_s\": %.1f, \"peak_rss_bytes\": %lld}\n", n * steps / seconds,
              static_cast<long long>(ru.ru_maxrss) * 1024);
  lorart_close(s);
  return 0;
}
