// The linear family of CPU kernels: dense and NF4 matmuls with optional bias
// and LoRA adapter (forward and backward), embeddings (row gathers of a
// weight) and NF4 dequantization. docs/kernels.md ("Linear family")
// describes every kind; the parameters are kernel_kinds.def's typed structs,
// which lora-lower-to-kernels fills. The shared machinery (NF4 tiles,
// dropout, the fused product) is matmul.h.
#include "lorart/cpu/matmul.h"

namespace lorart::cpu {
namespace {

using namespace matmul;  // NOLINT: the family's shared machinery

// ----------------------------------------------------------------------------
// Kernels.

Status LinearFwd(const KernelContext& ctx, const KernelParams& p, const std::vector<TensorView>& in,
                 const std::vector<TensorView>& out) {
  kernels::params::linear_fwd prm;
  int64_t m = 0, n = 0, k = 0;
  LORA_RETURN_IF_ERROR(MatmulSizes(p, &prm, &m, &n, &k));
  const int64_t has_bias = prm.bias;
  if (has_bias != 0 && has_bias != 1)
    return InvalidArgumentError(StrFormat("kernel '%s': parameter 'bias' must be 0 or 1, got %lld",
                                          p.kind().c_str(), static_cast<long long>(has_bias)));
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 2 + has_bias, out, 1));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[0], m * k, "x"));
  Weight w;
  LORA_RETURN_IF_ERROR(BindWeight(p, prm, in[1], n, k, &w));
  if (has_bias) LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[2], n, "the bias"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, out[0], m * n, "the output"));
  return LinearForward(ctx, in[0], &w, has_bias ? &in[2] : nullptr, nullptr, nullptr, Adapter(),
                       out[0], m, n, k);
}

Status FusedLinearFwd(const KernelContext& ctx, const KernelParams& p,
                      const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  kernels::params::fused_linear_fwd prm;
  int64_t m = 0, n = 0, k = 0;
  LORA_RETURN_IF_ERROR(MatmulSizes(p, &prm, &m, &n, &k));
  const int64_t has_bias = prm.bias;
  if (has_bias != 0 && has_bias != 1)
    return InvalidArgumentError(StrFormat("kernel '%s': parameter 'bias' must be 0 or 1, got %lld",
                                          p.kind().c_str(), static_cast<long long>(has_bias)));
  Adapter ad;
  LORA_RETURN_IF_ERROR(ReadAdapter(p, prm, false, &ad));
  const size_t ia = 2 + static_cast<size_t>(has_bias);
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, ia + (ad.rank > 0 ? 2 : 0), out, 1));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[0], m * k, "x"));
  Weight w;
  LORA_RETURN_IF_ERROR(BindWeight(p, prm, in[1], n, k, &w));
  if (has_bias) LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[2], n, "the bias"));
  if (ad.rank > 0) {
    LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[ia], ad.rank * k, "the adapter's A"));
    LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[ia + 1], n * ad.rank, "the adapter's B"));
  }
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, out[0], m * n, "the output"));
  return LinearForward(ctx, in[0], &w, has_bias ? &in[2] : nullptr, ad.rank > 0 ? &in[ia] : nullptr,
                       ad.rank > 0 ? &in[ia + 1] : nullptr, ad, out[0], m, n, k);
}

Status LoraFwd(const KernelContext& ctx, const KernelParams& p, const std::vector<TensorView>& in,
               const std::vector<TensorView>& out) {
  kernels::params::lora_fwd prm;
  int64_t m = 0, n = 0, k = 0;
  LORA_RETURN_IF_ERROR(MatmulSizes(p, &prm, &m, &n, &k));
  Adapter ad;
  LORA_RETURN_IF_ERROR(ReadAdapter(p, prm, true, &ad));
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 3, out, 1));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[0], m * k, "x"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[1], ad.rank * k, "the adapter's A"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[2], n * ad.rank, "the adapter's B"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, out[0], m * n, "the output"));
  return LinearForward(ctx, in[0], nullptr, nullptr, &in[1], &in[2], ad, out[0], m, n, k);
}

Status LinearBwdX(const KernelContext& ctx, const KernelParams& p,
                  const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  kernels::params::linear_bwd_x prm;
  int64_t m = 0, n = 0, k = 0;
  LORA_RETURN_IF_ERROR(MatmulSizes(p, &prm, &m, &n, &k));
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 2, out, 1));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[0], m * n, "dy"));
  Weight w;
  LORA_RETURN_IF_ERROR(BindWeight(p, prm, in[1], n, k, &w));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, out[0], m * k, "dx"));
  return InputGradient(ctx, in[0], &w, nullptr, nullptr, Adapter(), out[0], m, n, k);
}

Status LinearBwdW(const KernelContext& ctx, const KernelParams& p,
                  const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  kernels::params::linear_bwd_w prm;
  int64_t m = 0, n = 0, k = 0;
  LORA_RETURN_IF_ERROR(MatmulSizes(p, &prm, &m, &n, &k));
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 2, out, 1));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[0], m * n, "dy"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[1], m * k, "x"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, out[0], n * k, "dw"));
  return Gemm(true, false, n, k, m, 1.0f, Mat(in[0], 0, n), Mat(in[1], 0, k), 0.0f, out[0].data,
              out[0].dtype, k, Threads(ctx));
}

Status BiasBwd(const KernelContext& ctx, const KernelParams& p, const std::vector<TensorView>& in,
               const std::vector<TensorView>& out) {
  kernels::params::bias_bwd prm;
  LORA_RETURN_IF_ERROR(p.Typed(&prm));
  int64_t rows = 0, n = 0;
  LORA_RETURN_IF_ERROR(SizeParam(p, "rows", prm.rows, &rows));
  LORA_RETURN_IF_ERROR(SizeParam(p, "n", prm.n, &n));
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 1, out, 1));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[0], rows * n, "dy"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, out[0], n, "the bias gradient"));
  // Column blocks in parallel; rows summed in order (deterministic).
  constexpr int64_t kCols = 256;
  const int64_t blocks = (n + kCols - 1) / kCols;
  const TensorView& dy = in[0];
#pragma omp parallel for num_threads(Threads(ctx)) schedule(static) if (rows * n >= (1 << 15))
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t j0 = blk * kCols, len = std::min(kCols, n - j0);
    float acc[kCols] = {}, row[kCols];
    for (int64_t i = 0; i < rows; ++i) {
      ToFloat(dy, i * n + j0, len, row);
      for (int64_t j = 0; j < len; ++j) acc[j] += row[j];
    }
    FromFloat(acc, len, out[0], j0);
  }
  return OkStatus();
}

// The adapter operands (A [r, k], B [n, r]) and the gradients (dx unless
// no_dx, dA, dB) of lora_bwd and fused_linear_bwd.
Status ExpectAdapterBackward(const KernelParams& p, const TensorView& a, const TensorView& b,
                             const std::vector<TensorView>& out, bool with_dx, int64_t m, int64_t n,
                             int64_t k, int64_t r) {
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, a, r * k, "the adapter's A"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, b, n * r, "the adapter's B"));
  const size_t o = with_dx ? 1 : 0;
  if (with_dx) LORA_RETURN_IF_ERROR(ExpectFloatN(p, out[0], m * k, "dx"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, out[o], r * k, "dA"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, out[o + 1], n * r, "dB"));
  return OkStatus();
}

// lora_bwd ([dy, x, a, b]) and fused_linear_bwd ([dy, x, w, a, b]) ->
// [dx, da, db], or [da, db] with no_dx.
template <class P>
Status AdapterBwdKernel(const KernelContext& ctx, const KernelParams& p,
                        const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  constexpr bool with_weight = std::is_same_v<P, kernels::params::fused_linear_bwd>;
  P prm;
  int64_t m = 0, n = 0, k = 0;
  LORA_RETURN_IF_ERROR(MatmulSizes(p, &prm, &m, &n, &k));
  Adapter ad;
  LORA_RETURN_IF_ERROR(ReadAdapter(p, prm, true, &ad));
  const int64_t no_dx = prm.no_dx.value_or(0);
  if (no_dx != 0 && no_dx != 1)
    return InvalidArgumentError(StrFormat("kernel '%s': parameter 'no_dx' must be 0 or 1, got %lld",
                                          p.kind().c_str(), static_cast<long long>(no_dx)));
  const bool with_dx = no_dx == 0;
  const size_t ia = with_weight ? 3 : 2, o = with_dx ? 1 : 0;
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, ia + 2, out, o + 2));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[0], m * n, "dy"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[1], m * k, "x"));
  Weight w;
  if constexpr (with_weight) LORA_RETURN_IF_ERROR(BindWeight(p, prm, in[2], n, k, &w));
  LORA_RETURN_IF_ERROR(
      ExpectAdapterBackward(p, in[ia], in[ia + 1], out, with_dx, m, n, k, ad.rank));
  return AdapterBackward(ctx, in[0], in[1], with_weight ? &w : nullptr, in[ia], in[ia + 1], ad,
                         with_dx ? &out[0] : nullptr, out[o], out[o + 1], m, n, k);
}

Status LoraBwd(const KernelContext& ctx, const KernelParams& p, const std::vector<TensorView>& in,
               const std::vector<TensorView>& out) {
  return AdapterBwdKernel<kernels::params::lora_bwd>(ctx, p, in, out);
}

Status FusedLinearBwd(const KernelContext& ctx, const KernelParams& p,
                      const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  return AdapterBwdKernel<kernels::params::fused_linear_bwd>(ctx, p, in, out);
}

// ----------------------------------------------------------------------------
// Embeddings and dequantization.

Status CheckIds(const KernelParams& p, const TensorView& ids, int64_t tokens, int64_t vocab) {
  for (int64_t i = 0; i < tokens; ++i) {
    const int64_t id = LoadIndex(ids, i);
    if (id < 0 || id >= vocab)
      return InvalidArgumentError(StrFormat(
          "kernel '%s': token id %lld at position %lld is outside the vocabulary [0, %lld)",
          p.kind().c_str(), static_cast<long long>(id), static_cast<long long>(i),
          static_cast<long long>(vocab)));
  }
  return OkStatus();
}

// The checks shared by embedding_fwd and embedding_bwd: `rows` (tokens x
// hidden) flows between the token side and the table side (vocab x hidden).
// P: params::embedding_fwd or _bwd.
template <class P>
Status EmbeddingDims(const KernelParams& p, const std::vector<TensorView>& in,
                     const TensorView& rows, const char* rows_what, const TensorView& table,
                     const char* table_what, int64_t* t, int64_t* d, int64_t* v) {
  P prm;
  LORA_RETURN_IF_ERROR(p.Typed(&prm));
  LORA_RETURN_IF_ERROR(SizeParam(p, "tokens", prm.tokens, t));
  LORA_RETURN_IF_ERROR(SizeParam(p, "hidden", prm.hidden, d));
  LORA_RETURN_IF_ERROR(SizeParam(p, "vocab", prm.vocab, v));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, table, *v * *d, table_what));
  LORA_RETURN_IF_ERROR(ExpectIndex(p, in[1], *t, "the ids"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, rows, *t * *d, rows_what));
  return CheckIds(p, in[1], *t, *v);
}

Status EmbeddingFwd(const KernelContext& ctx, const KernelParams& p,
                    const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  int64_t t = 0, d = 0, v = 0;
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 2, out, 1));
  LORA_RETURN_IF_ERROR(EmbeddingDims<kernels::params::embedding_fwd>(
      p, in, out[0], "the output", in[0], "the table", &t, &d, &v));
  const TensorView &table = in[0], &y = out[0];
  const bool same = table.dtype == y.dtype;
  const size_t es = ElemSize(y.dtype);
#pragma omp parallel for num_threads(Threads(ctx)) schedule(static) if (t * d >= (1 << 15))
  for (int64_t i = 0; i < t; ++i) {
    const int64_t id = LoadIndex(in[1], i);
    if (same) {
      std::memcpy(static_cast<uint8_t*>(y.data) + i * d * es,
                  static_cast<const uint8_t*>(table.data) + id * d * es, d * es);
    } else {
      float* row = Scratch<float>(kRows, d);
      ToFloat(table, id * d, d, row);
      FromFloat(row, d, y, i * d);
    }
  }
  return OkStatus();
}

Status EmbeddingBwd(const KernelContext& ctx, const KernelParams& p,
                    const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  int64_t t = 0, d = 0, v = 0;
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 2, out, 1));
  LORA_RETURN_IF_ERROR(EmbeddingDims<kernels::params::embedding_bwd>(
      p, in, in[0], "dy", out[0], "the table gradient", &t, &d, &v));
  const TensorView &dy = in[0], &dt = out[0];
  std::memset(dt.data, 0, static_cast<size_t>(v * d) * ElemSize(dt.dtype));
  // Positions grouped by id (a stable counting sort); each id's rows are
  // summed in f32 in position order by one thread: deterministic.
  std::vector<int64_t> start(static_cast<size_t>(v + 1), 0), order(static_cast<size_t>(t));
  for (int64_t i = 0; i < t; ++i) ++start[static_cast<size_t>(LoadIndex(in[1], i)) + 1];
  for (int64_t j = 0; j < v; ++j) start[j + 1] += start[j];
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t i = 0; i < t; ++i) order[fill[static_cast<size_t>(LoadIndex(in[1], i))]++] = i;
  }
#pragma omp parallel for num_threads(Threads(ctx)) schedule(dynamic, 64) if (t * d >= (1 << 15))
  for (int64_t id = 0; id < v; ++id) {
    const int64_t s0 = start[id], s1 = start[id + 1];
    if (s0 == s1) continue;
    float* acc = Scratch<float>(kRows, 2 * d);
    float* row = acc + d;
    ToFloat(dy, order[s0] * d, d, acc);
    for (int64_t s = s0 + 1; s < s1; ++s) {
      ToFloat(dy, order[s] * d, d, row);
      for (int64_t j = 0; j < d; ++j) acc[j] += row[j];
    }
    FromFloat(acc, d, dt, id * d);
  }
  return OkStatus();
}

Status Dequantize(const KernelContext& ctx, const KernelParams& p,
                  const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  kernels::params::dequantize prm;
  LORA_RETURN_IF_ERROR(p.Typed(&prm));
  int64_t elements = 0;
  LORA_RETURN_IF_ERROR(SizeParam(p, "elements", prm.elements, &elements));
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 1, out, 1));
  if (prm.weight_format != "nf4")
    return InvalidArgumentError(StrFormat("kernel '%s': weight_format must be 'nf4', got '%s'",
                                          p.kind().c_str(), prm.weight_format.c_str()));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, out[0], elements, "the output"));
  // Addressed as [blocks, block_size]: one row per quantization block.
  int64_t bs = 0;
  LORA_RETURN_IF_ERROR(SizeParam(p, "block_size", prm.block_size.value_or(0), &bs));
  if (elements % bs != 0)
    return InvalidArgumentError(
        StrFormat("kernel '%s': %lld elements are not a multiple of block_size %lld",
                  p.kind().c_str(), static_cast<long long>(elements), static_cast<long long>(bs)));
  Weight w;
  LORA_RETURN_IF_ERROR(BindWeight(p, prm, in[0], elements / bs, bs, &w));
  DequantRect(w, 0, w.n, 0, w.k, out[0].data, out[0].dtype, w.k, Threads(ctx));
  return OkStatus();
}

}  // namespace

void RegisterLinearKernels() {
  RegisterKernel("linear_fwd", LinearFwd);
  RegisterKernel("fused_linear_fwd", FusedLinearFwd);
  RegisterKernel("linear_bwd_x", LinearBwdX);
  RegisterKernel("linear_bwd_w", LinearBwdW);
  RegisterKernel("bias_bwd", BiasBwd);
  RegisterKernel("lora_fwd", LoraFwd);
  RegisterKernel("lora_bwd", LoraBwd);
  RegisterKernel("fused_linear_bwd", FusedLinearBwd);
  RegisterKernel("embedding_fwd", EmbeddingFwd);
  RegisterKernel("embedding_bwd", EmbeddingBwd);
  RegisterKernel("dequantize", Dequantize);
}

}  // namespace lorart::cpu
