// Instruction-set levels of the CPU backend's hand-written tiles. The tile
// code (microkernels.inc and the families' *_tiles.inc) is compiled once per
// level, each copy under `#pragma GCC target`, and the best level the CPU
// supports is picked at run time, so one portable binary uses AVX-512 where
// the host has it:
//   0  baseline x86-64 (or any other architecture): portable products;
//   1  x86-64-v3 (AVX2, FMA): f32 register tiles (attention);
//   2  x86-64-v4 (AVX-512): f32 register tiles;
//   3  x86-64-v4 + AVX512-BF16: also bf16 tiles (VDPBF16PS, f32 sums).
// A level changes speed and, for bf16 operands, where rounding happens;
// never a kernel's contract. Levels above 0 exist on x86-64 builds by GCC
// (LORART_CPU_MULTI_ISA).
#ifndef LORART_CPU_ISA_H_
#define LORART_CPU_ISA_H_

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LORART_CPU_MULTI_ISA 1
#else
#define LORART_CPU_MULTI_ISA 0
#endif

#if LORART_CPU_MULTI_ISA
// The intrinsics the tiles of levels 1 to 3 use; declared here, at file
// scope and the baseline, before any file opens its per-level regions.
#include <immintrin.h>
#endif

// Simple loops (conversions, dropout masks, elementwise kernels) use GCC
// function multiversioning instead: LORART_CPU_CLONES compiles a function
// for x86-64-v4, x86-64-v3 and the baseline and picks one at load time.
#if LORART_CPU_MULTI_ISA
#define LORART_CPU_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LORART_CPU_CLONES
#endif

// Forces inlining of the small tile helpers into each level's copy.
#define LORART_CPU_INLINE inline __attribute__((always_inline))

namespace lorart::cpu {

// The best level this CPU supports (0 without LORART_CPU_MULTI_ISA).
int CpuIsaLevel();

// The level the kernels use now: CpuIsaLevel(), or lower under a test cap.
int IsaLevel();

// Caps the level (tests run every level the CPU has); -1 removes the cap.
void SetIsaLevelLimitForTesting(int max_level);

}  // namespace lorart::cpu

#endif  // LORART_CPU_ISA_H_
