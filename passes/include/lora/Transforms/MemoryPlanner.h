//===- MemoryPlanner.h - static arena planning -------------------*- C++ -*-===//
//
// The core of the memory plan: given buffers with a size, an alignment and a
// lifetime over a topological schedule of steps, assign each an offset in
// one arena so that buffers whose lifetimes overlap never overlap in memory.
//
// Plain C++ (no MLIR or LLVM types): the planning pass turns IR into
// `MemoryBuffer`s and writes the offsets back; tests and reports use it
// directly. Library `LoraMemoryPlanner`.
//
// The heuristic is greedy best fit by decreasing size (the "greedy by size"
// family of TFLite's and XLA's arena planners): buffers are placed largest
// first (ties: earlier first use, then smaller id, then input order); each
// goes into the smallest gap that fits, aligned, among the memory used by
// already placed buffers whose lifetimes overlap its own (ties: the lowest
// offset), or else right after the highest of them. The result is
// deterministic: it depends only on the input.
//
//===----------------------------------------------------------------------===//
#ifndef LORA_TRANSFORMS_MEMORYPLANNER_H
#define LORA_TRANSFORMS_MEMORYPLANNER_H

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mlir::lora {

/// A buffer to place. Steps index a topological schedule; the buffer is live
/// on every step in [firstUse, lastUse] (both inclusive).
struct MemoryBuffer {
  int64_t id = 0;         ///< the caller's name for it (also a tie-break)
  uint64_t size = 0;      ///< bytes; 0 is allowed (placed at offset 0)
  uint64_t alignment = 1; ///< a power of two
  int64_t firstUse = 0;
  int64_t lastUse = 0;
};

struct MemoryPlan {
  /// offsets[i] is the offset of buffers[i] (input order).
  std::vector<uint64_t> offsets;
  /// Bytes the arena needs: the largest offset + size (0 if no bytes).
  uint64_t arenaSize = 0;
  /// The largest alignment asked for: the arena's base must have it.
  uint64_t arenaAlignment = 1;
};

/// Places `buffers` in one arena. Returns nullopt, with a one-line reason in
/// `*error` when given, for invalid input: an alignment that is not a power
/// of two, firstUse > lastUse, or sizes whose sum with alignment padding
/// does not fit in 64 bits. Runs in O(n^2) time for n buffers.
std::optional<MemoryPlan> planMemory(const std::vector<MemoryBuffer> &buffers,
                                     std::string *error = nullptr);

/// The lower bound of any plan's arena size: the largest, over steps, of the
/// total size of the buffers live at that step (alignment padding not
/// counted). Saturates at UINT64_MAX.
uint64_t liveBytesLowerBound(const std::vector<MemoryBuffer> &buffers);

/// Checks a plan against its buffers: one offset per buffer, every offset a
/// multiple of its buffer's alignment, every buffer inside arenaSize, and no
/// two buffers with overlapping lifetimes overlapping in memory (zero-size
/// buffers overlap nothing). Returns false with a reason in `*error`.
bool verifyMemoryPlan(const std::vector<MemoryBuffer> &buffers,
                      const MemoryPlan &plan, std::string *error = nullptr);

} // namespace mlir::lora

#endif // LORA_TRANSFORMS_MEMORYPLANNER_H
