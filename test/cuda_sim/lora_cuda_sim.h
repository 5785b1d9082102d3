// lora_cuda_sim.h — runs the compiler's generated CUDA C++ kernels on the CPU,
// for tests on machines without a GPU.
//
// A generated kernel source is compiled by the host C++ compiler with this
// header force-included (-include lora_cuda_sim.h) and LORA_CUDA_SIM
// defined. Every CUDA thread of a block runs as a fiber (ucontext) on one OS
// thread; blocks run one after another. `__syncthreads()` and the warp-level
// primitives (shuffles, ldmatrix, mma.sync) are cooperative: a fiber waits
// until every live thread of its block (or warp) has arrived, so the
// kernel's indexing, its shared-memory use and its fragment layouts are
// executed exactly as written. Barriers reached by only part of a block, or a
// shuffle that reads an exited lane, are reported as errors: the kernel would
// hang or read garbage on a GPU. Between barriers, threads run in ascending
// and descending order by turns, so a read of another thread's write that no
// barrier orders sees the old value in one of the two.
//
// The warp-level matrix primitives follow the PTX ISA's fragment layouts
// (mma.m16n8k16 .row.col bf16/f16 with f32 accumulators; ldmatrix
// .m8n8.x4[.trans].b16). cp.async copies are performed when the issuing
// thread waits for them, so reading a tile before the wait reads stale data. What this cannot show: timing, races between
// threads that the hardware would interleave differently, bank conflicts,
// register pressure — those need a GPU (and ptxas's resource report).
#ifndef LORA_CUDA_SIM_H_
#define LORA_CUDA_SIM_H_

#ifndef LORA_CUDA_SIM
#define LORA_CUDA_SIM 1
#endif

// Storage qualifiers: shared memory is one static per kernel (blocks run one
// at a time); constants are statics.
#define __shared__ static
#define __constant__ static
#define __launch_bounds__(...)

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <ucontext.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

struct lora_sim_dim3 {
  unsigned x = 1, y = 1, z = 1;
};

namespace lora_sim {

enum class State { kRunnable, kBlockBarrier, kWarpBarrier, kDone };

// A cp.async of 16 bytes not yet performed (zero-fill when !pred).
struct PendingCopy {
  void* dst;
  const void* src;
  bool pred;
};

struct Fiber {
  ucontext_t ctx;
  std::vector<char> stack;
  State state = State::kRunnable;
  lora_sim_dim3 tid;
  std::vector<PendingCopy> pending;  // this thread's cp.async since its last wait
};

// Per-warp exchange slots for the collectives.
struct WarpSlots {
  uint64_t value[32];
  const void* ptr[32];
  uint32_t a[32][4];
  uint32_t b[32][2];
};

struct Machine {
  std::vector<Fiber> fibers;
  std::vector<WarpSlots> warps;
  ucontext_t scheduler;
  int current = -1;
  std::function<void()> body;
  std::vector<unsigned char> dynamic_smem;
  std::string error;
};

inline Machine& M() {
  static Machine m;
  return m;
}

inline int CurrentLinear() { return M().current; }
inline int LaneOf(int linear) { return linear & 31; }
inline int WarpOf(int linear) { return linear >> 5; }

inline void Fail(const std::string& what) {
  if (M().error.empty()) M().error = what;
}

// Gives control back to the scheduler until this fiber is runnable again.
inline void Wait(State s) {
  Machine& m = M();
  Fiber& f = m.fibers[m.current];
  f.state = s;
  swapcontext(&f.ctx, &m.scheduler);
}

}  // namespace lora_sim

// The CUDA built-in variables: set by the scheduler for the running fiber.
inline lora_sim_dim3 threadIdx, blockIdx, blockDim, gridDim;

inline void __syncthreads() { lora_sim::Wait(lora_sim::State::kBlockBarrier); }
inline void __syncwarp(unsigned = 0xffffffffu) { lora_sim::Wait(lora_sim::State::kWarpBarrier); }
inline void __threadfence_block() {}
inline void __threadfence() {}

namespace lora_sim {

// Exchanges one value per lane: returns lane `src`'s value.
template <typename T>
T Exchange(T v, int src) {
  static_assert(sizeof(T) <= 8, "shuffle of a value wider than 8 bytes");
  Machine& m = M();
  int me = m.current;
  WarpSlots& w = m.warps[WarpOf(me)];
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  w.value[LaneOf(me)] = bits;
  __syncwarp();
  int warp_base = WarpOf(me) * 32;
  T r = v;
  if (src < 0 || src > 31 || warp_base + src >= static_cast<int>(m.fibers.size()) ||
      m.fibers[warp_base + src].state == State::kDone) {
    Fail("a shuffle reads lane " + std::to_string(src) + ", which has exited or does not exist");
  } else {
    std::memcpy(&r, &w.value[src], sizeof(T));
  }
  __syncwarp();
  return r;
}

}  // namespace lora_sim

template <typename T>
T __shfl_xor_sync(unsigned, T v, int mask, int = 32) {
  return lora_sim::Exchange(v, lora_sim::LaneOf(lora_sim::CurrentLinear()) ^ mask);
}
template <typename T>
T __shfl_sync(unsigned, T v, int src, int = 32) {
  return lora_sim::Exchange(v, src);
}
template <typename T>
T __shfl_down_sync(unsigned, T v, unsigned delta, int = 32) {
  int lane = lora_sim::LaneOf(lora_sim::CurrentLinear());
  int src = lane + static_cast<int>(delta);
  return lora_sim::Exchange(v, src < 32 ? src : lane);
}

// The predicate of every lane as a bit mask (exited lanes read as 0).
inline unsigned __ballot_sync(unsigned, int pred) {
  using namespace lora_sim;
  Machine& m = M();
  int me = m.current;
  WarpSlots& w = m.warps[WarpOf(me)];
  w.value[LaneOf(me)] = pred ? 1 : 0;
  __syncwarp();
  unsigned mask = 0;
  int base = WarpOf(me) * 32;
  for (int l = 0; l < 32 && base + l < static_cast<int>(m.fibers.size()); ++l)
    if (m.fibers[base + l].state != State::kDone && w.value[l]) mask |= 1u << l;
  __syncwarp();
  return mask;
}
inline int __ffs(unsigned x) { return __builtin_ffs(static_cast<int>(x)); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }

// Device math the host library spells differently.
using std::isfinite;
using std::isnan;
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __fdividef(float a, float b) { return a / b; }
// Separately rounded float operations (compiled with -std=c++17, which
// contracts nothing into FMAs).
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }

namespace lora_sim {

inline float Half16ToFloat(uint16_t h, bool bf16) {
  if (bf16) {
    uint32_t u = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  __half x;
  std::memcpy(&x, &h, 2);
  return __half2float(x);
}

// mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}: D = A·B + C with A 16x16
// (row-major fragments a[4] of packed pairs), B 16x8 (column-major b[2]) and
// C/D 16x8 f32 (c[4]). groupID = lane >> 2, tig = lane & 3:
//   a[0]: A[g][2t..2t+1]   a[1]: A[g+8][2t..]   a[2]: A[g][2t+8..]   a[3]: A[g+8][2t+8..]
//   b[0]: B[2t..2t+1][g]   b[1]: B[2t+8..][g]
//   c[0..1]: C[g][2t..2t+1]   c[2..3]: C[g+8][2t..2t+1]
inline void Mma16816(float* d, const uint32_t* a, const uint32_t* b, bool bf16) {
  Machine& m = M();
  int me = m.current;
  WarpSlots& w = m.warps[WarpOf(me)];
  int lane = LaneOf(me);
  for (int i = 0; i < 4; ++i) w.a[lane][i] = a[i];
  w.b[lane][0] = b[0];
  w.b[lane][1] = b[1];
  __syncwarp();
  float A[16][16], B[16][8];
  for (int l = 0; l < 32; ++l) {
    int g = l >> 2, t = l & 3;
    for (int r = 0; r < 4; ++r) {
      int row = g + ((r & 1) ? 8 : 0), col = 2 * t + ((r & 2) ? 8 : 0);
      A[row][col] = Half16ToFloat(static_cast<uint16_t>(w.a[l][r] & 0xffff), bf16);
      A[row][col + 1] = Half16ToFloat(static_cast<uint16_t>(w.a[l][r] >> 16), bf16);
    }
    for (int r = 0; r < 2; ++r) {
      int k = 2 * t + (r ? 8 : 0);
      B[k][g] = Half16ToFloat(static_cast<uint16_t>(w.b[l][r] & 0xffff), bf16);
      B[k + 1][g] = Half16ToFloat(static_cast<uint16_t>(w.b[l][r] >> 16), bf16);
    }
  }
  int g = lane >> 2, t = lane & 3;
  for (int i = 0; i < 4; ++i) {
    int row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i & 1);
    float acc = d[i];
    for (int k = 0; k < 16; ++k) acc += A[row][k] * B[k][col];
    d[i] = acc;
  }
  __syncwarp();
}

// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: lanes 8i..8i+7 give the
// row addresses of matrix i (8 rows of 8 b16); lane l receives in r[i] the
// pair (row l/4, cols 2(l%4)..+1) of matrix i, or with .trans the pair
// (rows 2(l%4)..+1, col l/4).
inline void Ldmatrix(uint32_t* r, const void* row_ptr, int count, bool trans) {
  Machine& m = M();
  int me = m.current;
  WarpSlots& w = m.warps[WarpOf(me)];
  int lane = LaneOf(me);
  // Each row of 8 b16 must start at a 16-byte boundary (a GPU faults).
  if (lane < 8 * count && reinterpret_cast<uintptr_t>(row_ptr) % 16 != 0)
    Fail("ldmatrix row address of lane " + std::to_string(lane) + " is not 16-byte aligned");
  w.ptr[lane] = row_ptr;
  __syncwarp();
  for (int i = 0; i < count; ++i) {
    uint16_t lo, hi;
    if (!trans) {
      const uint16_t* row = static_cast<const uint16_t*>(w.ptr[8 * i + lane / 4]);
      lo = row[2 * (lane % 4)];
      hi = row[2 * (lane % 4) + 1];
    } else {
      const uint16_t* r0 = static_cast<const uint16_t*>(w.ptr[8 * i + 2 * (lane % 4)]);
      const uint16_t* r1 = static_cast<const uint16_t*>(w.ptr[8 * i + 2 * (lane % 4) + 1]);
      lo = r0[lane / 4];
      hi = r1[lane / 4];
    }
    r[i] = static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
  }
  __syncwarp();
}

// cp.async.cg.shared.global [dst], [src], 16 (src-size 0 when !pred: zero
// fill): performed only when the issuing thread waits (CpWaitAll), so a
// kernel that reads the tile before cp.async.wait_group reads what was
// there before — stale data, as it may on a GPU — instead of the copy.
// Both addresses must be 16-byte aligned (a GPU faults: misaligned address).
inline void CpAsync16(void* dst, const void* src, bool pred) {
  if (reinterpret_cast<uintptr_t>(dst) % 16 != 0 ||
      (pred && reinterpret_cast<uintptr_t>(src) % 16 != 0))
    Fail("cp.async of 16 bytes at a misaligned address (shared " +
         std::to_string(reinterpret_cast<uintptr_t>(dst) % 16) + ", global " +
         std::to_string(reinterpret_cast<uintptr_t>(src) % 16) + " bytes past 16)");
  M().fibers[M().current].pending.push_back({dst, src, pred});
}
// cp.async.wait_group 0: this thread's copies land.
inline void CpWaitAll() {
  for (const PendingCopy& c : M().fibers[M().current].pending) {
    if (c.pred)
      std::memcpy(c.dst, c.src, 16);
    else
      std::memset(c.dst, 0, 16);
  }
  M().fibers[M().current].pending.clear();
}

inline void FiberMain() {
  Machine& m = M();
  m.body();
  m.fibers[m.current].state = State::kDone;
  swapcontext(&m.fibers[m.current].ctx, &m.scheduler);
}

inline void SetBuiltins(const Fiber& f) { threadIdx = f.tid; }

// Runs `body` as every thread of every block. Returns "" or the first error.
inline std::string Launch(lora_sim_dim3 grid, lora_sim_dim3 block, size_t dynamic_smem,
                          std::function<void()> body) {
  Machine& m = M();
  m.error.clear();
  m.body = std::move(body);
  // Uninitialised, as on a GPU, followed by a canary: a write past the
  // launch's dynamic shared memory is reported after each block.
  constexpr size_t kCanary = 4096;
  m.dynamic_smem.assign(dynamic_smem + kCanary, 0xcd);
  std::memset(m.dynamic_smem.data() + dynamic_smem, 0xa5, kCanary);
  auto canary_intact = [&] {
    for (size_t i = dynamic_smem; i < dynamic_smem + kCanary; ++i)
      if (m.dynamic_smem[i] != 0xa5) return false;
    return true;
  };
  size_t nthreads = static_cast<size_t>(block.x) * block.y * block.z;
  if (nthreads == 0 || nthreads > 1024) return "block of " + std::to_string(nthreads) + " threads";
  gridDim = grid;
  blockDim = block;
  constexpr size_t kStack = 256 * 1024;
  m.fibers.assign(nthreads, Fiber{});
  m.warps.assign((nthreads + 31) / 32, WarpSlots{});
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        blockIdx = {bx, by, bz};
        for (size_t i = 0; i < nthreads; ++i) {
          Fiber& f = m.fibers[i];
          f.stack.resize(kStack);
          f.state = State::kRunnable;
          f.pending.clear();  // a copy never waited for is never seen
          f.tid = {static_cast<unsigned>(i % block.x),
                   static_cast<unsigned>((i / block.x) % block.y),
                   static_cast<unsigned>(i / (static_cast<size_t>(block.x) * block.y))};
          getcontext(&f.ctx);
          f.ctx.uc_stack.ss_sp = f.stack.data();
          f.ctx.uc_stack.ss_size = kStack;
          f.ctx.uc_link = nullptr;
          makecontext(&f.ctx, FiberMain, 0);
        }
        // Runnable threads run in ascending order in one round and in
        // descending order in the next, so a thread that reads what another
        // wrote without a barrier between them sees the old value in one of
        // the two orders (a race the hardware may lose either way).
        for (unsigned round = 0;; ++round) {
          bool ran = false;
          for (size_t j = 0; j < nthreads; ++j) {
            const size_t i = (round & 1) ? nthreads - 1 - j : j;
            if (m.fibers[i].state != State::kRunnable) continue;
            m.current = static_cast<int>(i);
            SetBuiltins(m.fibers[i]);
            swapcontext(&m.scheduler, &m.fibers[i].ctx);
            ran = true;
          }
          m.current = -1;
          if (!m.error.empty()) return m.error;
          bool all_done = true, released = false;
          for (const Fiber& f : m.fibers) all_done &= f.state == State::kDone;
          if (all_done) break;
          // A warp barrier opens when every live lane of the warp waits at it.
          for (size_t w = 0; w < m.warps.size(); ++w) {
            size_t lo = w * 32, hi = std::min(nthreads, lo + 32);
            bool open = true, any = false;
            for (size_t i = lo; i < hi; ++i) {
              State s = m.fibers[i].state;
              if (s == State::kDone) continue;
              any = true;
              open &= s == State::kWarpBarrier;
            }
            if (open && any) {
              for (size_t i = lo; i < hi; ++i)
                if (m.fibers[i].state == State::kWarpBarrier) m.fibers[i].state = State::kRunnable;
              released = true;
            }
          }
          if (released) continue;
          // The block barrier opens when every live thread waits at it.
          bool open = true;
          for (const Fiber& f : m.fibers)
            if (f.state != State::kDone) open &= f.state == State::kBlockBarrier;
          if (open) {
            for (Fiber& f : m.fibers)
              if (f.state == State::kBlockBarrier) f.state = State::kRunnable;
            continue;
          }
          return "deadlock in block (" + std::to_string(bx) + "," + std::to_string(by) + "," +
                 std::to_string(bz) +
                 "): threads wait at different barriers (a __syncthreads or a warp "
                 "collective in divergent code)";
        }
        if (!canary_intact())
          return "block (" + std::to_string(bx) + "," + std::to_string(by) + "," +
                 std::to_string(bz) + ") wrote past the " + std::to_string(dynamic_smem) +
                 " bytes of dynamic shared memory of the launch";
      }
  return "";
}

inline void* DynamicSmem() { return M().dynamic_smem.data(); }

// Calls f with the kernel's pointer arguments from args[].
template <typename... P, size_t... I>
void CallWith(void (*f)(P...), void** args, std::index_sequence<I...>) {
  f(static_cast<P>(args[I])...);
}
template <typename... P>
void Call(void (*f)(P...), void** args) {
  CallWith(f, args, std::index_sequence_for<P...>{});
}
template <typename... P>
constexpr size_t Arity(void (*)(P...)) {
  return sizeof...(P);
}

}  // namespace lora_sim

#endif  // LORA_CUDA_SIM_H_
