// Content checksums: XXH3-64 (libxxhash, header-only here through
// XXH_INLINE_ALL, so users need no link dependency). train.bin ends in a
// trailer holding it (plan/plan.h, SealPlan); every checkpoint lists the
// checksum of each of its files (train/checkpoint.cc). A checksum detects
// accidental change (a flipped bit on disk or in transfer, a truncated copy,
// an edit), not tampering.
#ifndef LORART_BASE_CHECKSUM_H_
#define LORART_BASE_CHECKSUM_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace lorart {

inline uint64_t Checksum(const void* data, size_t size) { return XXH3_64bits(data, size); }

// Incremental form, for files read in pieces.
class Checksummer {
 public:
  Checksummer() : state_(XXH3_createState()) { XXH3_64bits_reset(state_); }
  ~Checksummer() { XXH3_freeState(state_); }
  Checksummer(const Checksummer&) = delete;
  Checksummer& operator=(const Checksummer&) = delete;
  void Update(const void* data, size_t size) { XXH3_64bits_update(state_, data, size); }
  uint64_t Digest() const { return XXH3_64bits_digest(state_); }

 private:
  XXH3_state_t* state_;
};

// 16 lowercase hex digits.
inline std::string ChecksumHex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace lorart

#endif  // LORART_BASE_CHECKSUM_H_
