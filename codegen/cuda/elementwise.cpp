//===- elementwise.cpp - Elementwise kernels, embeddings, RoPE ------------===//
//
// One thread per element (elementwise(), codegen.h): add, SwiGLU forward
// and backward, cast, accumulate, copy, zero, fill, select_rows,
// segment_boundary_mask, bias_bwd and the embedding lookup; the embedding's
// backward (one block per vocabulary row, no atomics) and RoPE (frequencies
// baked into the source by lorart/plan/rope.h, the CPU's doubles).
//
//===----------------------------------------------------------------------===//
#include "cuda/codegen.h"

#include "lorart/plan/rope.h"

#include <cstdio>

namespace lorac::cuda {
namespace {

constexpr int64_t kBlock = 256;
namespace params = kernels::params;

const std::string &in(const KernelDesc &d, size_t i) { return d.inputs[i].type; }
const std::string &out(const KernelDesc &d, size_t i) { return d.outputs[i].type; }

Emitted addKernel(const KernelDesc &d) {
  return emitted(elementwise("add", {in(d, 0), in(d, 1)}, {out(d, 0)},
                             d.get<params::add>().elements,
                             "  lora_st(out0, i, lora_ld(in0, i) + lora_ld(in1, i));",
                             suffixOf(out(d, 0))));
}

Emitted swigluFwdKernel(const KernelDesc &d) {
  return emitted(elementwise("swiglu_fwd", {in(d, 0), in(d, 1)}, {out(d, 0)},
                             d.get<params::swiglu_fwd>().elements,
                             "  const float g = lora_ld(in0, i);\n"
                             "  lora_st(out0, i, g / (1.f + __expf(-g)) * lora_ld(in1, i));",
                             suffixOf(out(d, 0))));
}

Emitted swigluBwdKernel(const KernelDesc &d) {
  return emitted(elementwise("swiglu_bwd", {in(d, 0), in(d, 1), in(d, 2)}, {out(d, 0), out(d, 1)},
                             d.get<params::swiglu_bwd>().elements,
                             "  const float dy = lora_ld(in0, i), g = lora_ld(in1, i), u = lora_ld(in2, i);\n"
                             "  const float s = 1.f / (1.f + __expf(-g));\n"
                             "  lora_st(out0, i, dy * u * s * (1.f + g * (1.f - s)));\n"
                             "  lora_st(out1, i, dy * g * s);",
                             suffixOf(in(d, 1))));
}

Emitted castKernel(const KernelDesc &d) {
  return emitted(elementwise("cast", {in(d, 0)}, {out(d, 0)}, d.get<params::cast>().elements,
                             "  lora_st(out0, i, lora_ld(in0, i));",
                             suffixOf(in(d, 0)) + "_" + suffixOf(out(d, 0))));
}

Emitted accumulateKernel(const KernelDesc &d) {
  return emitted(elementwise("accumulate", {"float", in(d, 1)}, {"float"},
                             d.get<params::accumulate>().elements,
                             "  out0[i] = in0[i] + lora_ld(in1, i);", suffixOf(in(d, 1))));
}

Emitted copyKernel(const KernelDesc &d) {
  return emitted(elementwise("copy", {in(d, 0)}, {in(d, 0)}, d.get<params::copy>().elements,
                             "  out0[i] = in0[i];", suffixOf(in(d, 0))));
}

Emitted zeroKernel(const KernelDesc &d) {
  return emitted(elementwise("zero", {}, {out(d, 0)}, d.get<params::zero>().elements,
                             "  lora_st(out0, i, 0.f);", suffixOf(out(d, 0))));
}

Emitted fillKernel(const KernelDesc &d) {
  return emitted(elementwise("fill", {}, {"float"}, 1,
                             format("  out0[i] = {0:e}f;", {d.get<params::fill>().value}), "f32"));
}

Emitted biasBwdKernel(const KernelDesc &d) {
  // Column sums in row order, f32 (the CPU backend's order): one thread
  // per column.
  const auto &p = d.get<params::bias_bwd>();
  return emitted(elementwise("bias_bwd", {in(d, 0)}, {out(d, 0)}, p.n,
                             format("  float acc = 0.f;\n"
                                    "  for (long r = 0; r < {0}L; ++r) acc += lora_ld(in0, r * {1}L + i);\n"
                                    "  lora_st(out0, i, acc);",
                                    {p.rows, p.n}),
                             suffixOf(in(d, 0)) + "_r" + std::to_string(p.rows)));
}

Emitted selectRowsKernel(const KernelDesc &d) {
  // One row per sequence: y[b, :] = x[b, index[b], :] (indices checked on
  // the host).
  const auto &p = d.get<params::select_rows>();
  return emitted(elementwise("select_rows", {in(d, 0), in(d, 1)}, {out(d, 0)}, p.batch * p.hidden,
                             format("  const long b = i / {0}, d = i % {0};\n"
                                    "  const long row = (long)in1[b];\n"
                                    "  out0[i] = in0[(b * {1}L + row) * {0}L + d];",
                                    {p.hidden, p.seq}),
                             suffixOf(in(d, 0)) + "_s" + std::to_string(p.seq) + "_h" +
                                 std::to_string(p.hidden)));
}

Emitted segmentBoundaryMaskKernel(const KernelDesc &d) {
  // Operands mask, segment ids.
  const auto &p = d.get<params::segment_boundary_mask>();
  return emitted(elementwise("segment_boundary_mask", {"unsigned char", in(d, 1)}, {"unsigned char"},
                             p.batch * p.seq,
                             format("  const long t = i % {0};\n"
                                    "  out0[i] = in0[i] && t + 1 < {0} && in1[i + 1] == in1[i];",
                                    {p.seq}),
                             "t" + std::to_string(p.seq)));
}

Emitted embeddingFwdKernel(const KernelDesc &d) {
  // Operands table, ids.
  const auto &p = d.get<params::embedding_fwd>();
  return emitted(elementwise("embedding_fwd", {in(d, 0), in(d, 1)}, {out(d, 0)}, p.tokens * p.hidden,
                             format("  const long t = i / {0}, d = i % {0};\n"
                                    "  const long id = (long)in1[t];\n"
                                    "  // ids were checked on the host; clamp defensively.\n"
                                    "  const long row = id < 0 ? 0 : (id >= {1} ? {1} - 1 : id);\n"
                                    "  lora_st(out0, i, lora_ld(in0, row * {0}L + d));",
                                    {p.hidden, p.vocab}),
                             suffixOf(out(d, 0)) + "_v" + std::to_string(p.vocab) + "_h" +
                                 std::to_string(p.hidden)));
}

Emitted embeddingBwdKernel(const KernelDesc &d) {
  // One block per vocabulary row: the block scans the ids 256 at a time
  // (one ballot per warp) and adds the matching dy rows, in position
  // order, into f32 registers (each thread owns hidden/256 columns), then
  // stores the row once — the CPU's order and rounding, no atomics, no
  // scratch. O(vocab · tokens / 32) warp steps for the scan. Operands dy,
  // ids -> dtable.
  const auto &p = d.get<params::embedding_bwd>();
  int64_t tokens = p.tokens, hidden = p.hidden, vocab = p.vocab;
  Source s;
  s.entry = format("lora_embedding_bwd_{0}_v{1}_h{2}_n{3}", {suffixOf(out(d, 0)), vocab, hidden, tokens});
  s.code = std::string(basePrelude()) + format(R"(extern "C" __global__ void __launch_bounds__(256) {0}(const {1}* __restrict__ dy, const {2}* __restrict__ ids, {3}* __restrict__ dtable) {{
  constexpr int T = {4}, H = {5}, CH = (H + 255) / 256;
  __shared__ unsigned masks[8];
  const long v = blockIdx.x;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  float acc[CH];
#pragma unroll
  for (int c = 0; c < CH; ++c) acc[c] = 0.f;
  for (int t0 = 0; t0 < T; t0 += 256) {{
    const int t = t0 + tid;
    const unsigned m = __ballot_sync(0xffffffffu, t < T && (long)ids[t] == v);
    if (lane == 0) masks[warp] = m;
    __syncthreads();
    for (int w = 0; w < 8; ++w)
      for (unsigned mm = masks[w]; mm; mm &= mm - 1) {{
        const long row = t0 + w * 32 + (__ffs(mm) - 1);
#pragma unroll
        for (int c = 0; c < CH; ++c)
          if (tid + c * 256 < H) acc[c] += lora_ld(dy, row * H + tid + c * 256);
      }
    __syncthreads();
  }
#pragma unroll
  for (int c = 0; c < CH; ++c)
    if (tid + c * 256 < H) lora_st(dtable, v * H + tid + c * 256, acc[c]);
}
)", {s.entry, in(d, 0), in(d, 1), out(d, 0), tokens, hidden});
  s.grid = vocab;
  s.block = 256;
  return emitted(s);
}

/// The frequencies (with linear or llama3 scaling) are decided here and
/// baked into the source; angles are computed in double (positions can be
/// large). Backward rotates by the negative angle. Operands x (or dy),
/// positions.
template <class P> Emitted rope(const KernelDesc &d, const P &p, bool bwd) {
  int64_t batch = p.batch, seq = p.seq, features = p.features, hd = p.head_dim;
  // lorart/plan/rope.h: the same doubles as the CPU kernel.
  lorart::rope::Scaling sc;
  sc.kind = p.scaling;
  if (p.factor)
    sc.factor = *p.factor;
  if (p.low_freq_factor)
    sc.low_freq_factor = *p.low_freq_factor;
  if (p.high_freq_factor)
    sc.high_freq_factor = *p.high_freq_factor;
  if (p.original_max_position_embeddings)
    sc.original_max_position_embeddings = *p.original_max_position_embeddings;
  std::vector<double> inv;
  std::string bad = lorart::rope::InverseFrequencies(hd, p.theta, sc, &inv);
  if (!bad.empty()) {
    Emitted e = notCovered(bad);
    e.invalid = true;
    return e;
  }
  std::string freqs;
  for (size_t i = 0; i < inv.size(); ++i) {
    char buf[32];
    snprintf(buf, sizeof buf, "%s%.17g", i ? ", " : "", inv[i]); // exact double
    freqs += buf;
  }
  const std::string &t = in(d, 0), &pt = in(d, 1);
  Source s;
  s.entry = format("lora_rope_{0}_{1}_f{2}_h{3}_n{4}",
                   {bwd ? "bwd" : "fwd", suffixOf(t), features, hd, batch * seq});
  int64_t pairs = batch * seq * features / 2;
  s.code = std::string(basePrelude()) + format(R"(__constant__ double lora_inv_freq[{0}] = {{{1}};
extern "C" __global__ void __launch_bounds__({2}) {3}(const {4}* __restrict__ x, const {5}* __restrict__ pos, {4}* __restrict__ y) {{
  const long p = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= {6}L) return;
  const long token = p / {7}, rem = p % {7};
  const long head = rem / {0}, i = rem % {0};
  const long a = token * {8}L + head * {9} + i, b = a + {0};
  double sn, cs;
  sincos((double)pos[token] * lora_inv_freq[i], &sn, &cs);
  const float c = (float)cs, s = {10}(float)sn;
  const float xa = lora_ld(x, a), xb = lora_ld(x, b);
  lora_st(y, a, xa * c - xb * s);
  lora_st(y, b, xb * c + xa * s);
}
)", {hd / 2, freqs, kBlock, s.entry, t, pt, pairs, features / 2, features, hd, bwd ? "-" : ""});
  s.grid = (pairs + kBlock - 1) / kBlock;
  return emitted(s);
}

Emitted ropeFwdKernel(const KernelDesc &d) { return rope(d, d.get<params::rope_fwd>(), false); }
Emitted ropeBwdKernel(const KernelDesc &d) { return rope(d, d.get<params::rope_bwd>(), true); }

} // namespace

const std::vector<Emitter> &elementwiseEmitters() {
  static const std::vector<Emitter> t = {
      {kernels::Kind::add, addKernel},
      {kernels::Kind::swiglu_fwd, swigluFwdKernel},
      {kernels::Kind::swiglu_bwd, swigluBwdKernel},
      {kernels::Kind::cast, castKernel},
      {kernels::Kind::accumulate, accumulateKernel},
      {kernels::Kind::copy, copyKernel},
      {kernels::Kind::zero, zeroKernel},
      {kernels::Kind::fill, fillKernel},
      {kernels::Kind::bias_bwd, biasBwdKernel},
      {kernels::Kind::select_rows, selectRowsKernel},
      {kernels::Kind::segment_boundary_mask, segmentBoundaryMaskKernel},
      {kernels::Kind::embedding_fwd, embeddingFwdKernel},
      {kernels::Kind::embedding_bwd, embeddingBwdKernel},
      {kernels::Kind::rope_fwd, ropeFwdKernel},
      {kernels::Kind::rope_bwd, ropeBwdKernel},
  };
  return t;
}

} // namespace lorac::cuda
