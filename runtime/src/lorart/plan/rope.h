// RoPE's inverse frequencies, computed once for the compiler (lora-emit-cuda
// bakes them into the CUDA source) and the runtime (the CPU kernel): the same
// doubles on both backends. Header-only and free of MLIR.
#ifndef LORART_PLAN_ROPE_H_
#define LORART_PLAN_ROPE_H_

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace lorart::rope {

// A kernel's `scaling` parameter and the values it uses.
struct Scaling {
  std::string kind = "none";  // none, linear or llama3
  double factor = 1.0;
  double low_freq_factor = 1.0, high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

// inv_freq[i] = theta^(-2i/head_dim) for i < head_dim/2, rescaled as Hugging
// Face's ROPE_INIT_FUNCTIONS: "linear" divides by `factor`; "llama3" is
// _compute_llama3_parameters. In double (HF uses f32; the angles are double
// too, so positions up to 2^17 keep ~1e-11 rad accuracy). Returns an error
// message (empty when the values are valid).
inline std::string InverseFrequencies(int64_t head_dim, double theta, const Scaling& s,
                                      std::vector<double>* out) {
  if (head_dim <= 0 || head_dim % 2 != 0) return "'head_dim' must be positive and even";
  if (!(theta > 0.0) || !std::isfinite(theta)) return "'theta' must be positive";
  if (s.kind != "none" && s.kind != "linear" && s.kind != "llama3")
    return "rope scaling '" + s.kind + "' is not supported (none, linear, llama3)";
  if (s.kind != "none" && (!(s.factor > 0.0) || !std::isfinite(s.factor)))
    return "rope scaling 'factor' must be positive";
  if (s.kind == "llama3" &&
      (!(s.low_freq_factor > 0.0) || !(s.high_freq_factor > s.low_freq_factor) ||
       s.original_max_position_embeddings <= 0))
    return "llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor and a positive "
           "original_max_position_embeddings";
  out->resize(static_cast<size_t>(head_dim / 2));
  const double old_len = static_cast<double>(s.original_max_position_embeddings);
  for (int64_t i = 0; i < head_dim / 2; ++i) {
    double f = 1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(head_dim));
    if (s.kind == "linear") {
      f /= s.factor;
    } else if (s.kind == "llama3") {
      const double wavelen = 2.0 * M_PI / f;
      if (wavelen > old_len / s.low_freq_factor) {
        f /= s.factor;
      } else if (wavelen >= old_len / s.high_freq_factor) {
        const double smooth =
            (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        f = (1.0 - smooth) * f / s.factor + smooth * f;
      }  // shorter wavelengths: unchanged
    }
    (*out)[static_cast<size_t>(i)] = f;
  }
  return "";
}

}  // namespace lorart::rope

#endif  // LORART_PLAN_ROPE_H_
