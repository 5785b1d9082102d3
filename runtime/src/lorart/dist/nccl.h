// NCCL for the collectives of CUDA plans (docs/distributed.md), loaded with
// dlopen so that lorart starts without it: $LORART_NCCL names the library
// (the tests point it at a fake over MPI, test/distributed/fake_nccl.c),
// otherwise libnccl.so.2. The communicator is made over the ranks of a
// Collective: rank 0's ncclUniqueId is broadcast over MPI or through the
// rendezvous of a torchrun-style launch.
#ifndef LORART_DIST_NCCL_H_
#define LORART_DIST_NCCL_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "lorart/base/status.h"

namespace lorart::dist {

class Collective;
struct NcclApi;

class Nccl {
 public:
  // ncclCommInitRank over `ranks`, on the CUDA device current to the
  // calling thread.
  static Status Create(Collective* ranks, std::unique_ptr<Nccl>* out);
  ~Nccl();
  Nccl(const Nccl&) = delete;
  Nccl& operator=(const Nccl&) = delete;

  // "NCCL 2.27.3".
  const std::string& version() const { return version_; }
  Status GroupStart();
  Status GroupEnd();
  // Sums `count` floats of device memory over the ranks into `recv` (which
  // may be `send`), ordered on `stream` (null: the default stream).
  Status AllReduceSum(uint64_t send, uint64_t recv, size_t count, void* stream);
  // An error NCCL met asynchronously (a peer gone, a network failure).
  Status AsyncError();
  // Ends the communicator's pending operations (after a timeout).
  void Abort();

 private:
  Nccl() = default;
  Status Check(int rc, const char* call) const;

  const NcclApi* api_ = nullptr;
  void* comm_ = nullptr;
  std::string version_;
};

}  // namespace lorart::dist

#endif  // LORART_DIST_NCCL_H_
