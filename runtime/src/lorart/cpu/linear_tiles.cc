// The fused LoRA linear products on the CPU's register tiles (see
// linear_tiles.h): chunks of packed 32-column panels shared by the threads,
// work items of 64 rows × one panel, the tile code per instruction-set level
// in linear_tiles.inc.
#include "lorart/cpu/linear_tiles.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "lorart/cpu/isa.h"
#include "lorart/cpu/matmul.h"

#if LORART_CPU_MULTI_ISA
#include <immintrin.h>
#endif

namespace lorart::cpu::matmul {
namespace {

// One level's tile functions (linear_tiles.inc).
struct LinearTileFns {
  void (*pack_fwd)(const TiledForward&, int64_t j0, int64_t width, void* dst);
  void (*rows_fwd)(const TiledForward&, const void* panel, int64_t j0, int64_t width, int64_t i0,
                   int64_t i1);
  void (*pack_grad)(const TiledInputGrad&, int64_t c0, int64_t width, void* dst, float* adapter);
  void (*rows_grad)(const TiledInputGrad&, const void* panel, const float* adapter, int64_t c0,
                    int64_t width, int64_t i0, int64_t i1);
};

#define LORART_CPU_INLINE inline __attribute__((always_inline))

#if LORART_CPU_MULTI_ISA
// The tiles exist from level 2 (AVX-512) on (isa_levels.inc).
#define LORART_CPU_TILES "lorart/cpu/linear_tiles.inc"
#define LORART_CPU_MIN_LEVEL 2
#include "lorart/cpu/isa_levels.inc"

constexpr int64_t kPanelCols = level2::kPanel;
using level2::ForwardPanelElems;
using level2::GradPanelElems;
#endif

// The tile functions for compute type `dt`, or null where none apply.
const LinearTileFns* FnsFor(DType dt) {
#if LORART_CPU_MULTI_ISA
  const int level = IsaLevel();
  if (dt == DType::BF16 && level >= 3) return &level3::kLinearBf16;
  if (dt == DType::F32 && level >= 3) return &level3::kLinearF32;
  if (dt == DType::F32 && level == 2) return &level2::kLinearF32;
#endif
  (void)dt;
  return nullptr;
}

bool WeightIs(const Weight& w, DType dt) { return w.nf4 || w.t->dtype == dt; }

// Bytes of packed panels a chunk may hold (all threads share one chunk).
constexpr int64_t kChunkBytes = int64_t{2} << 20;
constexpr int64_t kRowBlock = 64;

// Panels per chunk: what kChunkBytes holds, at least one per thread.
int64_t PanelsPerChunk(int64_t panels, int64_t panel_bytes, int threads) {
  return std::min(panels, std::max<int64_t>({1, kChunkBytes / std::max<int64_t>(panel_bytes, 1),
                                             static_cast<int64_t>(threads)}));
}

// Runs `pack(p, slot)` for the panels of each chunk (slot: its place in the
// chunk's buffer), then `rows(p, slot, i0, i1)` for every (panel, row block)
// of the chunk, on `threads` threads.
template <class Pack, class Rows>
void RunChunks(int threads, int64_t panels, int64_t panel_bytes, int64_t m, Pack pack, Rows rows) {
  const int64_t per_chunk = PanelsPerChunk(panels, panel_bytes, threads);
  const int64_t blocks = (m + kRowBlock - 1) / kRowBlock;
#pragma omp parallel num_threads(threads)
  for (int64_t p0 = 0; p0 < panels; p0 += per_chunk) {
    const int64_t np = std::min(per_chunk, panels - p0);
#pragma omp for schedule(static)
    for (int64_t p = p0; p < p0 + np; ++p) pack(p, p - p0);
#pragma omp for schedule(static)
    for (int64_t item = 0; item < np * blocks; ++item) {
      const int64_t p = p0 + item % np, blk = item / np;
      rows(p, p - p0, blk * kRowBlock, std::min(m, (blk + 1) * kRowBlock));
    }
  }
}

}  // namespace

bool TiledLinearForward(const KernelContext& ctx, const TiledForward& f) {
#if LORART_CPU_MULTI_ISA
  const DType dt = f.x->dtype;
  const LinearTileFns* fns = FnsFor(dt);
  if (!fns || !WeightIs(*f.w, dt)) return false;
  if (f.y->dtype != DType::F32 && f.y->dtype != DType::BF16) return false;
  if (f.r > 0 && f.b->dtype != dt) return false;
  const bool bf = dt == DType::BF16;
  if (bf && (f.k % 2 != 0 || f.r % 2 != 0)) return false;
  const int64_t panel_elems = ForwardPanelElems(bf, f.k, f.r);
  const int64_t panel_bytes = panel_elems * (bf ? 2 : 4);
  const int64_t panels = (f.n + kPanelCols - 1) / kPanelCols;
  const int64_t per_chunk = PanelsPerChunk(panels, panel_bytes, Threads(ctx));
  uint8_t* buf = Scratch<uint8_t>(kTile, per_chunk * panel_bytes);
  RunChunks(
      Threads(ctx), panels, panel_bytes, f.m,
      [&](int64_t p, int64_t slot) {
        const int64_t j0 = p * kPanelCols;
        fns->pack_fwd(f, j0, std::min(kPanelCols, f.n - j0), buf + slot * panel_bytes);
      },
      [&](int64_t p, int64_t slot, int64_t i0, int64_t i1) {
        const int64_t j0 = p * kPanelCols;
        fns->rows_fwd(f, buf + slot * panel_bytes, j0, std::min(kPanelCols, f.n - j0), i0, i1);
      });
  return true;
#else
  (void)ctx, (void)f;
  return false;
#endif
}

bool TiledInputGradient(const KernelContext& ctx, const TiledInputGrad& f) {
#if LORART_CPU_MULTI_ISA
  const DType dt = f.dy->dtype;
  const LinearTileFns* fns = FnsFor(dt);
  if (!fns || !WeightIs(*f.w, dt)) return false;
  if (f.dx->dtype != DType::F32 && f.dx->dtype != DType::BF16) return false;
  const bool bf = dt == DType::BF16;
  if (bf && f.n % 2 != 0) return false;
  const int64_t panel_elems = GradPanelElems(bf, f.n);
  const int64_t panel_bytes = panel_elems * (bf ? 2 : 4) + f.r * kPanelCols * 4;
  const int64_t panels = (f.k + kPanelCols - 1) / kPanelCols;
  const int64_t per_chunk = PanelsPerChunk(panels, panel_bytes, Threads(ctx));
  uint8_t* buf = Scratch<uint8_t>(kTile, per_chunk * panel_bytes);
  const int64_t adapter_at = panel_elems * (bf ? 2 : 4);
  RunChunks(
      Threads(ctx), panels, panel_bytes, f.m,
      [&](int64_t p, int64_t slot) {
        const int64_t c0 = p * kPanelCols;
        uint8_t* at = buf + slot * panel_bytes;
        fns->pack_grad(f, c0, std::min(kPanelCols, f.k - c0), at,
                       reinterpret_cast<float*>(at + adapter_at));
      },
      [&](int64_t p, int64_t slot, int64_t i0, int64_t i1) {
        const int64_t c0 = p * kPanelCols;
        const uint8_t* at = buf + slot * panel_bytes;
        fns->rows_grad(f, at, reinterpret_cast<const float*>(at + adapter_at), c0,
                       std::min(kPanelCols, f.k - c0), i0, i1);
      });
  return true;
#else
  (void)ctx, (void)f;
  return false;
#endif
}

}  // namespace lorart::cpu::matmul
