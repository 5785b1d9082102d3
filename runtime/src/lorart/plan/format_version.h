// The train.bin format version lorac writes and this lorart reads, declared
// once for both (header-only, free of MLIR). docs/train-bin.md, "Versioning",
// lists what each version changed.
#ifndef LORART_PLAN_FORMAT_VERSION_H_
#define LORART_PLAN_FORMAT_VERSION_H_

#include <cstdint>

namespace lorart {

// 2: EWC's Fisher tensors are marked by TensorInit Fisher and `of` (version 1
// recognized them by an "ewc.fisher/" name prefix); LoRA initialization,
// gradients and master copies come only from role/init/of.
// 3: each program declares what its inputs and outputs are
// (Program.input_ports / output_ports); the runtime binds them by port, no
// longer by tensor name.
inline constexpr uint32_t kPlanFormatVersion = 3;

}  // namespace lorart

#endif  // LORART_PLAN_FORMAT_VERSION_H_
