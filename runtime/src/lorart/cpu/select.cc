// select_rows: one position per sequence (the generation program's last
// prompt token): result[b, 0, :] = x[b, index[b], :].
#include <cstring>

#include "lorart/cpu/kernel.h"

namespace lorart::cpu {

namespace {

Status SelectRows(const KernelContext&, const KernelParams& p, const std::vector<TensorView>& in,
                  const std::vector<TensorView>& out) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 2, out, 1));
  kernels::params::select_rows prm;
  LORA_RETURN_IF_ERROR(p.Typed(&prm));
  const int64_t batch = prm.batch, seq = prm.seq, hidden = prm.hidden;
  const TensorView &x = in[0], &index = in[1], &y = out[0];
  LORA_RETURN_IF_ERROR(ExpectFloat(p, x, "x"));
  LORA_RETURN_IF_ERROR(ExpectElements(p, x, batch * seq * hidden, "x"));
  LORA_RETURN_IF_ERROR(ExpectElements(p, index, batch, "index"));
  LORA_RETURN_IF_ERROR(ExpectElements(p, y, batch * hidden, "result"));
  if (y.dtype != x.dtype)
    return InvalidArgumentError("kernel 'select_rows': result dtype must equal x's");
  if (index.dtype != DType::I32 && index.dtype != DType::I64)
    return InvalidArgumentError("kernel 'select_rows': index must be I32 or I64");
  size_t elem = x.dtype == DType::F32 ? 4 : 2;
  for (int64_t b = 0; b < batch; ++b) {
    int64_t i =
        index.dtype == DType::I32 ? index.as<const int32_t>()[b] : index.as<const int64_t>()[b];
    if (i < 0 || i >= seq)
      return InvalidArgumentError(StrFormat(
          "kernel 'select_rows': index[%lld] = %lld is outside "
          "[0, %lld)",
          static_cast<long long>(b), static_cast<long long>(i), static_cast<long long>(seq)));
    std::memcpy(static_cast<uint8_t*>(y.data) + b * hidden * elem,
                static_cast<const uint8_t*>(x.data) + (b * seq + i) * hidden * elem, hidden * elem);
  }
  return OkStatus();
}

}  // namespace

void RegisterSelectKernels() { RegisterKernel("select_rows", SelectRows); }

}  // namespace lorart::cpu
