// Gemm over oneDNN 2.6's matmul primitive (v2 API: matmul::desc, then
// primitive_desc), with a per-shape primitive cache and panel-wise type
// conversion for the operand pairs oneDNN has no kernel for.
#include "lorart/cpu/gemm.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"

namespace lorart::cpu {
namespace {

size_t ElemSize(DType t) { return t == DType::F32 ? 4 : 2; }

bool IsFloat(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16; }

const char* DTypeName(DType t) { return schema::EnumNameDType(t); }

dnnl::memory::data_type DnnlType(DType t) {
  return t == DType::BF16 ? dnnl::memory::data_type::bf16 : dnnl::memory::data_type::f32;
}

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// A cached primitive and the memory descriptors it was made for.
struct Matmul {
  dnnl::matmul prim;
  dnnl::memory::desc a_md, b_md, c_md, scratch_md;
  size_t scratch_bytes = 0;
};

struct Key {
  bool trans_a, trans_b;
  int64_t m, n, k, lda, ldb, ldc;
  DType dt, c_dt;
  uint32_t alpha_bits, beta_bits;
  int threads;
  auto Tie() const {
    return std::tie(trans_a, trans_b, m, n, k, lda, ldb, ldc, dt, c_dt, alpha_bits, beta_bits,
                    threads);
  }
  bool operator<(const Key& o) const { return Tie() < o.Tie(); }
};

struct Cache {
  std::mutex mu;
  std::map<Key, std::shared_ptr<const Matmul>> map;
};
Cache& GetCache() {
  static Cache* cache = new Cache;  // never destroyed: primitives may outlive main's statics
  return *cache;
}
constexpr size_t kMaxCachedPrimitives = 4096;

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

std::shared_ptr<const Matmul> Create(const Key& key) {
  using dnnl::memory;
  auto m = std::make_shared<Matmul>();
  memory::data_type dt = DnnlType(key.dt);
  m->a_md = memory::desc({key.m, key.k}, dt,
                         key.trans_a ? memory::dims{1, key.lda} : memory::dims{key.lda, 1});
  m->b_md = memory::desc({key.k, key.n}, dt,
                         key.trans_b ? memory::dims{1, key.ldb} : memory::dims{key.ldb, 1});
  m->c_md = memory::desc({key.m, key.n}, DnnlType(key.c_dt), memory::dims{key.ldc, 1});
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  float alpha, beta;
  std::memcpy(&alpha, &key.alpha_bits, 4);
  std::memcpy(&beta, &key.beta_bits, 4);
  if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
  if (beta != 0.0f) {
    dnnl::post_ops ops;
    ops.append_sum(beta);
    attr.set_post_ops(ops);
  }
  dnnl::matmul::desc desc(m->a_md, m->b_md, m->c_md);
  dnnl::matmul::primitive_desc pd(desc, attr, Engine());
  m->scratch_md = pd.scratchpad_desc();
  m->scratch_bytes = m->scratch_md.get_size();
  m->prim = dnnl::matmul(pd);
  return m;
}

// Per-thread scratch: converted operand panels, the f32 output panel, the
// f32 sums of a K-blocked product and oneDNN's scratchpad.
struct Scratch {
  std::vector<uint8_t> a, b, c, acc, pad;
};
Scratch& ThreadScratch() {
  thread_local Scratch scratch;
  return scratch;
}
void* Reserve(std::vector<uint8_t>& v, size_t bytes) {
  if (v.size() < bytes) v.resize(bytes);
  return v.data();
}

// Whether oneDNN has a matmul of `dt` operands into a `c_dt` result, with a
// sum post-op, on this CPU: oneDNN 2.x makes BF16 operands and BF16 results
// only with AVX-512 (AVX2 machines get F32 products into an F32 panel that
// is converted; see Gemm).
bool MatmulAvailable(DType dt, DType c_dt) {
  static std::mutex mu;
  static std::map<std::pair<DType, DType>, bool> known;
  std::lock_guard<std::mutex> lock(mu);
  auto it = known.find({dt, c_dt});
  if (it != known.end()) return it->second;
  bool ok = true;
  try {
    Create(Key{false, false, 8, 8, 8, 8, 8, 8, dt, c_dt, Bits(1.0f), Bits(1.0f), 1});
  } catch (const dnnl::error&) {
    ok = false;
  }
  known[{dt, c_dt}] = ok;
  return ok;
}

bool Bf16MatmulAvailable() { return MatmulAvailable(DType::BF16, DType::F32); }

// C = alpha·op(A)·op(B) + beta·C with A and B of type `dt` (F32 or BF16) and
// C F32 or BF16: one oneDNN primitive.
Status RunMatmul(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                 const void* a, int64_t lda, const void* b, int64_t ldb, DType dt, float beta,
                 void* c, DType c_dt, int64_t ldc) {
  int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  Key key{trans_a, trans_b, M, N, K, lda, ldb, ldc, dt, c_dt, Bits(alpha), Bits(beta), threads};
  try {
    std::shared_ptr<const Matmul> mm;
    {
      Cache& cache = GetCache();
      std::lock_guard<std::mutex> lock(cache.mu);
      auto it = cache.map.find(key);
      if (it != cache.map.end()) {
        mm = it->second;
      } else {
        mm = Create(key);
        if (cache.map.size() >= kMaxCachedPrimitives) cache.map.clear();
        cache.map.emplace(key, mm);
      }
    }
    dnnl::engine& eng = Engine();
    thread_local dnnl::stream stream(eng);
    Scratch& s = ThreadScratch();
    void* pad = Reserve(s.pad, std::max<size_t>(mm->scratch_bytes, 64));
    dnnl::memory am(mm->a_md, eng, const_cast<void*>(a));
    dnnl::memory bm(mm->b_md, eng, const_cast<void*>(b));
    dnnl::memory cm(mm->c_md, eng, c);
    dnnl::memory sm(mm->scratch_md, eng, pad);
    mm->prim.execute(stream, {{DNNL_ARG_SRC, am},
                              {DNNL_ARG_WEIGHTS, bm},
                              {DNNL_ARG_DST, cm},
                              {DNNL_ARG_SCRATCHPAD, sm}});
    stream.wait();
  } catch (const dnnl::error& e) {
    return InternalError(StrFormat(
        "gemm: oneDNN matmul %lldx%lldx%lld (%s, trans_a=%d, trans_b=%d) failed: %s (status %d)",
        static_cast<long long>(M), static_cast<long long>(N), static_cast<long long>(K),
        DTypeName(dt), trans_a, trans_b, e.what(), static_cast<int>(e.status)));
  }
  return OkStatus();
}

TensorView View(const void* p, DType t) {
  TensorView v;
  v.data = const_cast<void*>(p);
  v.dtype = t;
  return v;
}

// Copies a rows x cols block with element-type conversion; `via_bf16`
// (F32 to F32) rounds each value to bf16 on the way.
void Convert2D(const void* src, DType st, int64_t sld, int64_t rows, int64_t cols, void* dst,
               DType dt, int64_t dld, bool via_bf16 = false) {
  const uint8_t* s = static_cast<const uint8_t*>(src);
  uint8_t* d = static_cast<uint8_t*>(dst);
  const size_t ss = ElemSize(st), ds = ElemSize(dt);
  TensorView sv = View(src, st), dv = View(dst, dt);
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 16))
  for (int64_t r = 0; r < rows; ++r) {
    if (st == dt) {
      std::memcpy(d + r * dld * ds, s + r * sld * ss, cols * ss);
      if (via_bf16 && dt == DType::F32) {
        float* row = reinterpret_cast<float*>(d + r * dld * ds);
        for (int64_t j = 0; j < cols; ++j) row[j] = Bf16ToFloat(FloatToBf16(row[j]));
      }
    } else if (dt == DType::F32) {
      ToFloat(sv, r * sld, cols, reinterpret_cast<float*>(d + r * dld * ds));
    } else if (st == DType::F32) {
      FromFloat(reinterpret_cast<const float*>(s + r * sld * ss), cols, dv, r * dld);
    } else {
      for (int64_t j = 0; j < cols; ++j) StoreFloat(dv, r * dld + j, LoadFloat(sv, r * sld + j));
    }
  }
}

Status CheckArgs(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, GemmMatrix a,
                 GemmMatrix b, void* c, DType c_type, int64_t ldc) {
  if (M < 0 || N < 0 || K < 0)
    return InvalidArgumentError(StrFormat("gemm: negative size M=%lld N=%lld K=%lld",
                                          static_cast<long long>(M), static_cast<long long>(N),
                                          static_cast<long long>(K)));
  if (!IsFloat(a.dtype) || !IsFloat(b.dtype) || !IsFloat(c_type))
    return InvalidArgumentError(
        StrFormat("gemm: operands must be F32, BF16 or F16, got %s x %s -> %s", DTypeName(a.dtype),
                  DTypeName(b.dtype), DTypeName(c_type)));
  const int64_t a_row = trans_a ? M : K, b_row = trans_b ? K : N;
  if (a.ld < std::max<int64_t>(a_row, 1) || b.ld < std::max<int64_t>(b_row, 1) ||
      ldc < std::max<int64_t>(N, 1))
    return InvalidArgumentError(StrFormat(
        "gemm: row strides lda=%lld ldb=%lld ldc=%lld are shorter than the rows (%lld, %lld, %lld)",
        static_cast<long long>(a.ld), static_cast<long long>(b.ld), static_cast<long long>(ldc),
        static_cast<long long>(a_row), static_cast<long long>(b_row), static_cast<long long>(N)));
  if (M > 0 && N > 0 && (c == nullptr || (K > 0 && (a.data == nullptr || b.data == nullptr))))
    return InvalidArgumentError("gemm: null operand");
  return OkStatus();
}

// C = beta·C (the K = 0 product).
void ScaleC(int64_t M, int64_t N, float beta, void* c, DType c_type, int64_t ldc) {
  TensorView cv = View(c, c_type);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j)
      StoreFloat(cv, i * ldc + j, beta == 0.0f ? 0.0f : beta * LoadFloat(cv, i * ldc + j));
}

// The longest K a converted product takes whole: its operand panels are
// [pm, K] and [K, pn] within kPanelElems, so a longer K would make them thin
// (an LM head's dx = dlogits·W has K = vocab: 65-row panels, W converted
// again for every one of them, and products of poor shape).
constexpr int64_t kKBlock = 4096;
// Elements of the f32 sums of a K-blocked product with a non-f32 result (a
// block of C's rows at a time; 16 MiB).
constexpr int64_t kAccElems = int64_t{1} << 22;

}  // namespace

// A product whose operands need converting, with K > kKBlock: K in blocks of
// at most kKBlock, each a Gemm summed in f32 (in C itself when C is f32,
// else in a scratch of C's rows rounded into C once at the end), so every
// operand element is converted about once and each product has panels of
// normal shape. The meaning is Gemm's: the same rounding of the operands, f32
// sums, one rounding of the result.
static Status KBlocked(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                       GemmMatrix a, GemmMatrix b, float beta, void* c, DType c_type, int64_t ldc,
                       int num_threads) {
  const int64_t blocks = (K + kKBlock - 1) / kKBlock, kb = (K + blocks - 1) / blocks;
  const bool f32 = c_type == DType::F32;
  const int64_t rows = f32 ? M : std::max<int64_t>(1, std::min<int64_t>(M, kAccElems / N));
  const size_t as = ElemSize(a.dtype), bs = ElemSize(b.dtype), cs = ElemSize(c_type);
  const uint8_t* a_bytes = static_cast<const uint8_t*>(a.data);
  const uint8_t* b_bytes = static_cast<const uint8_t*>(b.data);
  uint8_t* c_bytes = static_cast<uint8_t*>(c);
  for (int64_t m0 = 0; m0 < M; m0 += rows) {
    const int64_t mm = std::min(rows, M - m0);
    uint8_t* cp = c_bytes + m0 * ldc * cs;
    float* acc = reinterpret_cast<float*>(cp);
    int64_t ld_acc = ldc;
    if (!f32) {
      acc = static_cast<float*>(Reserve(ThreadScratch().acc, static_cast<size_t>(mm * N) * 4));
      ld_acc = N;
      if (beta != 0.0f) Convert2D(cp, c_type, ldc, mm, N, acc, DType::F32, N);
    }
    for (int64_t k0 = 0; k0 < K; k0 += kb) {
      const int64_t kk = std::min(kb, K - k0);
      const GemmMatrix a_blk{a_bytes + (trans_a ? k0 * a.ld + m0 : m0 * a.ld + k0) * as, a.dtype,
                             a.ld};
      const GemmMatrix b_blk{b_bytes + (trans_b ? k0 : k0 * b.ld) * bs, b.dtype, b.ld};
      LORA_RETURN_IF_ERROR(Gemm(trans_a, trans_b, mm, N, kk, alpha, a_blk, b_blk,
                                k0 == 0 ? beta : 1.0f, acc, DType::F32, ld_acc, num_threads));
    }
    if (!f32) Convert2D(acc, DType::F32, N, mm, N, cp, c_type, ldc);
  }
  return OkStatus();
}

Status Gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, GemmMatrix a,
            GemmMatrix b, float beta, void* c, DType c_type, int64_t ldc, int num_threads) {
  LORA_RETURN_IF_ERROR(CheckArgs(trans_a, trans_b, M, N, K, a, b, c, c_type, ldc));
  if (M == 0 || N == 0) return OkStatus();
  if (K == 0) {
    ScaleC(M, N, beta, c, c_type, ldc);
    return OkStatus();
  }
  // Run with `num_threads` OpenMP threads, restoring the caller's setting;
  // small products (under ~0.5 MFLOP) on one thread, where waking the
  // others costs more than it saves.
  if (static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K) < 262144.0)
    num_threads = 1;
  const int saved_threads = omp_get_max_threads();
  const bool set_threads = num_threads > 0 && num_threads != saved_threads && !omp_in_parallel();
  if (set_threads) omp_set_num_threads(num_threads);
  struct Restore {
    bool on;
    int n;
    ~Restore() {
      if (on) omp_set_num_threads(n);
    }
  } restore{set_threads, saved_threads};

  const bool has_f16 = a.dtype == DType::F16 || b.dtype == DType::F16;
  const bool any_bf16 = a.dtype == DType::BF16 || b.dtype == DType::BF16;
  const DType dt = (!has_f16 && any_bf16 && Bf16MatmulAvailable()) ? DType::BF16 : DType::F32;
  // Without a bf16 matmul the product runs in f32 with the same meaning:
  // an f32 operand met by a bf16 one is still rounded to bf16 first, so
  // results do not depend on the CPU's instruction set.
  const bool via_bf16 = any_bf16 && !has_f16 && dt == DType::F32;
  const bool round_a = via_bf16 && a.dtype == DType::F32,
             round_b = via_bf16 && b.dtype == DType::F32;
  const bool need_a = a.dtype != dt || round_a, need_b = b.dtype != dt || round_b;
  const bool need_c = c_type == DType::F16 || !MatmulAvailable(dt, c_type);
  if (!need_a && !need_b && !need_c)
    return RunMatmul(trans_a, trans_b, M, N, K, alpha, a.data, a.ld, b.data, b.ld, dt, beta, c,
                     c_type, ldc);
  if ((need_a || need_b) && K > kKBlock)
    return KBlocked(trans_a, trans_b, M, N, K, alpha, a, b, beta, c, c_type, ldc, num_threads);

  // Panels: the converted part of A is [pm, K], of B [K, pn], of C [pm, pn].
  constexpr int64_t kPanelElems = int64_t{1} << 21;
  int64_t pn = N, pm = M;
  if (need_b) pn = std::max<int64_t>(64, kPanelElems / K);
  if (need_c) pn = std::min<int64_t>(pn, 1024);
  pn = std::min(pn, N);
  if (need_a) pm = std::max<int64_t>(64, kPanelElems / K);
  if (need_c) pm = std::min(pm, std::max<int64_t>(64, kPanelElems / pn));
  pm = std::min(pm, M);

  Scratch& s = ThreadScratch();
  const uint8_t* a_bytes = static_cast<const uint8_t*>(a.data);
  const uint8_t* b_bytes = static_cast<const uint8_t*>(b.data);
  uint8_t* c_bytes = static_cast<uint8_t*>(c);
  const size_t as = ElemSize(a.dtype), bs = ElemSize(b.dtype), cs = ElemSize(c_type);
  const size_t ds = ElemSize(dt);
  for (int64_t m0 = 0; m0 < M; m0 += pm) {
    const int64_t mm = std::min(pm, M - m0);
    const void* ap;
    int64_t lda;
    if (need_a) {
      void* buf = Reserve(s.a, static_cast<size_t>(mm * K) * ds);
      if (trans_a) {
        Convert2D(a_bytes + m0 * as, a.dtype, a.ld, K, mm, buf, dt, mm, round_a);
        lda = mm;
      } else {
        Convert2D(a_bytes + m0 * a.ld * as, a.dtype, a.ld, mm, K, buf, dt, K, round_a);
        lda = K;
      }
      ap = buf;
    } else {
      ap = a_bytes + (trans_a ? m0 : m0 * a.ld) * as;
      lda = a.ld;
    }
    for (int64_t n0 = 0; n0 < N; n0 += pn) {
      const int64_t nn = std::min(pn, N - n0);
      const void* bp;
      int64_t ldb;
      if (need_b) {
        void* buf = Reserve(s.b, static_cast<size_t>(nn * K) * ds);
        if (trans_b) {
          Convert2D(b_bytes + n0 * b.ld * bs, b.dtype, b.ld, nn, K, buf, dt, K, round_b);
          ldb = K;
        } else {
          Convert2D(b_bytes + n0 * bs, b.dtype, b.ld, K, nn, buf, dt, nn, round_b);
          ldb = nn;
        }
        bp = buf;
      } else {
        bp = b_bytes + (trans_b ? n0 * b.ld : n0) * bs;
        ldb = b.ld;
      }
      uint8_t* cp = c_bytes + (m0 * ldc + n0) * cs;
      if (need_c) {
        float* buf = static_cast<float*>(Reserve(s.c, static_cast<size_t>(mm * nn) * 4));
        if (beta != 0.0f) Convert2D(cp, c_type, ldc, mm, nn, buf, DType::F32, nn);
        LORA_RETURN_IF_ERROR(RunMatmul(trans_a, trans_b, mm, nn, K, alpha, ap, lda, bp, ldb, dt,
                                       beta, buf, DType::F32, nn));
        Convert2D(buf, DType::F32, nn, mm, nn, cp, c_type, ldc);
      } else {
        LORA_RETURN_IF_ERROR(RunMatmul(trans_a, trans_b, mm, nn, K, alpha, ap, lda, bp, ldb, dt,
                                       beta, cp, c_type, ldc));
      }
    }
  }
  return OkStatus();
}

Status GemmReference(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                     GemmMatrix a, GemmMatrix b, float beta, void* c, DType c_type, int64_t ldc) {
  LORA_RETURN_IF_ERROR(CheckArgs(trans_a, trans_b, M, N, K, a, b, c, c_type, ldc));
  TensorView av = View(a.data, a.dtype), bv = View(b.data, b.dtype), cv = View(c, c_type);
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0.0;
      for (int64_t p = 0; p < K; ++p) {
        double x = LoadFloat(av, trans_a ? p * a.ld + i : i * a.ld + p);
        double y = LoadFloat(bv, trans_b ? j * b.ld + p : p * b.ld + j);
        acc += x * y;
      }
      double v = double(alpha) * acc;
      if (beta != 0.0f) v += double(beta) * LoadFloat(cv, i * ldc + j);
      StoreFloat(cv, i * ldc + j, static_cast<float>(v));
    }
  }
  return OkStatus();
}

int64_t GemmCacheSize() {
  Cache& cache = GetCache();
  std::lock_guard<std::mutex> lock(cache.mu);
  return static_cast<int64_t>(cache.map.size());
}

}  // namespace lorart::cpu
