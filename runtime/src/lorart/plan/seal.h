// train.bin's checksum trailer, declared once for the writer (lorac's
// serializer, tests, other frameworks) and the loader (plan.cc).
//
// A train.bin is the size-prefixed FlatBuffer followed by 16 bytes: the magic
// "LORAXXH3" and the little-endian XXH3-64 of every byte before the trailer
// (size prefix included). The loader checks it before reading any field, so
// a flipped bit anywhere in the plan is an error, never a different run.
// Header-only and free of MLIR.
#ifndef LORART_PLAN_SEAL_H_
#define LORART_PLAN_SEAL_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "lorart/base/checksum.h"

namespace lorart {

inline constexpr char kPlanTrailerMagic[] = "LORAXXH3";  // 8 bytes, no NUL written
inline constexpr size_t kPlanTrailerBytes = 16;

// The plan bytes `flatbuffer` (FinishSizePrefixedPlanBuffer's) with the
// trailer appended: what a train.bin file holds.
inline std::string SealPlan(std::string_view flatbuffer) {
  std::string out(flatbuffer);
  out.append(kPlanTrailerMagic, 8);
  uint64_t sum = Checksum(flatbuffer.data(), flatbuffer.size());
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((sum >> (8 * i)) & 0xff));
  return out;
}

}  // namespace lorart

#endif  // LORART_PLAN_SEAL_H_
