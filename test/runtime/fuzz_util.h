// Shared by the fuzz loops of test/runtime (hf/, jinja/): a seeded random
// source and the knobs for longer runs by hand.
#ifndef LORART_TEST_RUNTIME_FUZZ_UTIL_H_
#define LORART_TEST_RUNTIME_FUZZ_UTIL_H_

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <vector>

namespace lorart {
namespace testing {

// LORAC_FUZZ_SCALE=N runs N times the iterations, LORAC_FUZZ_SEED=S other
// seeds (for longer runs by hand; the defaults are what the suite runs).
inline int FuzzScale() {
  const char* s = std::getenv("LORAC_FUZZ_SCALE");
  return s ? std::max(1, std::atoi(s)) : 1;
}
inline uint64_t FuzzSeed(uint64_t seed) {
  const char* s = std::getenv("LORAC_FUZZ_SEED");
  return s ? seed ^ (std::strtoull(s, nullptr, 10) * 0x9E3779B97F4A7C15ull) : seed;
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : rng_(seed) {}
  size_t Below(size_t n) {
    return n == 0 ? 0 : std::uniform_int_distribution<size_t>(0, n - 1)(rng_);
  }
  bool Chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  template <typename T, size_t N>
  const T& Pick(const T (&a)[N]) { return a[Below(N)]; }
  template <typename T>
  const T& Pick(const std::vector<T>& v) { return v[Below(v.size())]; }
  uint64_t Next() { return rng_(); }

 private:
  std::mt19937_64 rng_;
};

}  // namespace testing
}  // namespace lorart

#endif  // LORART_TEST_RUNTIME_FUZZ_UTIL_H_
