// The instruction-set level of the CPU attention kernels (attention.cc).
// Their tile work is compiled once per level and the best level the CPU
// supports is picked at run time:
//   0  baseline x86-64 (or any other architecture): portable products;
//   1  x86-64-v3 (AVX2, FMA): the portable products at that width;
//   2  x86-64-v4 (AVX-512): f32 register-tile products;
//   3  x86-64-v4 + AVX512-BF16: bf16 operands multiply as bf16 (VDPBF16PS,
//      f32 sums; P and dS rounded to bf16 as FlashAttention does), f32
//      operands as at level 2.
// The level changes speed and, for bf16 operands, rounding; never the
// kernels' contract.
#ifndef LORART_CPU_ATTENTION_H_
#define LORART_CPU_ATTENTION_H_

namespace lorart::cpu {

// The level the kernels use now.
int AttentionLevel();

// The best level this CPU supports.
int AttentionCpuLevel();

// Caps the level (tests run every level the CPU has); -1 removes the cap.
void SetAttentionLevelLimitForTesting(int max_level);

}  // namespace lorart::cpu

#endif  // LORART_CPU_ATTENTION_H_
