// Writing safetensors files (adapters, checkpoints, merged models), atomically:
// the bytes go to a temporary file in the same directory that is renamed over
// the destination only when complete, so a failure (a full disk, a signal)
// never leaves a half-written file behind.
#ifndef LORART_IO_SAFETENSORS_WRITE_H_
#define LORART_IO_SAFETENSORS_WRITE_H_

#include <map>
#include <string>
#include <vector>

#include "lorart/base/status.h"
#include "lorart/io/safetensors.h"

namespace lorart {

struct TensorToWrite {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // row-major, DTypeSize(dtype) * numel bytes
};

// Tensors are written in the order given (names must be unique).
Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                        const std::map<std::string, std::string>& metadata = {});

// Writes `contents` to `path` through a temporary file and a rename.
Status WriteFileAtomically(const std::string& path, const std::string& contents);

}  // namespace lorart

#endif  // LORART_IO_SAFETENSORS_WRITE_H_
