#include "lorart/cpu/isa.h"

#include <algorithm>
#include <atomic>

namespace lorart::cpu {
namespace {
std::atomic<int> level_limit{-1};
}  // namespace

int CpuIsaLevel() {
#if LORART_CPU_MULTI_ISA
  static const int level = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return __builtin_cpu_supports("avx512bf16") ? 3 : 2;
    return __builtin_cpu_supports("x86-64-v3") ? 1 : 0;
  }();
  return level;
#else
  return 0;
#endif
}

int IsaLevel() {
  const int limit = level_limit.load(std::memory_order_relaxed);
  return limit < 0 ? CpuIsaLevel() : std::min(limit, CpuIsaLevel());
}

void SetIsaLevelLimitForTesting(int max_level) {
  level_limit.store(max_level, std::memory_order_relaxed);
}

}  // namespace lorart::cpu
