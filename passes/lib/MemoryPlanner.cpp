//===- MemoryPlanner.cpp - static arena planning --------------------------===//
//
// Greedy best fit by decreasing size; see MemoryPlanner.h.
//
//===----------------------------------------------------------------------===//
#include "lora/Transforms/MemoryPlanner.h"

#include <algorithm>
#include <numeric>
#include <utility>

namespace mlir::lora {
namespace {

bool isPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

// Callers guarantee no overflow (planMemory checks the padded total first).
uint64_t alignUp(uint64_t v, uint64_t alignment) {
  return (v + alignment - 1) & ~(alignment - 1);
}

bool lifetimesOverlap(const MemoryBuffer &a, const MemoryBuffer &b) {
  return a.firstUse <= b.lastUse && b.firstUse <= a.lastUse;
}

void setError(std::string *error, std::string message) {
  if (error)
    *error = std::move(message);
}

std::string describe(size_t index, const MemoryBuffer &b) {
  return "buffer " + std::to_string(index) + " (id " + std::to_string(b.id) +
         ")";
}

// A placed buffer: [offset, end) in memory.
struct Placed {
  uint64_t offset;
  uint64_t end;
  size_t index;
};

} // namespace

std::optional<MemoryPlan> planMemory(const std::vector<MemoryBuffer> &buffers,
                                     std::string *error) {
  const size_t n = buffers.size();
  uint64_t paddedTotal = 0;
  for (size_t i = 0; i < n; ++i) {
    const MemoryBuffer &b = buffers[i];
    if (!isPowerOfTwo(b.alignment)) {
      setError(error, describe(i, b) + ": alignment " +
                          std::to_string(b.alignment) +
                          " is not a power of two");
      return std::nullopt;
    }
    if (b.firstUse > b.lastUse) {
      setError(error, describe(i, b) + ": first use " +
                          std::to_string(b.firstUse) + " is after last use " +
                          std::to_string(b.lastUse));
      return std::nullopt;
    }
    // Every end offset is at most the sum of size + alignment - 1 over the
    // buffers placed so far: checking the total once rules out overflow.
    if (__builtin_add_overflow(paddedTotal, b.size, &paddedTotal) ||
        __builtin_add_overflow(paddedTotal, b.alignment - 1, &paddedTotal)) {
      setError(error, "the buffers' sizes with alignment padding exceed 2^64 "
                      "bytes");
      return std::nullopt;
    }
  }

  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const MemoryBuffer &x = buffers[a], &y = buffers[b];
    if (x.size != y.size)
      return x.size > y.size;
    if (x.firstUse != y.firstUse)
      return x.firstUse < y.firstUse;
    if (x.id != y.id)
      return x.id < y.id;
    return a < b;
  });

  MemoryPlan plan;
  plan.offsets.assign(n, 0);
  std::vector<Placed> placed; // sorted by offset, then placement order
  placed.reserve(n);
  for (size_t index : order) {
    const MemoryBuffer &b = buffers[index];
    plan.arenaAlignment = std::max(plan.arenaAlignment, b.alignment);
    if (b.size == 0)
      continue; // offset 0: it occupies no memory

    // Walk the buffers live at the same time in offset order; the holes
    // between them are the free gaps. Keep the smallest that fits.
    uint64_t cursor = 0;
    bool found = false;
    uint64_t bestOffset = 0, bestGap = 0;
    for (const Placed &p : placed) {
      if (!lifetimesOverlap(buffers[p.index], b))
        continue;
      if (p.offset > cursor) {
        const uint64_t start = alignUp(cursor, b.alignment);
        const uint64_t gap = p.offset - cursor;
        if (start <= p.offset && p.offset - start >= b.size &&
            (!found || gap < bestGap)) {
          found = true;
          bestGap = gap;
          bestOffset = start;
        }
      }
      cursor = std::max(cursor, p.end);
    }
    const uint64_t offset = found ? bestOffset : alignUp(cursor, b.alignment);
    plan.offsets[index] = offset;
    const Placed entry{offset, offset + b.size, index};
    auto pos = std::upper_bound(
        placed.begin(), placed.end(), entry,
        [](const Placed &x, const Placed &y) { return x.offset < y.offset; });
    placed.insert(pos, entry);
    plan.arenaSize = std::max(plan.arenaSize, entry.end);
  }
  return plan;
}

uint64_t liveBytesLowerBound(const std::vector<MemoryBuffer> &buffers) {
  // Events sorted by step; at one step the buffers that start there are
  // added (and the peak read) before the ones that end there are removed.
  struct Event {
    int64_t step;
    int kind; // 0: start, 1: end
    uint64_t size;
  };
  std::vector<Event> events;
  events.reserve(2 * buffers.size());
  for (const MemoryBuffer &b : buffers) {
    if (b.size == 0 || b.firstUse > b.lastUse)
      continue;
    events.push_back({b.firstUse, 0, b.size});
    events.push_back({b.lastUse, 1, b.size});
  }
  std::sort(events.begin(), events.end(), [](const Event &a, const Event &b) {
    return a.step != b.step ? a.step < b.step : a.kind < b.kind;
  });
  // 128-bit sums: exact for any input; the result saturates.
  unsigned __int128 live = 0, peak = 0;
  for (const Event &e : events) {
    if (e.kind == 0) {
      live += e.size;
      peak = std::max(peak, live);
    } else {
      live -= e.size;
    }
  }
  return peak > UINT64_MAX ? UINT64_MAX : static_cast<uint64_t>(peak);
}

bool verifyMemoryPlan(const std::vector<MemoryBuffer> &buffers,
                      const MemoryPlan &plan, std::string *error) {
  if (plan.offsets.size() != buffers.size()) {
    setError(error, "the plan has " + std::to_string(plan.offsets.size()) +
                        " offsets for " + std::to_string(buffers.size()) +
                        " buffers");
    return false;
  }
  for (size_t i = 0; i < buffers.size(); ++i) {
    const MemoryBuffer &b = buffers[i];
    const uint64_t offset = plan.offsets[i];
    if (!isPowerOfTwo(b.alignment) || offset % b.alignment != 0) {
      setError(error, describe(i, b) + ": offset " + std::to_string(offset) +
                          " is not a multiple of its alignment " +
                          std::to_string(b.alignment));
      return false;
    }
    if (b.size > plan.arenaSize || offset > plan.arenaSize - b.size) {
      setError(error, describe(i, b) + ": [" + std::to_string(offset) +
                          ", +" + std::to_string(b.size) +
                          ") ends past the arena (" +
                          std::to_string(plan.arenaSize) + " bytes)");
      return false;
    }
  }
  // Sweep in offset order: each buffer only has to be compared with the
  // ones that start before it ends.
  std::vector<size_t> order(buffers.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return plan.offsets[a] != plan.offsets[b] ? plan.offsets[a] < plan.offsets[b]
                                              : a < b;
  });
  for (size_t k = 0; k < order.size(); ++k) {
    const size_t i = order[k];
    if (buffers[i].size == 0)
      continue;
    const uint64_t end = plan.offsets[i] + buffers[i].size;
    for (size_t m = k + 1; m < order.size() && plan.offsets[order[m]] < end;
         ++m) {
      const size_t j = order[m];
      if (buffers[j].size == 0 || !lifetimesOverlap(buffers[i], buffers[j]))
        continue;
      setError(error, describe(i, buffers[i]) + " and " +
                          describe(j, buffers[j]) +
                          " are live at the same time and overlap in memory");
      return false;
    }
  }
  return true;
}

} // namespace mlir::lora
