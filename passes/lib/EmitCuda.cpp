//===- EmitCuda.cpp - CUDA C++ source for the kernels of the graph --------===//
//
// For the cuda target, every kernel whose family has a template gets its
// CUDA C++ source, specialised by element type and problem size, with its
// launch geometry: `cuda_source`, `cuda_entry`, `cuda_grid`, `cuda_block`,
// `cuda_shared` join the op's `lora.kernel` dictionary and the serializer
// moves them into train.bin's Kernel.cuda_source/entry/grid/block. The
// runtime compiles them with NVRTC. Kernel arguments are the launch's input
// tensors then its output tensors, as device pointers, in op order.
//
// Families with templates: elementwise (add, swiglu fwd/bwd, cast,
// accumulate, copy, zero, fill), rms_norm fwd/bwd, the whole optimizer step
// (global_norm, clip_scale, adamw), rope fwd/bwd (the compiler bakes the
// scaled frequencies into the source), embedding fwd/bwd,
// segment_boundary_mask, select_rows, bias_bwd; the tensor-core GEMMs
// (CudaGemm.cpp, CudaLinearBwd.cpp), attention (CudaAttention.cpp), the
// LM-head loss (CudaLmHead.cpp) and the losses on logits, DPO, replay and
// EWC (CudaLosses.cpp). The GEMM-shaped kernels and attention fall back to
// CUDA-core templates (CudaSimt.cpp) for what the tensor-core ones do not
// cover (f32/f16 activations, ranks above 64, K not a multiple of 8). A
// kernel whose case no template covers (see each template's `why`) keeps no
// source and the runtime refuses it on CUDA.
//
//===----------------------------------------------------------------------===//
#include "CudaGemm.h"
#include "CudaLosses.h"

#include "lora/Dialect/Lora/IR/LoraOps.h"
#include "lora/Transforms/KernelContract.h"
#include "lora/Transforms/Passes.h"
#include "lorart/plan/rope.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/Support/FormatVariadic.h"

#include <algorithm>
#include <cmath>

namespace mlir::lora {
#define GEN_PASS_DEF_EMITCUDA
#include "lora/Transforms/Passes.h.inc"
} // namespace mlir::lora

using namespace mlir;
using namespace mlir::lora;

namespace {

constexpr int64_t kBlock = 256;
const std::string kBf16 = "__nv_bfloat16";

/// The CUDA type of a float tensor's elements.
std::string cudaType(Type t) {
  Type e = cast<RankedTensorType>(t).getElementType();
  if (e.isBF16())
    return "__nv_bfloat16";
  if (e.isF16())
    return "__half";
  return "float";
}

/// The CUDA type of an index tensor's elements (ids, positions, segment
/// ids, targets): i64 or i32.
std::string indexType(Value v) {
  return cast<RankedTensorType>(v.getType()).getElementType().isInteger(64) ? "long long" : "int";
}

/// The frozen weight of a GEMM template: NF4 with its layout, or dense in
/// `dense` (the activations' CUDA type). False for any other dense type.
bool gemmWeight(Value w, const std::string &dense, bool *nf4, int64_t *blockSize,
                int64_t *doubleQuantBlock) {
  if (auto t = dyn_cast<NF4Type>(w.getType())) {
    *nf4 = true;
    *blockSize = t.getBlockSize();
    *doubleQuantBlock = t.getDoubleQuantBlock();
    return true;
  }
  return cudaType(w.getType()) == dense;
}

std::string suffix(Type t) {
  Type e = cast<RankedTensorType>(t).getElementType();
  return e.isBF16() ? "bf16" : e.isF16() ? "f16" : "f32";
}

const std::string kPrelude = cuda::basePrelude();

using cuda::Source;

/// An elementwise kernel over `n` elements: `body` computes the outputs at
/// index i from the inputs (named in0.., out0..).
Source elementwise(StringRef kind, ArrayRef<std::string> inTypes,
                   ArrayRef<std::string> outTypes, int64_t n, StringRef body,
                   StringRef tag) {
  Source s;
  s.block = kBlock;
  s.entry = llvm::formatv("lora_{0}_{1}_n{2}", kind, tag, n).str();
  std::string params;
  for (auto [i, t] : llvm::enumerate(inTypes))
    params += llvm::formatv("{0}const {1}* __restrict__ in{2}", params.empty() ? "" : ", ", t, i).str();
  for (auto [i, t] : llvm::enumerate(outTypes))
    params += llvm::formatv("{0}{1}* __restrict__ out{2}", params.empty() ? "" : ", ", t, i).str();
  s.code = std::string(kPrelude) +
           llvm::formatv("extern \"C\" __global__ void __launch_bounds__({0}) {1}({2}) {{\n"
                         "  const long i = (long)blockIdx.x * blockDim.x + threadIdx.x;\n"
                         "  if (i >= {3}L) return;\n"
                         "{4}\n}\n",
                         kBlock, s.entry, params, n, body)
               .str();
  s.grid = (n + kBlock - 1) / kBlock;
  return s;
}

std::optional<Source> emit(Operation *op, DictionaryAttr k) {
  StringRef kind = k.getAs<StringAttr>("kind").getValue();
  auto n = [&](StringRef key) { return k.getAs<IntegerAttr>(key).getInt(); };
  auto ty = [&](Value v) { return cudaType(v.getType()); };
  if (isa<LinearOp, FusedLinearOp>(op)) {
    // The tensor-core GEMM with the NF4 dequantization in its main loop and
    // the adapter's product in its epilogue (CudaGemm.cpp).
    cuda::GemmFwd g;
    g.m = n("m");
    g.n = n("n");
    g.k = n("k");
    g.bias = k.getAs<IntegerAttr>("bias").getInt() != 0;
    Value x = op->getOperand(0), w = op->getOperand(1);
    g.xType = ty(x);
    g.yType = ty(op->getResult(0));
    if (g.bias)
      g.biasType = ty(op->getOperand(2));
    if (!gemmWeight(w, g.xType, &g.wNf4, &g.blockSize, &g.doubleQuantBlock))
      return std::nullopt;
    if (auto rank = k.getAs<IntegerAttr>("rank"); rank && rank.getInt() > 0) {
      g.rank = rank.getInt();
      g.scaling = k.getAs<FloatAttr>("scaling").getValueAsDouble();
      g.dropout = k.getAs<FloatAttr>("dropout").getValueAsDouble();
      unsigned ia = 2 + (g.bias ? 1 : 0);
      g.aType = ty(op->getOperand(ia));
      g.bType = ty(op->getOperand(ia + 1));
    }
    std::string why;
    std::optional<Source> s;
    if (!g.rank || (g.aType == kBf16 && g.bType == kBf16))
      s = cuda::emitGemmFwd(g, &why);
    return s ? s : cuda::emitSimtGemmFwd(g, &why);
  }
  if (auto o = dyn_cast<LinearGradWOp>(op)) {
    std::string why;
    auto s = cuda::emitLinearBwdW(n("m"), n("n"), n("k"), ty(o.getDy()), ty(o.getX()),
                                  ty(o.getResult()), &why);
    return s ? s : cuda::emitSimtLinearBwdW(n("m"), n("n"), n("k"), ty(o.getDy()), ty(o.getX()),
                                            ty(o.getResult()), &why);
  }
  if (auto o = dyn_cast<BiasGradOp>(op)) {
    // Column sums in row order, f32 (the CPU backend's order): one thread
    // per column.
    int64_t rows = n("rows"), cols = n("n");
    return elementwise(kind, {ty(o.getDy())}, {ty(o.getResult())}, cols,
                       llvm::formatv("  float acc = 0.f;\n"
                                     "  for (long r = 0; r < {0}L; ++r) acc += lora_ld(in0, r * {1}L + i);\n"
                                     "  lora_st(out0, i, acc);",
                                     rows, cols)
                           .str(),
                       suffix(o.getDy().getType()) + "_r" + std::to_string(rows));
  }
  if (auto o = dyn_cast<LMHeadOp>(op)) {
    // f32 logits x·Wᵀ (generation's last positions): the tensor-core GEMM
    // with an f32 output.
    cuda::GemmFwd g;
    g.m = n("m");
    g.n = n("n");
    g.k = n("k");
    g.xType = ty(o.getX());
    g.yType = ty(o.getResult());
    if (ty(o.getWeight()) != g.xType)
      return std::nullopt;
    std::string why;
    auto s = cuda::emitGemmFwd(g, &why);
    return s ? s : cuda::emitSimtGemmFwd(g, &why);
  }
  if (isa<CrossEntropyOp, CrossEntropyGradOp, SequenceLogProbsOp, SequenceLogProbsGradOp>(op)) {
    // Losses over materialized logits (CudaLosses.cpp): one block per row.
    cuda::LogitsLoss l;
    l.tokens = n("tokens");
    l.vocab = n("vocab");
    l.logitsType = ty(op->getOperand(0));
    l.targetType = indexType(op->getOperand(1));
    std::string why;
    if (isa<SequenceLogProbsOp, SequenceLogProbsGradOp>(op)) {
      l.sequences = n("sequences");
      l.seqType = indexType(op->getOperand(3));
    }
    if (isa<CrossEntropyGradOp, SequenceLogProbsGradOp>(op))
      l.dlogitsType = ty(op->getResult(0));
    if (isa<CrossEntropyOp>(op))
      return cuda::emitCrossEntropyFwd(l, &why);
    if (isa<CrossEntropyGradOp>(op))
      return cuda::emitCrossEntropyBwd(l, &why);
    if (isa<SequenceLogProbsOp>(op))
      return cuda::emitSequenceLogProbsFwd(l, &why);
    return cuda::emitSequenceLogProbsBwd(l, &why);
  }
  if (isa<DPOLossOp, DPOLossGradOp>(op)) {
    double beta = k.getAs<FloatAttr>("beta").getValueAsDouble();
    bool ipo = n("ipo") != 0;
    return isa<DPOLossOp>(op) ? cuda::emitDpoLossFwd(n("pairs"), beta, ipo)
                              : cuda::emitDpoLossBwd(n("pairs"), beta, ipo);
  }
  if (isa<ReplayLossOp, ReplayLossGradOp>(op))
    return cuda::emitReplayLoss(n("pairs"), k.getAs<FloatAttr>("weight").getValueAsDouble(),
                                isa<ReplayLossGradOp>(op));
  if (isa<EWCPenaltyOp, EWCPenaltyGradOp>(op)) {
    cuda::EwcPenalty e;
    e.n = n("n");
    e.k = n("k");
    e.rank = n("rank");
    e.scaling = k.getAs<FloatAttr>("scaling").getValueAsDouble();
    e.lambda = k.getAs<FloatAttr>("lambda").getValueAsDouble();
    e.aType = ty(op->getOperand(0));
    e.bType = ty(op->getOperand(1));
    e.fisherType = ty(op->getOperand(2));
    std::string why;
    return cuda::emitEwcPenalty(e, isa<EWCPenaltyGradOp>(op), &why);
  }
  if (auto o = dyn_cast<SelectRowsOp>(op)) {
    // One row per sequence: y[b, :] = x[b, index[b], :] (indices checked on
    // the host).
    int64_t batch = n("batch"), seq = n("seq"), hidden = n("hidden");
    std::string it = indexType(o.getIndex());
    return elementwise(kind, {ty(o.getX()), it}, {ty(o.getResult())}, batch * hidden,
                       llvm::formatv("  const long b = i / {0}, d = i % {0};\n"
                                     "  const long row = (long)in1[b];\n"
                                     "  out0[i] = in0[(b * {1}L + row) * {0}L + d];",
                                     hidden, seq)
                           .str(),
                       suffix(o.getX().getType()) + "_s" + std::to_string(seq) + "_h" +
                           std::to_string(hidden));
  }
  if (isa<LMHeadCrossEntropyOp, LMHeadCrossEntropyGradOp, LMHeadCrossEntropyGradWOp>(op)) {
    // The chunked LM-head loss, its input and weight gradients
    // (CudaLmHead.cpp); operands x, weight, targets, mask (, dloss).
    bool bwd = !isa<LMHeadCrossEntropyOp>(op);
    cuda::LmHeadCe l;
    l.tokens = n("tokens");
    l.hidden = n("hidden");
    l.vocab = n("vocab");
    l.xType = ty(op->getOperand(0));
    l.wType = ty(op->getOperand(1));
    l.targetType = indexType(op->getOperand(2));
    std::string why;
    if (!bwd) {
      auto s = cuda::emitLmHeadCeFwd(l, &why);
      return s ? s : cuda::emitSimtLmHeadCeFwd(l, &why);
    }
    if (isa<LMHeadCrossEntropyGradWOp>(op)) {
      auto s = cuda::emitLmHeadCeBwdW(l, n("chunk_size"), ty(op->getResult(0)), &why);
      return s ? s : cuda::emitSimtLmHeadCeBwdW(l, n("chunk_size"), ty(op->getResult(0)), &why);
    }
    l.dxType = ty(op->getResult(0));
    auto s = cuda::emitLmHeadCeBwdX(l, n("chunk_size"), &why);
    return s ? s : cuda::emitSimtLmHeadCeBwdX(l, n("chunk_size"), &why);
  }
  if (isa<LinearGradXOp, AdapterGradOp, FusedLinearGradOp>(op)) {
    // dx, dA and dB through the frozen (dense or NF4) weight and the adapter
    // (CudaLinearBwd.cpp): several launches sharing a workspace for u and g.
    cuda::LinearBwd g;
    g.m = n("m");
    g.n = n("n");
    g.k = n("k");
    Value dy = op->getOperand(0), w, x, a, b;
    if (isa<LinearGradXOp>(op)) {
      w = op->getOperand(1);
    } else {
      x = op->getOperand(1);
      bool fused = isa<FusedLinearGradOp>(op);
      if (fused)
        w = op->getOperand(2);
      a = op->getOperand(fused ? 3 : 2);
      b = op->getOperand(fused ? 4 : 3);
      g.rank = n("rank");
      g.scaling = k.getAs<FloatAttr>("scaling").getValueAsDouble();
      g.dropout = k.getAs<FloatAttr>("dropout").getValueAsDouble();
      g.xType = ty(x);
      g.daType = ty(op->getResult(1));
      g.dbType = ty(op->getResult(2));
      g.aType = ty(a);
      g.bType = ty(b);
    }
    g.dyType = ty(dy);
    g.dxType = ty(op->getResult(0));
    g.hasW = static_cast<bool>(w);
    if (w) {
      // A dense W of any float type (the LM head under DPO: an f32 dy
      // against a bf16 W), or NF4.
      if (!isa<NF4Type>(w.getType()))
        g.wType = ty(w);
      if (!gemmWeight(w, g.wType, &g.wNf4, &g.blockSize, &g.doubleQuantBlock))
        return std::nullopt;
    }
    std::string why;
    std::optional<Source> s;
    if (g.aType == kBf16 && g.bType == kBf16 && g.wType == kBf16)
      s = cuda::emitLinearBwd(g, &why);
    return s ? s : cuda::emitSimtLinearBwd(g, &why);
  }
  if (isa<AttentionOp, AttentionGradOp>(op)) {
    // FlashAttention-2 style on tensor cores (CudaAttention.cpp); every
    // tensor operand and result in bf16.
    bool bwd = isa<AttentionGradOp>(op);
    cuda::AttentionFwd a;
    a.batch = n("batch");
    a.seq = n("seq");
    a.heads = n("num_heads");
    a.kvHeads = n("num_kv_heads");
    a.headDim = n("head_dim");
    a.scale = k.getAs<FloatAttr>("scale").getValueAsDouble();
    a.causal = n("causal") != 0;
    a.slidingWindow = n("sliding_window");
    Value seg = bwd ? cast<AttentionGradOp>(op).getSegmentIds()
                    : cast<AttentionOp>(op).getSegmentIds();
    if (seg)
      a.segType = indexType(seg);
    a.qType = ty(op->getOperand(bwd ? 1 : 0));
    a.oType = ty(op->getResult(0));
    // One float type for every tensor operand and result: bf16 on tensor
    // cores, anything else (or a head_dim they do not cover) on CUDA cores.
    for (Value v : op->getOperands())
      if (v != seg && ty(v) != a.qType)
        return std::nullopt;
    for (Value r : op->getResults())
      if (ty(r) != a.qType)
        return std::nullopt;
    std::string why;
    std::optional<Source> s;
    if (a.qType == kBf16)
      s = bwd ? cuda::emitAttentionBwd(a, &why) : cuda::emitAttentionFwd(a, &why);
    if (!s)
      s = bwd ? cuda::emitSimtAttentionBwd(a, &why) : cuda::emitSimtAttentionFwd(a, &why);
    return s;
  }
  if (auto o = dyn_cast<EmbeddingGradOp>(op)) {
    // One block per vocabulary row: the block scans the ids 256 at a time
    // (one ballot per warp) and adds the matching dy rows, in position
    // order, into f32 registers (each thread owns hidden/256 columns), then
    // stores the row once — the CPU's order and rounding, no atomics, no
    // scratch. O(vocab · tokens / 32) warp steps for the scan.
    int64_t tokens = n("tokens"), hidden = n("hidden"), vocab = n("vocab");
    std::string it = indexType(o.getIds());
    Source s;
    s.entry = llvm::formatv("lora_embedding_bwd_{0}_v{1}_h{2}_n{3}", suffix(o.getDtable().getType()),
                            vocab, hidden, tokens).str();
    s.code = std::string(kPrelude) + llvm::formatv(R"(extern "C" __global__ void __launch_bounds__(256) {0}(const {1}* __restrict__ dy, const {2}* __restrict__ ids, {3}* __restrict__ dtable) {{
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
)", s.entry, ty(o.getDy()), it, ty(o.getDtable()), tokens, hidden).str();
    s.grid = vocab;
    s.block = 256;
    return s;
  }
  if (auto o = dyn_cast<RMSNormGradOp>(op)) {
    // Three launches. `_dwp`: a grid of 256-column strips x chunks of
    // kRowsPerChunk rows; each block recomputes its rows' 1/rms with a block
    // reduction and sums dy·round(x·r) over its rows in order, in double, into
    // the workspace ([chunks, hidden] doubles). `_dws`: per column, the chunks'
    // sums added in chunk order (deterministic: a fixed partition and order,
    // whatever the GPU). `_dx`: one block per row, after dw has read x and dy,
    // since dx may share a buffer with either. (One block per strip looping
    // over every row, the first version, ran 8 blocks for hidden 2048 and took
    // 9.9 ms of an H200 per launch at 8192 rows: 26% of a QLoRA step.)
    constexpr int64_t kRowsPerChunk = 32;
    int64_t rows = n("rows"), hidden = n("hidden");
    int64_t chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
    int64_t strips = (hidden + kBlock - 1) / kBlock;
    double eps = k.getAs<FloatAttr>("eps").getValueAsDouble();
    std::string t = ty(o.getX()), w = ty(o.getWeight()), dwt = ty(o.getDweight());
    std::string base = llvm::formatv("lora_rms_norm_bwd_{0}_r{1}_h{2}", suffix(o.getX().getType()),
                                     rows, hidden).str();
    Source s;
    s.entry = base + "_dwp";
    std::string params = llvm::formatv("const {0}* dy, const {1}* x, const {2}* __restrict__ w, "
                                       "{3}* dx, {4}* __restrict__ dw, double* __restrict__ ws",
                                       ty(o.getDy()), t, w, ty(o.getDx()), dwt).str();
    s.code = std::string(kPrelude) + llvm::formatv(R"(__device__ __forceinline__ float lora_block_sum(float v, float* part) {{
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
)", kBlock, base, params, rows, t, hidden, eps, kRowsPerChunk, chunks).str();
    s.grid = strips;
    s.gridY = chunks;
    s.workspace = chunks * hidden * 8;
    cuda::Step sum;
    sum.entry = base + "_dws";
    sum.grid = strips;
    sum.block = kBlock;
    s.next.push_back(sum);
    cuda::Step dx;
    dx.entry = base + "_dx";
    dx.grid = rows;
    dx.block = kBlock;
    s.next.push_back(dx);
    return s;
  }
  if (auto o = dyn_cast<AddOp>(op))
    return elementwise(kind, {ty(o.getLhs()), ty(o.getRhs())}, {ty(o.getResult())},
                       n("elements"),
                       "  lora_st(out0, i, lora_ld(in0, i) + lora_ld(in1, i));",
                       suffix(o.getType()));
  if (auto o = dyn_cast<SwiGLUOp>(op))
    return elementwise(kind, {ty(o.getGate()), ty(o.getUp())}, {ty(o.getResult())},
                       n("elements"),
                       "  const float g = lora_ld(in0, i);\n"
                       "  lora_st(out0, i, g / (1.f + __expf(-g)) * lora_ld(in1, i));",
                       suffix(o.getType()));
  if (auto o = dyn_cast<SwiGLUGradOp>(op))
    return elementwise(kind, {ty(o.getDy()), ty(o.getGate()), ty(o.getUp())},
                       {ty(o.getDgate()), ty(o.getDup())}, n("elements"),
                       "  const float dy = lora_ld(in0, i), g = lora_ld(in1, i), u = lora_ld(in2, i);\n"
                       "  const float s = 1.f / (1.f + __expf(-g));\n"
                       "  lora_st(out0, i, dy * u * s * (1.f + g * (1.f - s)));\n"
                       "  lora_st(out1, i, dy * g * s);",
                       suffix(o.getGate().getType()));
  if (auto o = dyn_cast<CastOp>(op))
    return elementwise(kind, {ty(o.getInput())}, {ty(o.getResult())}, n("elements"),
                       "  lora_st(out0, i, lora_ld(in0, i));",
                       suffix(o.getInput().getType()) + "_" + suffix(o.getType()));
  if (auto o = dyn_cast<AccumulateOp>(op))
    return elementwise(kind, {"float", ty(o.getValue())}, {"float"}, n("elements"),
                       "  out0[i] = in0[i] + lora_ld(in1, i);",
                       suffix(o.getValue().getType()));
  if (auto o = dyn_cast<AssignOp>(op))
    return elementwise(kind, {ty(o.getValue())}, {ty(o.getValue())}, n("elements"),
                       "  out0[i] = in0[i];", suffix(o.getValue().getType()));
  if (auto o = dyn_cast<ResetOp>(op)) {
    Type t = o.getStorageType();
    return elementwise(kind, {}, {cudaType(t)}, n("elements"),
                       "  lora_st(out0, i, 0.f);", suffix(t));
  }
  if (auto o = dyn_cast<ScalarOp>(op))
    return elementwise(kind, {}, {"float"}, 1,
                       llvm::formatv("  out0[i] = {0:e}f;", o.getValue().convertToDouble()).str(),
                       "f32");
  if (auto o = dyn_cast<AdamWOp>(op)) {
    auto f = [&](StringRef key) { return k.getAs<FloatAttr>(key).getValueAsDouble(); };
    std::string body = llvm::formatv(
        "  const float lr = in4[0], t = in5[0], scale = in6[0];\n"
        "  const float g = scale * in1[i];\n"
        "  const float m = {0:e}f * in2[i] + (1.f - {0:e}f) * g;\n"
        "  const float v = {1:e}f * in3[i] + (1.f - {1:e}f) * g * g;\n"
        "  const float mh = m / (1.f - powf({0:e}f, t)), vh = v / (1.f - powf({1:e}f, t));\n"
        "  out0[i] = in0[i] - lr * (mh / (sqrtf(vh) + {2:e}f) + {3:e}f * in0[i]);\n"
        "  out1[i] = m;\n  out2[i] = v;",
        f("beta1"), f("beta2"), f("eps"), f("weight_decay"));
    return elementwise(kind, {"float", "float", "float", "float", "float", "float", "float"},
                       {"float", "float", "float"}, n("elements"), body, "f32");
  }
  if (isa<RopeOp, RopeGradOp>(op)) {
    // The frequencies (with linear or llama3 scaling) are decided here and
    // baked into the source; angles are computed in double (positions can be
    // large). Backward rotates by the negative angle.
    bool bwd = isa<RopeGradOp>(op);
    Value x = op->getOperand(0);
    int64_t batch = n("batch"), seq = n("seq"), features = n("features"),
            hd = n("head_dim");
    // lorart/plan/rope.h: the same doubles as the CPU kernel.
    lorart::rope::Scaling sc;
    sc.kind = k.getAs<StringAttr>("scaling").getValue().str();
    if (auto a = k.getAs<FloatAttr>("factor"))
      sc.factor = a.getValueAsDouble();
    if (auto a = k.getAs<FloatAttr>("low_freq_factor"))
      sc.low_freq_factor = a.getValueAsDouble();
    if (auto a = k.getAs<FloatAttr>("high_freq_factor"))
      sc.high_freq_factor = a.getValueAsDouble();
    if (auto a = k.getAs<IntegerAttr>("original_max_position_embeddings"))
      sc.original_max_position_embeddings = a.getInt();
    std::vector<double> inv;
    std::string bad = lorart::rope::InverseFrequencies(
        hd, k.getAs<FloatAttr>("theta").getValueAsDouble(), sc, &inv);
    if (!bad.empty()) {
      op->emitOpError() << "lora.kernel: " << bad;
      return std::nullopt;
    }
    std::string freqs;
    for (size_t i = 0; i < inv.size(); ++i) {
      char buf[32];
      snprintf(buf, sizeof buf, "%s%.17g", i ? ", " : "", inv[i]); // exact double
      freqs += buf;
    }
    std::string t = ty(x);
    std::string pt = indexType(op->getOperand(1));
    Source s;
    s.entry = llvm::formatv("lora_rope_{0}_{1}_f{2}_h{3}_n{4}", bwd ? "bwd" : "fwd",
                            suffix(x.getType()), features, hd, batch * seq)
                  .str();
    int64_t pairs = batch * seq * features / 2;
    s.code = std::string(kPrelude) + llvm::formatv(R"(__constant__ double lora_inv_freq[{0}] = {{{1}};
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
)", hd / 2, freqs, kBlock, s.entry, t, pt, pairs, features / 2, features, hd,
                   bwd ? "-" : "").str();
    s.grid = (pairs + kBlock - 1) / kBlock;
    return s;
  }
  if (auto o = dyn_cast<EmbeddingOp>(op)) {
    int64_t tokens = n("tokens"), hidden = n("hidden"), vocab = n("vocab");
    std::string it = indexType(o.getIds());
    return elementwise(kind, {ty(o.getTable()), it}, {ty(o.getResult())}, tokens * hidden,
                       llvm::formatv("  const long t = i / {0}, d = i % {0};\n"
                                     "  const long id = (long)in1[t];\n"
                                     "  // ids were checked on the host; clamp defensively.\n"
                                     "  const long row = id < 0 ? 0 : (id >= {1} ? {1} - 1 : id);\n"
                                     "  lora_st(out0, i, lora_ld(in0, row * {0}L + d));",
                                     hidden, vocab)
                           .str(),
                       suffix(o.getType()) + "_v" + std::to_string(vocab) + "_h" +
                           std::to_string(hidden));
  }
  if (auto o = dyn_cast<SegmentBoundaryMaskOp>(op)) {
    int64_t seq = n("seq");
    std::string it = indexType(o.getSegmentIds());
    return elementwise(kind, {"unsigned char", it}, {"unsigned char"}, n("batch") * seq,
                       llvm::formatv("  const long t = i % {0};\n"
                                     "  out0[i] = in0[i] && t + 1 < {0} && in1[i + 1] == in1[i];",
                                     seq)
                           .str(),
                       "t" + std::to_string(seq));
  }
  if (auto o = dyn_cast<ClipScaleOp>(op)) {
    double maxNorm = k.getAs<FloatAttr>("max_norm").getValueAsDouble();
    // in0 = norm of the summed gradients, in1 = token count (> 0: the host
    // checks it before launching).
    return elementwise(kind, {"float", "float"}, {"float"}, 1,
                       llvm::formatv("  const float n = in1[0];\n"
                                     "  float coef = 1.f;\n"
                                     "  if ({0:e}f > 0.f) coef = fminf(1.f, {0:e}f / (in0[0] / n + 1e-6f));\n"
                                     "  out0[0] = coef / n;",
                                     maxNorm)
                           .str(),
                       "f32");
  }
  if (auto o = dyn_cast<GlobalNormOp>(op)) {
    // Two launches. `_part`: `blocks` blocks, each thread summing squares in
    // double over a grid-strided share of every tensor, then a shared-memory
    // tree reduction into the workspace (one double per block); `_sum`: one
    // block adds the blocks' sums in a fixed order and writes the root.
    // Deterministic: the partition depends on the sizes only. (One block over
    // every tensor, the first version, took 18.6 ms of an H200 for the 308
    // adapter gradients of a 1.1B model: 64% of the optimizer step.)
    int64_t total = 0;
    std::string params, loops;
    for (auto [i, v] : llvm::enumerate(o.getInputs())) {
      int64_t numel = cast<RankedTensorType>(v.getType()).getNumElements();
      total += numel;
      params += llvm::formatv("const {0}* __restrict__ in{1}, ", ty(v), i).str();
      loops += llvm::formatv("  for (long j = first; j < {0}L; j += stride) {{ const double v = lora_ld(in{1}, j); acc += v * v; }\n",
                             numel, i)
                   .str();
    }
    // About 16 elements per thread, at most 1024 blocks.
    int64_t blocks = std::clamp<int64_t>((total + kBlock * 16 - 1) / (kBlock * 16), 1, 1024);
    Source s;
    s.entry = llvm::formatv("lora_global_norm_{0}", o.getInputs().size()).str();
    s.code = std::string(kPrelude) +
             llvm::formatv(R"(__device__ __forceinline__ double lora_tree_sum(double acc, double* part) {{
  part[threadIdx.x] = acc;
  __syncthreads();
  for (int s = {0} / 2; s > 0; s >>= 1) {{
    if (threadIdx.x < s) part[threadIdx.x] += part[threadIdx.x + s];
    __syncthreads();
  }
  return part[0];
}
extern "C" __global__ void __launch_bounds__({0}) {1}_part({2}float* __restrict__ out0, double* __restrict__ ws) {{
  __shared__ double part[{0}];
  const long first = (long)blockIdx.x * {0} + threadIdx.x, stride = (long){4} * {0};
  double acc = 0.0;
{3}  const double total = lora_tree_sum(acc, part);
  if (threadIdx.x == 0) ws[blockIdx.x] = total;
}
extern "C" __global__ void __launch_bounds__({0}) {1}_sum({2}float* __restrict__ out0, double* __restrict__ ws) {{
  __shared__ double part[{0}];
  double acc = 0.0;
  for (int b = threadIdx.x; b < {4}; b += {0}) acc += ws[b];
  const double total = lora_tree_sum(acc, part);
  if (threadIdx.x == 0) out0[0] = (float)sqrt(total);
}
)", kBlock, s.entry, params, loops, blocks).str();
    s.entry += "_part";
    s.grid = blocks;
    s.workspace = blocks * 8;
    cuda::Step sum;
    sum.entry = llvm::formatv("lora_global_norm_{0}_sum", o.getInputs().size()).str();
    sum.grid = 1;
    sum.block = kBlock;
    s.next.push_back(sum);
    return s;
  }
  if (auto o = dyn_cast<RMSNormOp>(op)) {
    // One block per row: a strided sum of squares, a warp-shuffle and shared
    // memory reduction, then the scaled row.
    int64_t rows = n("rows"), hidden = n("hidden");
    double eps = k.getAs<FloatAttr>("eps").getValueAsDouble();
    Source s;
    s.entry = llvm::formatv("lora_rms_norm_fwd_{0}_r{1}_h{2}", suffix(o.getType()), rows, hidden).str();
    std::string t = ty(o.getX()), w = ty(o.getWeight());
    s.code = std::string(kPrelude) + llvm::formatv(R"(extern "C" __global__ void __launch_bounds__({0}) {1}(const {2}* __restrict__ x, const {3}* __restrict__ w, {2}* __restrict__ y) {{
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
)", kBlock, s.entry, t, w, hidden, eps).str();
    s.grid = rows;
    return s;
  }
  return std::nullopt;
}

struct EmitCudaPass : public lora::impl::EmitCudaBase<EmitCudaPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    int64_t emitted = 0;
    WalkResult r = module.walk([&](Operation *op) {
      auto k = op->getAttrOfType<DictionaryAttr>(kKernelAttrName);
      if (!k)
        return WalkResult::advance();
      if (k.get("cuda_source")) {
        op->emitOpError() << "already has CUDA source";
        return WalkResult::interrupt();
      }
      // The templates read the parameters unchecked: a hand-written or
      // edited lora.kernel is checked against kernel_kinds.def first.
      if (failed(verifyKernelParams(op, k)))
        return WalkResult::interrupt();
      // An error emit() reported (values no template can take) fails the
      // pass; a kernel no template covers is only a warning.
      bool failedHere = false;
      ScopedDiagnosticHandler watch(op->getContext(), [&](Diagnostic &d) {
        if (d.getSeverity() == DiagnosticSeverity::Error)
          failedHere = true;
        return failure(); // and let it through to the next handler
      });
      std::optional<Source> s = emit(op, k);
      if (failedHere)
        return WalkResult::interrupt();
      if (!s) {
        // Say so at compile time rather than when the plan is run on CUDA.
        op->emitWarning() << "no CUDA template covers kernel '"
                          << k.getAs<StringAttr>("kind").getValue()
                          << "' with these operand types and sizes; the plan cannot run with "
                             "--device cuda";
        return WalkResult::advance();
      }
      Builder b(op->getContext());
      NamedAttrList attrs(k);
      attrs.set("cuda_source", b.getStringAttr(s->code));
      attrs.set("cuda_entry", b.getStringAttr(s->entry));
      attrs.set("cuda_grid", b.getDenseI64ArrayAttr({s->grid, s->gridY, s->gridZ}));
      attrs.set("cuda_block", b.getDenseI64ArrayAttr({s->block, 1, 1}));
      attrs.set("cuda_shared", b.getI64IntegerAttr(s->shared));
      if (s->workspace > 0)
        attrs.set("cuda_workspace", b.getI64IntegerAttr(s->workspace));
      if (!s->next.empty()) {
        SmallVector<Attribute> steps;
        for (const cuda::Step &st : s->next)
          steps.push_back(b.getDictionaryAttr(
              {b.getNamedAttr("entry", b.getStringAttr(st.entry)),
               b.getNamedAttr("grid", b.getDenseI64ArrayAttr({st.grid, st.gridY, st.gridZ})),
               b.getNamedAttr("block", b.getDenseI64ArrayAttr({st.block, 1, 1})),
               b.getNamedAttr("shared", b.getI64IntegerAttr(st.shared))}));
        attrs.set("cuda_next", b.getArrayAttr(steps));
      }
      op->setAttr(kKernelAttrName, attrs.getDictionary(op->getContext()));
      ++emitted;
      return WalkResult::advance();
    });
    if (r.wasInterrupted())
      return signalPassFailure();
    if (emitted == 0) {
      module.emitError() << "no kernel to emit CUDA for: run lora-lower-to-kernels first";
      return signalPassFailure();
    }
  }
};

} // namespace
