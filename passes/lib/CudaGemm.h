//===- CudaGemm.h - CUDA C++ templates of the tensor-core GEMMs -*- C++ -*-===//
//
// Used by lora-emit-cuda (EmitCuda.cpp). Plain data in, CUDA C++ out, so the
// template's decisions (tile shape, which operands it accepts) are testable
// through the emitted source.
//
//===----------------------------------------------------------------------===//
#ifndef LORA_PASSES_LIB_CUDAGEMM_H
#define LORA_PASSES_LIB_CUDAGEMM_H

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mlir::lora::cuda {

/// A further launch of the same source (train.bin's Kernel.cuda_next): run
/// after the previous one, with the same arguments.
struct Step {
  std::string entry;
  int64_t grid = 1, gridY = 1, gridZ = 1, block = 256, shared = 0;
};

/// A kernel's CUDA C++ source with its launch geometry.
struct Source {
  std::string code, entry;
  int64_t grid = 1, gridY = 1, gridZ = 1, block = 256, shared = 0;
  std::vector<Step> next;
  /// Arena scratch in bytes (0: none), passed after the outputs.
  int64_t workspace = 0;
};

/// y[m, n] = x·Wᵀ (+ bias) (+ scaling·bf16(drop(x)·Aᵀ)·Bᵀ): the forward of
/// `linear_fwd` (rank 0) and `fused_linear_fwd`.
struct GemmFwd {
  int64_t m = 0, n = 0, k = 0, rank = 0;
  bool bias = false;
  std::string xType, biasType, yType; ///< CUDA element types
  /// The adapter's A and B (the tensor-core template takes bf16 only).
  std::string aType = "__nv_bfloat16", bType = "__nv_bfloat16";
  bool wNf4 = false;                  ///< else W is dense in xType
  int64_t blockSize = 0, doubleQuantBlock = 0;
  double scaling = 0, dropout = 0;
  /// Block tile: 0 chooses (128 for large problems, else 64); tests force
  /// 64 or 128 to exercise both on small shapes.
  int64_t tile = 0;
};

/// The tensor-core (mma.sync bf16) kernel for `g`, or nothing with the reason
/// in `why` when the template does not cover the case (f32 or f16
/// activations, K not a multiple of 8, NF4 blocks under 8 elements, rank
/// above 64, or above 32 with forced 128x128 tiles): those kernels keep no CUDA source.
std::optional<Source> emitGemmFwd(const GemmFwd &g, std::string *why);

/// Shared by the templates: `$KEY$` substitution, literals that parse back
/// to exactly the value, rounding up, and the base prelude (lora_ld/st,
/// lora_round for float, bf16 and f16 elements).
std::string subst(std::string tpl, const std::map<std::string, std::string> &vars);
std::string floatLiteral(float v);
std::string doubleLiteral(double v);
std::string floatTable(const float *v, int n);
int64_t roundUp(int64_t v, int64_t to);
const char *basePrelude();

/// The NF4 decoding shared by the GEMM templates: `tables` gets the
/// codebook (and the dynamic map with double quantization) as __constant__
/// arrays; the returned statements set `float <var>` to the absmax of block
/// `blk` from `const unsigned char* wbytes` (a packed [n, k] weight), with
/// double quantization's two separately rounded operations.
std::string nf4AbsmaxCode(int64_t n, int64_t k, int64_t blockSize, int64_t doubleQuantBlock,
                          const std::string &var, const std::string &indent,
                          std::string *tables);

/// The portability layer shared by the tensor-core templates (after the
/// base prelude): lora_ld/st,
/// mma.sync, ldmatrix (plain and .trans), cp.async, the dropout mask and
/// bf16 packing, each with its CUDA-simulator counterpart.
const char *mmaPrelude();

/// Causal grouped-query attention forward (`attention_fwd`), FlashAttention-2
/// style on tensor cores. q [B, T, H·D], k, v [B, T, KV·D] bf16, optional
/// segment ids [B, T] → o [B, T, H·D].
struct AttentionFwd {
  int64_t batch = 0, seq = 0, heads = 0, kvHeads = 0, headDim = 0;
  double scale = 0;
  bool causal = true;
  int64_t slidingWindow = 0; ///< 0: none
  std::string segType;        ///< "" without segment ids, else "int"/"long long"
  std::string qType, oType;
};
std::optional<Source> emitAttentionFwd(const AttentionFwd &a, std::string *why);
/// Its backward (`attention_bwd`): dout, q, k, v, [seg] → dq, dk, dv, in two
/// launches sharing a workspace with each row's logsumexp and rowsum(dO∘O).
std::optional<Source> emitAttentionBwd(const AttentionFwd &a, std::string *why);

/// The backward of a linear layer with bf16 activations
/// (CudaLinearBwd.cpp): `linear_bwd_x` (hasW, rank 0), `lora_bwd` (!hasW)
/// and `fused_linear_bwd` (both). Arguments: dy, [x], [w], [a, b], dx,
/// [da, db, workspace], [dropout key].
struct LinearBwd {
  int64_t m = 0, n = 0, k = 0, rank = 0;
  bool hasW = true, wNf4 = false;
  int64_t blockSize = 0, doubleQuantBlock = 0;
  double scaling = 0, dropout = 0;
  std::string dyType, xType, dxType, daType, dbType;
  /// A, B and a dense W (the tensor-core template takes bf16 only).
  std::string aType = "__nv_bfloat16", bType = "__nv_bfloat16", wType = "__nv_bfloat16";
};
std::optional<Source> emitLinearBwd(const LinearBwd &g, std::string *why);
/// The device function `lora_dyw_tile<ROWS, N, K, LDY>(acc, dy, w, m0, k0,
/// smem)`: one 64x64 tile of dy·W on tensor cores (4 warps), W [N][K] dense
/// bf16, or staged by `wStage` (the NF4 decoder) when given.
std::string dyWTileFunction(const std::string &wStage);
/// The dynamic shared memory lora_dyw_tile needs (double-buffered tiles).
int64_t dyWTileSharedBytes();
/// The device function `lora_dytx_tile<M, N, K, LDY>(acc, dy, x, n0, k0,
/// smem)`: one 64x64 tile of dyᵀ·x (dw[n][k] = Σ_m dy[m][n]·x[m][k]) on
/// tensor cores (4 warps), and the dynamic shared memory it needs.
std::string dytXTileFunction();
int64_t dytXTileSharedBytes();
/// `linear_bwd_w`: dy [m, n], x [m, k] → dw [n, k] = dyᵀ·x on tensor cores.
std::optional<Source> emitLinearBwdW(int64_t m, int64_t n, int64_t k, const std::string &dyType,
                                     const std::string &xType, const std::string &dwType,
                                     std::string *why);

/// The chunked LM-head cross-entropy forward (`lm_head_ce_fwd`,
/// CudaLmHead.cpp): x [tokens, hidden], w [vocab, hidden] bf16, targets,
/// mask → loss_sum f32, count i64, with a workspace of one double per token.
struct LmHeadCe {
  int64_t tokens = 0, hidden = 0, vocab = 0;
  std::string xType, wType, targetType, dxType;
};
std::optional<Source> emitLmHeadCeFwd(const LmHeadCe &l, std::string *why);
/// Its `$BASE$_sum` launch (one thread adds the workspace's per-token
/// losses in token order and counts the masked-in tokens), shared with the
/// CUDA-core template; `T` and the forward's `$PARAMS$` in scope.
const char *lmHeadSumKernel();
/// Its input gradient (`lm_head_ce_bwd_x`: x, w, targets, mask, dloss → dx):
/// each row's logsumexp, then per chunk of `chunk` tokens (the compiler's
/// chunk_size) the chunk's bf16 dlogits in the workspace and dx = dlogits·W.
std::optional<Source> emitLmHeadCeBwdX(const LmHeadCe &l, int64_t chunk, std::string *why);
/// Its weight gradient (`lm_head_ce_bwd_w`: x, w, targets, mask, dloss →
/// dw [vocab, hidden], `dwType` f32 or bf16): the same logsumexp and
/// per-chunk dlogits, then dw (+)= dlogitsᵀ·x_chunk per chunk, summed in f32
/// (in dw itself when it is f32, else in an f32 copy in the workspace that
/// the last chunk rounds into dw).
std::optional<Source> emitLmHeadCeBwdW(const LmHeadCe &l, int64_t chunk, const std::string &dwType,
                                       std::string *why);

/// The same kernels on CUDA cores (CudaSimt.cpp) for what the tensor-core
/// templates refuse: f32 and f16 activations, bf16 ones with a rank above
/// 64 or K not a multiple of 8. Any float, bf16 or f16 operands; f32 sums in
/// one fixed order; f32 intermediates rounded as the CPU backend's products
/// read them. The same arguments as the tensor-core kernels (the forward
/// with an adapter takes a workspace for u = s·drop(x)·Aᵀ).
std::optional<Source> emitSimtGemmFwd(const GemmFwd &g, std::string *why);
std::optional<Source> emitSimtLinearBwd(const LinearBwd &g, std::string *why);
std::optional<Source> emitSimtLinearBwdW(int64_t m, int64_t n, int64_t k, const std::string &dyType,
                                         const std::string &xType, const std::string &dwType,
                                         std::string *why);
std::optional<Source> emitSimtLmHeadCeFwd(const LmHeadCe &l, std::string *why);
std::optional<Source> emitSimtLmHeadCeBwdX(const LmHeadCe &l, int64_t chunk, std::string *why);
std::optional<Source> emitSimtLmHeadCeBwdW(const LmHeadCe &l, int64_t chunk, const std::string &dwType,
                                           std::string *why);
/// Attention with q, k, v and the outputs in one float type, head_dim up to
/// 256: a warp per query row (forward; the backward's dQ) or key row (dK,
/// dV), the same workspace as the tensor-core backward.
std::optional<Source> emitSimtAttentionFwd(const AttentionFwd &a, std::string *why);
std::optional<Source> emitSimtAttentionBwd(const AttentionFwd &a, std::string *why);

} // namespace mlir::lora::cuda

#endif // LORA_PASSES_LIB_CUDAGEMM_H
