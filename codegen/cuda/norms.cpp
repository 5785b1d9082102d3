//===- norms.cpp - RMSNorm forward and backward ---------------------------===//
//
// `rms_norm_fwd`: one block per row, a strided sum of squares, a
// warp-shuffle and shared-memory reduction, then the scaled row.
// `rms_norm_bwd`: three launches (the weight gradient's partial sums per
// chunk of rows, their sum in chunk order, then dx), deterministic.
// Operands x, w -> y and dy, x, w -> dx, dw; a per-group norm (Qwen3's
// q_norm/k_norm) is the same kernel over rows·groups rows of `hidden`.
//
//===----------------------------------------------------------------------===//
#include "cuda/codegen.h"

namespace lorac::cuda {
namespace {

constexpr int64_t kBlock = 256;

Emitted rmsNormFwdKernel(const KernelDesc &d) {
  const auto &p = d.get<kernels::params::rms_norm_fwd>();
  int64_t rows = p.rows, hidden = p.hidden;
  double eps = p.eps;
  Source s;
  s.entry = format("lora_rms_norm_fwd_{0}_r{1}_h{2}", {suffixOf(d.outputs[0].type), rows, hidden});
  std::string t = d.inputs[0].type, w = d.inputs[1].type;
  s.code = std::string(basePrelude()) + format(R"(extern "C" __global__ void __launch_bounds__({0}) {1}(const {2}* __restrict__ x, const {3}* __restrict__ w, {2}* __restrict__ y) {{
  __shared__ float partial[{0} / 32];
  const long row = blockIdx.x;
  const {2}* xr = x + row * {4}L;
  float ss = 0.f;
  for (int j = threadIdx.x; j < {4}; j += blockDim.x) {{ const float v = lora_ld(xr, j); ss += v * v; }
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = ss;
  __syncthreads();
  if (threadIdx.x < 32) {{
    ss = threadIdx.x < {0} / 32 ? partial[threadIdx.x] : 0.f;
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if (threadIdx.x == 0) partial[0] = ss;
  }
  __syncthreads();
  const float inv = 1.f / sqrtf(partial[0] / {4}.f + {5:e}f);
  for (int j = threadIdx.x; j < {4}; j += blockDim.x)
    lora_st(y, row * {4}L + j, lora_ld(w, j) * lora_round(xr, lora_ld(xr, j) * inv));
}
)", {kBlock, s.entry, t, w, hidden, eps});
  s.grid = rows;
  return emitted(s);
}

Emitted rmsNormBwdKernel(const KernelDesc &d) {
  // Three launches. `_dwp`: a grid of 256-column strips x chunks of
  // kRowsPerChunk rows; each block recomputes its rows' 1/rms with a block
  // reduction and sums dy·round(x·r) over its rows in order, in double, into
  // the workspace ([chunks, hidden] doubles). `_dws`: per column, the chunks'
  // sums added in chunk order (deterministic: a fixed partition and order,
  // whatever the GPU). `_dx`: one block per row, after dw has read x and dy,
  // since dx may share a buffer with either. (One block per strip looping
  // over every row, the first version, ran 8 blocks for hidden 2048 and took
  // 9.9 ms of an H200 per launch at 8192 rows: 26% of a QLoRA step.)
  const auto &p = d.get<kernels::params::rms_norm_bwd>();
  constexpr int64_t kRowsPerChunk = 32;
  int64_t rows = p.rows, hidden = p.hidden;
  int64_t chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
  int64_t strips = (hidden + kBlock - 1) / kBlock;
  double eps = p.eps;
  const std::string &t = d.inputs[1].type, &w = d.inputs[2].type, &dwt = d.outputs[1].type;
  std::string base = format("lora_rms_norm_bwd_{0}_r{1}_h{2}", {suffixOf(t), rows, hidden});
  Source s;
  s.entry = base + "_dwp";
  std::string params = format("const {0}* dy, const {1}* x, const {2}* __restrict__ w, "
                              "{3}* dx, {4}* __restrict__ dw, double* __restrict__ ws",
                              {d.inputs[0].type, t, w, d.outputs[0].type, dwt});
  s.code = std::string(basePrelude()) + format(R"(__device__ __forceinline__ float lora_block_sum(float v, float* part) {{
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;
  __syncthreads();
  float total = 0.f;
  for (int i = 0; i < {0} / 32; ++i) total += part[i];
  return total;
}
extern "C" __global__ void __launch_bounds__({0}) {1}_dwp({2}) {{
  __shared__ float part[{0} / 32];
  const int c = blockIdx.x * {0} + threadIdx.x;
  const long r0 = (long)blockIdx.y * {7}L;
  const long r1 = r0 + {7}L < {3}L ? r0 + {7}L : {3}L;
  double acc = 0.0;
  for (long r = r0; r < r1; ++r) {{
    const {4}* xr = x + r * {5}L;
    float ss = 0.f;
    for (int j = threadIdx.x; j < {5}; j += {0}) {{ const float v = lora_ld(xr, j); ss += v * v; }
    const float inv = 1.f / sqrtf(lora_block_sum(ss, part) / {5}.f + {6:e}f);
    if (c < {5}) acc += (double)lora_ld(dy, r * {5}L + c) * (double)lora_round(xr, lora_ld(xr, c) * inv);
  }
  if (c < {5}) ws[(long)blockIdx.y * {5}L + c] = acc;
}
extern "C" __global__ void __launch_bounds__({0}) {1}_dws({2}) {{
  const int c = blockIdx.x * {0} + threadIdx.x;
  if (c >= {5}) return;
  double acc = 0.0;
  for (long b = 0; b < {8}L; ++b) acc += ws[b * {5}L + c];
  lora_st(dw, c, (float)acc);
}
extern "C" __global__ void __launch_bounds__({0}) {1}_dx({2}) {{
  __shared__ float part[{0} / 32];
  const long r = blockIdx.x;
  float ss = 0.f, dot = 0.f;
  for (int j = threadIdx.x; j < {5}; j += {0}) {{ const float v = lora_ld(x, r * {5}L + j); ss += v * v; }
  const float inv = 1.f / sqrtf(lora_block_sum(ss, part) / {5}.f + {6:e}f);
  for (int j = threadIdx.x; j < {5}; j += {0})
    dot += lora_ld(dy, r * {5}L + j) * lora_ld(w, j) * (lora_ld(x, r * {5}L + j) * inv);
  const float c = lora_block_sum(dot, part) / {5}.f;
  for (int j = threadIdx.x; j < {5}; j += {0}) {{
    const float g = lora_ld(dy, r * {5}L + j) * lora_ld(w, j), nn = lora_ld(x, r * {5}L + j) * inv;
    lora_st(dx, r * {5}L + j, inv * (g - nn * c));
  }
}
)", {kBlock, base, params, rows, t, hidden, eps, kRowsPerChunk, chunks});
  s.grid = strips;
  s.gridY = chunks;
  s.workspace = chunks * hidden * 8;
  Step sum;
  sum.entry = base + "_dws";
  sum.grid = strips;
  sum.block = kBlock;
  s.next.push_back(sum);
  Step dx;
  dx.entry = base + "_dx";
  dx.grid = rows;
  dx.block = kBlock;
  s.next.push_back(dx);
  return emitted(s);
}

} // namespace

const std::vector<Emitter> &normEmitters() {
  static const std::vector<Emitter> t = {
      {kernels::Kind::rms_norm_fwd, rmsNormFwdKernel},
      {kernels::Kind::rms_norm_bwd, rmsNormBwdKernel},
  };
  return t;
}

} // namespace lorac::cuda
