// The rendezvous of a torchrun-style launch (docs/distributed.md): a small
// key-value store served over TCP by rank 0 at MASTER_ADDR:MASTER_PORT, the
// role torch's TCPStore plays for init_process_group("nccl"). It bootstraps
// NCCL (rank 0's unique id), carries the trainer's few host-side sums
// (losses, token counts: bytes per step) and the start-up agreement, and
// spreads a rank's failure to the others. It is not a transport for
// gradients: those go over NCCL (CUDA plans) or MPI (CPU plans).
//
// Rank 0 runs the server on a thread of its own and is also a client of it.
// Every request waits for its reply with a deadline; a reply carries the
// request's id, so one that arrives after its wait timed out is dropped. A
// rank that leaves without saying goodbye (it died, or it ended the job with
// Fail) fails every rank's pending and later requests with the reason, and
// a rank that is only waiting on its GPU learns of it through
// PeerFailure().
#ifndef LORART_DIST_TCP_STORE_H_
#define LORART_DIST_TCP_STORE_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "lorart/base/status.h"

namespace lorart::dist {

struct StoreOptions {
  std::string host;  // MASTER_ADDR: where rank 0 serves; rank 0 listens on every interface
  int port = 0;      // MASTER_PORT; 0 lets rank 0 take a free port (tests: see port())
  std::string port_source = "MASTER_PORT";  // where `port` came from, for errors
  int rank = 0, world_size = 1;
  double timeout_s = 600;  // joining, and each wait
};

class TcpStore {
 public:
  using Clock = std::chrono::steady_clock;

  // Rank 0 starts serving; every rank joins (retrying until rank 0 serves,
  // at most timeout_s). The server refuses a rank out of range, a rank
  // that already joined and a different world size.
  static Status Connect(const StoreOptions& options, std::unique_ptr<TcpStore>* out);
  // Says goodbye. Rank 0 serves on until every rank has said goodbye or
  // gone (at most timeout_s), so that no rank loses the store in the middle
  // of its last collective.
  ~TcpStore();
  TcpStore(const TcpStore&) = delete;
  TcpStore& operator=(const TcpStore&) = delete;

  int port() const { return port_; }
  const std::string& address() const { return address_; }

  Status Set(const std::string& key, const std::string& value);  // within timeout_s
  Status Set(const std::string& key, const std::string& value, Clock::time_point deadline);
  // Waits until `key` is set, or until `deadline`: then *timed_out is true
  // and the status OK.
  Status Get(const std::string& key, Clock::time_point deadline, std::string* value,
             bool* timed_out);
  // The value of `key` if set now; *found says whether it is.
  Status TryGet(const std::string& key, Clock::time_point deadline, std::string* value,
                bool* found);
  // This rank has read the keys that start with `prefix`: when every rank
  // has said so, the server forgets them.
  Status Done(const std::string& prefix);
  // For each rank: '0' never joined, '1' joined, '2' said goodbye, '3' gone
  // without goodbye.
  Status Joined(Clock::time_point deadline, std::string* states);
  // Tells the others that this rank ends the job (best effort, no wait):
  // their pending and later requests fail with `why`.
  void Fail(const std::string& why);
  // A failure the server announced (another rank failed or left), without
  // waiting; OK when there is none.
  Status PeerFailure();

 private:
  class Server;
  TcpStore() = default;
  Status Call(uint8_t op, const std::string& key, const std::string& value,
              Clock::time_point deadline, uint8_t* code, std::string* reply, bool* timed_out);
  // Call, where a request that gets no answer by `deadline` is an error.
  Status Answered(uint8_t op, const std::string& key, const std::string& value,
                  Clock::time_point deadline);
  Status Send(uint8_t op, uint32_t id, const std::string& key, const std::string& value);
  // Reads one reply, waiting until `deadline`; *got false when none came.
  Status Receive(Clock::time_point deadline, uint32_t* id, uint8_t* code, std::string* payload,
                 bool* got);

  std::unique_ptr<Server> server_;  // rank 0
  int fd_ = -1;
  int port_ = 0;
  uint32_t next_id_ = 1;
  std::string address_;  // "host:port"
  std::string in_;       // bytes received, not yet a whole reply
  std::string failed_;   // the failure the server announced
  StoreOptions options_;
};

}  // namespace lorart::dist

#endif  // LORART_DIST_TCP_STORE_H_
