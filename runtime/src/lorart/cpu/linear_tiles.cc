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

// Packs the panels of `cols` output columns a chunk at a time into one
// buffer shared by the threads, `pack(c0, width, at)` per panel (columns
// [c0, c0 + width), at its place in the buffer), then runs `rows(c0, width,
// at, i0, i1)` for every (panel, row block) of the chunk, on `threads`
// threads.
template <class Pack, class Rows>
void RunChunks(int threads, int64_t cols, int64_t panel_bytes, int64_t m, Pack pack, Rows rows) {
  const int64_t panels = (cols + kPanelCols - 1) / kPanelCols;
  const int64_t per_chunk = PanelsPerChunk(panels, panel_bytes, threads);
  const int64_t blocks = (m + kRowBlock - 1) / kRowBlock;
  uint8_t* buf = Scratch<uint8_t>(kTile, per_chunk * panel_bytes);
  auto width = [&](int64_t p) { return std::min(kPanelCols, cols - p * kPanelCols); };
#pragma omp parallel num_threads(threads)
  for (int64_t p0 = 0; p0 < panels; p0 += per_chunk) {
    const int64_t np = std::min(per_chunk, panels - p0);
#pragma omp for schedule(static)
    for (int64_t p = p0; p < p0 + np; ++p)
      pack(p * kPanelCols, width(p), buf + (p - p0) * panel_bytes);
#pragma omp for schedule(static)
    for (int64_t item = 0; item < np * blocks; ++item) {
      const int64_t p = p0 + item % np, blk = item / np;
      rows(p * kPanelCols, width(p), buf + (p - p0) * panel_bytes, blk * kRowBlock,
           std::min(m, (blk + 1) * kRowBlock));
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
  const int64_t panel_bytes = ForwardPanelElems(bf, f.k, f.r) * (bf ? 2 : 4);
  RunChunks(
      Threads(ctx), f.n, panel_bytes, f.m,
      [&](int64_t j0, int64_t width, uint8_t* at) { fns->pack_fwd(f, j0, width, at); },
      [&](int64_t j0, int64_t width, const uint8_t* at, int64_t i0, int64_t i1) {
        fns->rows_fwd(f, at, j0, width, i0, i1);
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
  // Each panel: W's columns, then the adapter's A columns as f32 [r][32].
  const int64_t adapter_at = GradPanelElems(bf, f.n) * (bf ? 2 : 4);
  const int64_t panel_bytes = adapter_at + f.r * kPanelCols * 4;
  RunChunks(
      Threads(ctx), f.k, panel_bytes, f.m,
      [&](int64_t c0, int64_t width, uint8_t* at) {
        fns->pack_grad(f, c0, width, at, reinterpret_cast<float*>(at + adapter_at));
      },
      [&](int64_t c0, int64_t width, const uint8_t* at, int64_t i0, int64_t i1) {
        fns->rows_grad(f, at, reinterpret_cast<const float*>(at + adapter_at), c0, width, i0, i1);
      });
  return true;
#else
  (void)ctx, (void)f;
  return false;
#endif
}

}  // namespace lorart::cpu::matmul
